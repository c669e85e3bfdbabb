"""Every path the pipeline reads or writes, in one place.

Each output path carries a hash of *everything* upstream of it, so a changed
setting (extractor, weights, PCA, precision, image size, model, index or search
settings) or a changed corpus never reuses a stale output::

    <work_dir>/<dataset>/
        pca-<P>.h5                                   P = extractor without PCA + training settings
        vocab-<V>.h5                                 V = MultiVLAD vocabulary settings (mvlad)
        selfsup-<T>.pt, selfsup-<T>.training.pt      T = selfsup network training settings; its
                                                     resumable training state while unfinished
        features-<F>/shard-00000-<M>/<video>.h5      F = extractor, weights, PCA, precision, ...
                                  /_pack.h5, failures.csv     M = the shard's members (id, size, mtime)
        features-<F>/delta-000003-00000/...           refresh delta shards (version, chunk)
        lamv-<model>-<L>.h5, ....training.h5         L = F + learned-LAMV model + training settings +
                                                     ground truth + corpus listing (Train)
        descriptors/<model>-<D>/<feature shard>.h5   D = F + model spec (a learned kernel: L, or
                                                     the kernel file's hash) + max length
        segment-frames-<G>/<feature shard>.h5        G = F + segments.fps + stores.segment_frames
        index-<I>/{index.faiss, meta.h5}             I = D(index.model) + index settings + corpus listing
        search/<model>-<S>/{results.h5, results.csv} S = I + D(model) + search settings + dataset kind
                          /shards/queries-<Q>-<n>.h5  one search shard's results (Q queries a shard)
        published/vNNNNNN/, published/current         refresh versions
        refresh.lock, fingerprints.json, quarantine.json, task_runs.log
    <reports_dir>/<dataset>/<model>/{report.json, report.md, report.html}

Nothing else in the package builds an artifact path.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from extractors.frame.pca import published_paths
from extractors.frame.registry import EXTRACTOR_TYPES, ExtractorType
from extractors.runtime.timebase import FPS
from pipeline.config.load import Config
from pipeline.config.schema import ConfigError
from pipeline.core.atomic import clean_stale_temporaries, file_sha256
from pipeline.datasets.kinds import search_scope
from pipeline.datasets.listing import Video, list_videos, shard_videos
from pipeline.store.identities import _file_identity, digest, listing_hash, resolved_precision, weights_identity
from pipeline.store.model_types import Trainable, model_type

FEATURE_LAYOUT_VERSION = 2


"""Bumped when the meaning of a feature file changes (part of every feature hash)."""


RMAC_LEVELS = 3


@dataclass
class Layout:
    """Paths of one configuration's artifacts.

    The corpus listing is taken once per layout, lazily, by ``lister`` (default: a
    fresh :func:`pipeline.datasets.listing.list_videos`; the Luigi tasks share one listing per
    process so hundreds of shard tasks do not each walk the corpus).
    """

    cfg: Config
    lister: Callable[[Config], list[Video]] = field(default=lambda cfg: list_videos(cfg.dataset), repr=False)

    # ------------------------------------------------------------------ corpus

    @cached_property
    def videos(self) -> list[Video]:
        """Every video of the corpus with its size and mtime, sorted by id."""
        return self.lister(self.cfg)

    @cached_property
    def shards(self) -> list[list[Video]]:
        return shard_videos(self.videos, self.cfg.shards.size)

    @property
    def n_shards(self) -> int:
        return len(self.shards)

    @cached_property
    def corpus_hash(self) -> str:
        return listing_hash(self.videos)

    # ------------------------------------------------------------------ roots

    @property
    def work(self) -> Path:
        return self.cfg.work_dir

    @property
    def reports(self) -> Path:
        return self.cfg.reports_dir

    # ------------------------------------------------------------------ features

    def extractor_identity(self, with_pca: bool = True) -> dict:
        """Everything that changes the numbers of a frame descriptor."""
        f = self.cfg.features
        ident = {"layout": FEATURE_LAYOUT_VERSION, "extractor": f.extractor, "weights": weights_identity(f),
                 "image_area": f.image_area, "fps": FPS, "black_bars": f.remove_black_bars}
        if f.extractor == "resnet34_rmac":
            ident.update(level=f.level, rmac_levels=RMAC_LEVELS, precision=resolved_precision(f))
        if self.needs_vocabulary:
            ident["vocabulary"] = self.vocab_key
        if self.needs_frame_model:
            ident["frame_model"] = self.frame_model_key
        if with_pca:
            ident["pca"] = self.pca_identity()
            ident["dtype"] = f.dtype
        return ident

    def pca_identity(self) -> str:
        spec = self.cfg.features.pca
        if spec in ("none", ""):
            return "none"
        if spec == "trained":
            return f"trained:{self.pca_key}"
        if spec.endswith(".h5"):
            return _file_identity(spec)

        return "published:" + ",".join(_file_identity(str(p)) for p in published_paths(spec, self.cfg.features.level))

    @cached_property
    def pca_key(self) -> str:
        return digest({"extractor": self.extractor_identity(with_pca=False),
                       "frames_per_video": self.cfg.features.pca_frames_per_video,
                       "shrinkage": self.cfg.features.pca_shrinkage})

    @property
    def needs_vocabulary(self) -> bool:
        """The extractor fits MultiVLAD vocabularies on the corpus first."""
        return self._extractor.fit == "vocabulary"

    @property
    def _extractor(self) -> ExtractorType:
        return EXTRACTOR_TYPES[self.cfg.features.extractor]

    def _sample_identity(self) -> dict:
        """What the frames a corpus fit samples depend on (vocabulary, selfsup network)."""
        f = self.cfg.features
        return {"extractor": f.extractor, "image_area": f.image_area, "fps": FPS, "layout": FEATURE_LAYOUT_VERSION,
                "black_bars": f.remove_black_bars}

    @cached_property
    def vocab_key(self) -> str:
        """The vocabulary's settings (fitted on this corpus's frames: see ``steps.train_vocabulary``)."""
        return digest({**self._sample_identity(), "frames_per_video": self.cfg.features.pca_frames_per_video})

    @property
    def vocab_path(self) -> Path:
        return self.work / f"vocab-{self.vocab_key}.h5"

    @property
    def needs_frame_model(self) -> bool:
        """The extractor's network is trained on the corpus first (selfsup)."""
        return self._extractor.fit == "frame_model"

    @property
    def trains_frame_model(self) -> bool:
        """The ``selfsup`` network is trained on this corpus (not given by ``frame_model.checkpoint``)."""
        return self.needs_frame_model and self.cfg.frame_model.checkpoint == "trained"

    @cached_property
    def frame_model_key(self) -> str:
        """The ``selfsup`` network's training settings and data (this corpus's frames: see
        ``steps.train_frame_model``), or the identity of the file ``frame_model.checkpoint`` names."""
        if not self.trains_frame_model:
            return digest(_file_identity(self.cfg.frame_model.checkpoint))
        training = {k: v for k, v in dataclasses.asdict(self.cfg.frame_model).items() if k != "checkpoint"}
        return digest({**self._sample_identity(), "training": training})

    @property
    def frame_model_path(self) -> Path:
        if not self.trains_frame_model:
            return Path(os.path.expanduser(self.cfg.frame_model.checkpoint))
        return self.work / f"selfsup-{self.frame_model_key}.pt"

    @property
    def frame_model_training_path(self) -> Path:
        """Resumable state of an unfinished training of :attr:`frame_model_path`."""
        return self.work / f"selfsup-{self.frame_model_key}.training.pt"

    @property
    def pca_path(self) -> Path:
        return self.work / f"pca-{self.pca_key}.h5"

    @cached_property
    def features_key(self) -> str:
        return digest(self.extractor_identity())

    @property
    def features_dir(self) -> Path:
        return self.work / f"features-{self.features_key}"

    def shard_label(self, shard: int) -> str:
        """``shard-00000-<h>``: ``h`` hashes the shard's members, so a shard whose membership or
        files changed gets new outputs instead of reusing stale ones."""
        return f"shard-{shard:05d}-{listing_hash(self.shards[shard])[:8]}"

    def feature_shard_dir(self, shard: int) -> Path:
        return self.features_dir / self.shard_label(shard)

    def delta_shard_dir(self, version: int, chunk: int) -> Path:
        """Feature shard of a refresh: the new and changed videos of ``version``, ``chunk``-th slice."""
        return self.features_dir / f"delta-{version:06d}-{chunk:05d}"

    @staticmethod
    def failures_file(shard_dir: Path) -> Path:
        return shard_dir / "failures.csv"

    # ------------------------------------------------------------------ descriptors

    def descriptors_key(self, model: str) -> str:
        compact = {"precision": self.cfg.stores.descriptors} if self.cfg.stores.descriptors != "float32" else {}
        return digest({"features": self.features_key, "model": self.model_identity(model),
                       "max_length_s": self.cfg.dataset.max_length_s, **compact})

    @property
    def segment_step(self) -> int:
        """Frames of the 15-fps stream per frame the copy-segment stage compares."""
        return max(1, round(FPS / self.cfg.segments.fps))

    @property
    def uses_segment_frames(self) -> bool:
        return self.cfg.stores.segment_frames != "none"

    @property
    def segment_frames_exact(self) -> bool:
        """Whether the copy-segment stage sees the stored features' values (no store, or a float16 store
        of float16 features): then the search results do not depend on the store."""
        mode = self.cfg.stores.segment_frames
        return mode == "none" or mode == self.cfg.features.dtype

    def segment_frames_dir(self) -> Path:
        key = digest({"features": self.features_key, "step": self.segment_step,
                      "precision": self.cfg.stores.segment_frames})
        return self.work / f"segment-frames-{key}"

    def segment_frames_path(self, shard: int) -> Path:
        return self.segment_frames_dir() / f"{self.feature_shard_dir(shard).name}.h5"

    @property
    def calibrates_thresholds(self) -> bool:
        """Whether the copy decision's thresholds are set for this corpus (``calibration.mode``)."""
        return self.cfg.calibration.mode != "none"

    @property
    def thresholds_path(self) -> Path:
        """The calibrated thresholds (:mod:`pipeline.store.fitted.thresholds`) of this corpus, measured on its
        features at the rate the copy-segment stage compares them (whatever the segment-frame store's
        precision)."""
        key = digest({"features": self.features_key, "step": self.segment_step,
                      "calibration": self.cfg.data["calibration"], "corpus": self.corpus_hash})
        return self.work / f"thresholds-{key}.json"

    def set_marker(self, directory: Path) -> Path:
        """The marker of the set of this corpus's shard artifacts in ``directory`` (a features, descriptors
        or segment-frames directory holds the shards of every listing it served)."""
        return directory / f"_set-{self.corpus_hash[:16]}.json"

    # ------------------------------------------------------------------ models trained on this dataset

    def clean_work_root(self) -> int:
        """Remove the temporaries that killed writers left in the dataset's work directory (trained
        models, PCA, vocabulary, training states, refresh state files); live writers' are kept."""
        return clean_stale_temporaries(self.work) if self.work.is_dir() else 0

    def trainable(self, model: str) -> Trainable | None:
        """The trained artifact of ``model``'s type (``None``: a type that is never trained)."""
        return model_type(self.cfg.model_spec(model)).trainable

    def trains(self, model: str) -> bool:
        """``model`` is trained on this dataset's ground truth (by ``Train``): its file key says ``trained``."""
        t = self.trainable(model)
        return t is not None and self.cfg.model_spec(model).get(t.file_key, "trained") == "trained"

    @property
    def trained_models(self) -> list[str]:
        return [m for m in self.cfg.models if self.trains(m)]

    @property
    def trains_models(self) -> bool:
        """Some model of this configuration is trained on this dataset's ground truth (every report of
        it is then on the held-out fold)."""
        return bool(self.trained_models)

    def ground_truth_files(self) -> list[Path]:
        """The files the dataset's ground truth is read from (whichever exist)."""
        root, ds = self.cfg.root, self.cfg.dataset
        files = [root / ds.gt_file] if ds.gt_file else []
        for pattern in ("annotation/*.txt", "annotations/*.dat", "label_file.json", "pair_file.csv"):
            files += sorted(root.glob(pattern))
        return [f for f in files if f.is_file()]

    @cached_property
    def ground_truth_identity(self) -> list[list[str]]:
        """Name and sha256 of every ground-truth file, read once per layout (every descriptor, index and
        search path of a trained model hashes it)."""
        return [[f.name, file_sha256(f)] for f in self.ground_truth_files()]

    def _trained(self, model: str) -> Trainable:
        t = self.trainable(model)
        if t is None:
            raise ConfigError(f"{self.cfg.source}: model {model!r} is of a type that is not trained")
        return t

    def trained_key(self, model: str) -> str:
        """What a trained model depends on: features, the model (without its file key), its training
        settings (and what else of the configuration its type names), the ground truth (file contents)
        and the corpus listing."""
        t = self._trained(model)
        spec = {k: v for k, v in dataclasses.asdict(self.cfg.models[model]).items() if k != t.file_key}
        return digest({"features": self.features_key, "model": spec,
                       "training": dataclasses.asdict(getattr(self.cfg, t.settings)), **t.identity(self.cfg),
                       "ground_truth": self.ground_truth_identity, "corpus": self.corpus_hash})

    def trained_path(self, model: str) -> Path:
        """The file ``Train(model)`` writes: ``<stem>-<model>-<key><suffix>``."""
        t = self._trained(model)
        return self.work / f"{t.stem}-{model}-{self.trained_key(model)}{t.suffix}"

    def training_state_path(self, model: str) -> Path:
        """Resumable state of an unfinished training of :meth:`trained_path` (``....training<suffix>``)."""
        done = self.trained_path(model)
        return done.with_name(f"{done.stem}.training{done.suffix}")

    def model_file(self, model: str) -> Path | None:
        """The file a trainable model scores with: trained here, or given as a path (``None`` for a type
        that is never trained)."""
        t = self.trainable(model)
        if t is None:
            return None
        if self.trains(model):
            return self.trained_path(model)
        return Path(os.path.expanduser(str(self.cfg.model_spec(model)[t.file_key])))

    def model_identity(self, model: str) -> dict:
        """The model spec as hashed into its outputs: a trained file is named by its training (trained
        here) or its content (given as a path)."""
        t = self.trainable(model)
        if t is None:
            return self.cfg.model_spec(model)
        spec = dataclasses.asdict(self.cfg.models[model])
        if self.trains(model):
            return {**spec, t.file_key: {"trained": self.trained_key(model)}}
        path = self.model_file(model)
        return {**spec, t.file_key: {"sha256": file_sha256(path) if path and path.is_file() else "missing"}}

    def model_spec(self, model: str) -> dict:
        """The spec :func:`pipeline.store.model_types.build_model` builds ``model`` from (its file resolved)."""
        t = self.trainable(model)
        if t is None:
            return self.cfg.model_spec(model)
        spec = dataclasses.asdict(self.cfg.models[model]) if t.full_spec else self.cfg.model_spec(model)
        return {**spec, t.file_key: str(self.model_file(model))}

    def descriptors_dir(self, model: str) -> Path:
        return self.work / "descriptors" / f"{model}-{self.descriptors_key(model)}"

    def descriptor_file(self, model: str, feature_shard: Path) -> Path:
        """Descriptors of ``model`` for the videos of one feature shard directory."""
        return self.descriptors_dir(model) / f"{Path(feature_shard).name}.h5"

    def descriptor_path(self, model: str, shard: int) -> Path:
        return self.descriptor_file(model, self.feature_shard_dir(shard))

    # ------------------------------------------------------------------ index, search, reports

    @cached_property
    def index_key(self) -> str:
        return digest({"index": self.cfg.data["index"],
                       "descriptors": self.descriptors_key(self.cfg.index.model), "corpus": self.corpus_hash})

    @property
    def index_dir(self) -> Path:
        return self.work / f"index-{self.index_key}"

    def search_key(self, model: str) -> str:
        lossy = {"segment_frames": self.cfg.stores.segment_frames} if not self.segment_frames_exact else {}
        return digest({"search": self.cfg.data["search"], "segments": self.cfg.data["segments"],
                       "calibration": self.cfg.data["calibration"],
                       "align": self.cfg.data["align"], "index": self.index_key,
                       "descriptors": self.descriptors_key(model), "kind": self.cfg.dataset.kind, **lossy})

    def search_dir(self, model: str) -> Path:
        return self.work / "search" / f"{model}-{self.search_key(model)}"

    def hash_search_dir(self) -> Path:
        """``dataset.kind: tmk``: the search of the corpus of Meta TMK hashes (``matches.csv``,
        ``summary.json``), named by the hashes listed (path, size, mtime) and the settings."""
        key = digest({"hashes": self.cfg.data["hashes"], "index": self.cfg.data["index"], "corpus": self.corpus_hash})
        return self.work / f"tmk-hashes-{key}"

    @cached_property
    def queries(self) -> list[str]:
        """The queries a batch search runs, in order, from the listing (a search shard skips those that
        have no descriptor: videos that failed)."""
        return search_scope(self.cfg.dataset, [v.id for v in self.videos])[0]

    @cached_property
    def query_shards(self) -> list[list[str]]:
        """:attr:`queries` in slices of ``shards.queries`` (one search task each; at least one)."""
        n = self.cfg.shards.queries
        return [self.queries[i:i + n] for i in range(0, len(self.queries), n)] or [[]]

    def search_shard_path(self, model: str, shard: int) -> Path:
        return self.search_dir(model) / "shards" / f"queries-{self.cfg.shards.queries}-{shard:05d}.h5"

    def report_dir(self, model: str) -> Path:
        return self.reports / model

    REPORT_FILES = ("report.json", "report.md", "report.html")

    # ------------------------------------------------------------------ operations

    @property
    def published_root(self) -> Path:
        return self.work / "published"

    @property
    def refresh_lock(self) -> Path:
        return self.work / "refresh.lock"

    @property
    def fingerprint_cache(self) -> Path:
        return self.work / "fingerprints.json"

    @property
    def quarantine_file(self) -> Path:
        """Corpus entries that failed and are not retried until they change (``pipeline/store/quarantine.py``)."""
        return self.work / "quarantine.json"

    @property
    def task_log(self) -> Path:
        return self.work / "task_runs.log"

    def refresh_settings_hash(self) -> str:
        """Settings a published version was built with (a change reprocesses every video)."""
        return digest({"features": self.features_key,
                       "descriptors": {m: self.descriptors_key(m) for m in self.cfg.models},
                       "index": self.cfg.data["index"]}, 16)


def layout_for(cfg: Config) -> Layout:
    return Layout(cfg)
