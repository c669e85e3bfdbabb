"""The pipeline's steps: one function per operation.

The command line (``python -m pipeline build``, ``refresh``, ``query`` ...) and the
Luigi tasks call exactly these functions with a :class:`pipeline.layout.Layout`,
so both entry points compute the same paths and write the same bytes.  A
refresh is these same steps applied to a delta of the corpus
(``pipeline.refresh``).

    [train_vocabulary | train_frame_model] -> train_pca -> extract_shard -> describe_shard
        -> build_index -> search -> evaluate
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from extractors import failpoints
from extractors.black_bars import crop_black_bars
from extractors.features import ExtractorSettings, FrameFeatureExtractor
from extractors.frame_extractor import RECOMMENDED, FrameExtractor
from extractors.mvlad import MultiVLADExtractor, Vocabulary
from extractors.pca import PCAWhitening, load_published
from extractors.pdqf import PDQFExtractor
from extractors.progress import progress
from extractors.resnet import WeightsNotFoundError, resolve_weights
from extractors.selfsup import FrameModel, SelfSupExtractor
from extractors.timebase import FPS, frame_count_seconds
from index.faiss_index import build_faiss, choose_index_type
from index.localise import LocaliserSettings, localise
from index.search import Match, background_normalised, offset_range, rerank_with_expansion
from index.verification import diagonal_verify, refine_offsets
from pipeline import completeness
from pipeline.artifacts import ArtifactError, VideoFeatures, atomic_path, read_pack, read_video_features, utc_now
from pipeline.config import Config, ConfigError, config_from_json
from pipeline.corpus import Video
from pipeline.dataset_kinds import kind_of, search_scope
from pipeline.descriptors import (
    DescriptorStore,
    build_model,
    compute_shard_descriptors,
    describe_video,
    mean_frame_component,
)
from pipeline.extract import ExtractionSettings, Failure, ShardResult, extract_shard_videos, reuse_earlier_features
from pipeline.frame_model_store import load_frame_model, save_frame_model
from pipeline.index_store import read_index, write_index
from pipeline.layout import Layout
from pipeline.pca_store import load_pca, save_pca
from pipeline.search_results import read_search_results, read_segments, write_search_results
from pipeline.segment_metrics import Box
from pipeline.vocab_store import load_vocabulary, save_vocabulary

log = logging.getLogger(__name__)


class StepError(RuntimeError):
    """A step that cannot run; the message is one line that says what to do."""


# --------------------------------------------------------------------------- frame features


def weights_hint(cfg: Config) -> str:
    return ('give the checkpoint with --overrides "features.weights=/path/to/resnet34-b627a593.pth" '
            "(or put it in torch's hub cache), or use an extractor that needs no weights: "
            '--overrides "features.extractor=selfsup;search.model=cte" (the recommended offline '
            'configuration, benchmarks/RESULTS.md; or features.extractor=mvlad, pdqf)')


def needs_weights(cfg: Config) -> bool:
    return RECOMMENDED[cfg.features.extractor].needs_weights


def check_weights(cfg: Config) -> None:
    """Fail fast, before any work, when the configured CNN weights cannot be found."""
    if not needs_weights(cfg):
        return
    try:
        resolve_weights(cfg.features.weights, download=False)
    except WeightsNotFoundError as exc:
        if cfg.features.weights == "imagenet" and cfg.features.download_weights:
            return  # make_extractor will try the download and fail with the same hint
        raise StepError(f"{str(exc).split(':')[0]}: {weights_hint(cfg)}") from None


def make_extractor(cfg: Config, pca: PCAWhitening | None, vocab: Vocabulary | None = None,
                   frame_model: FrameModel | None = None) -> FrameExtractor:
    """The configured frame-feature extractor (``features.extractor``)."""
    f = cfg.features
    if f.extractor == "pdqf":
        return PDQFExtractor(pca)
    if f.extractor == "selfsup":
        if frame_model is None:
            raise StepError("the selfsup extractor needs its trained network (TrainFrameModel)")
        return SelfSupExtractor(frame_model, pca, f.device)
    if f.extractor == "mvlad":
        if vocab is None:
            raise StepError("the MultiVLAD extractor needs its vocabulary (TrainVocabulary)")
        return MultiVLADExtractor(vocab, pca)
    settings = ExtractorSettings(level=f.level, weights=f.weights, download_weights=f.download_weights,
                                 seed=f.seed, device=f.device, precision=f.precision)
    try:
        return FrameFeatureExtractor(settings, pca)
    except WeightsNotFoundError as exc:
        first = str(exc).split(" (or set")[0]
        raise StepError(f"{first}; {weights_hint(cfg)}") from None
    except ValueError as exc:  # refused or foreign checkpoint (the message names the file)
        raise StepError(f"{exc}; {weights_hint(cfg)}") from None


def configured_extractor(layout: Layout) -> FrameExtractor:
    """The extractor with everything fitted on the corpus that it uses (vocabulary or network, PCA)."""
    ex = make_extractor(layout.cfg, load_configured_pca(layout), load_configured_vocabulary(layout),
                        load_configured_frame_model(layout))
    if ex.pca is not None:  # a PCA made for other vectors fails here, naming its file, not deep in a batch
        dim = ex.pca_samples(np.zeros((1, 64, 64, 3), np.uint8)).shape[1]
        if ex.pca.mean.shape[-1] != dim:
            spec = layout.cfg.features.pca
            where = layout.pca_path if spec == "trained" else spec
            raise StepError(f"{where}: a PCA for {ex.pca.mean.shape[-1]}-dimensional vectors, but the "
                            f"{layout.cfg.features.extractor} extractor gives {dim}-dimensional ones "
                            f"(a PCA made for another extractor or level)")
    return ex


def load_configured_frame_model(layout: Layout) -> FrameModel | None:
    if not layout.needs_frame_model:
        return None
    try:
        return load_frame_model(layout.frame_model_path)
    except (ArtifactError, OSError) as exc:
        raise StepError(f"{layout.frame_model_path}: the selfsup network is missing or unreadable ({exc}); run "
                        f"TrainFrameModel (any Luigi task or 'python -m pipeline build' trains it first)") from None


def fitting_sample(layout: Layout) -> list[Path]:
    """The videos a corpus fit (vocabulary, network, PCA) reads: every readable regular file (never a
    FIFO, device or symlink loop, which could block or fail the fit)."""
    return [v.path for v in layout.videos if not v.problem]


def load_configured_vocabulary(layout: Layout) -> Vocabulary | None:
    if not layout.needs_vocabulary:
        return None
    try:
        return load_vocabulary(layout.vocab_path)
    except (ArtifactError, OSError):
        raise StepError(f"{layout.vocab_path}: the MultiVLAD vocabulary is missing; run TrainVocabulary "
                        f"(any Luigi task or 'python -m pipeline build' fits it first)") from None


def train_vocabulary(layout: Layout, show_progress: bool = True) -> Path:
    """Fit the MultiVLAD vocabularies on the corpus's own frames (no annotations) and save them."""
    from pipeline.extract import train_vocabulary_on_videos

    cfg = layout.cfg
    vocab = train_vocabulary_on_videos(fitting_sample(layout), extraction_settings(cfg, show_progress),
                                       cfg.features.pca_frames_per_video,
                                       {"dataset": cfg.name, "root": str(cfg.root), "settings": layout.vocab_key})
    return save_vocabulary(vocab, layout.vocab_path)


def train_frame_model(layout: Layout, show_progress: bool = True) -> Path:
    """Train the ``selfsup`` network on the corpus's own frames (no annotations) and save it.

    Resumable: every ``frame_model.checkpoint_every`` steps the training state is saved
    atomically; a re-run continues from it and ends with the same weights.
    """
    from pipeline.extract import train_frame_model_on_videos

    cfg = layout.cfg
    model = train_frame_model_on_videos(
        fitting_sample(layout), extraction_settings(cfg, show_progress), cfg.frame_model,
        layout.frame_model_training_path,
        {"dataset": cfg.name, "root": str(cfg.root), "settings": layout.frame_model_key})
    path = save_frame_model(model, layout.frame_model_path)
    layout.frame_model_training_path.unlink(missing_ok=True)
    return path


def extraction_settings(cfg: Config, show_progress: bool = True) -> ExtractionSettings:
    f = cfg.features
    return ExtractionSettings(image_area=f.image_area, feature_dtype=f.dtype, batch_size=f.batch_size,
                              decode_workers=f.decode_workers, torch_threads=f.torch_threads,
                              max_pixels=f.max_pixels, video_time_limit_s=f.video_time_limit_s,
                              worker_memory_mb=f.worker_memory_mb, hwaccel=f.hwaccel,
                              remove_black_bars=f.remove_black_bars, progress=show_progress)


def pca_needed(layout: Layout) -> bool:
    """True when features need a PCA trained on this corpus first."""
    return layout.cfg.features.pca == "trained"


def load_configured_pca(layout: Layout) -> PCAWhitening | None:
    """The PCA the config asks for: none, trained (:func:`train_pca`'s output), a published prefix or a file."""
    spec = layout.cfg.features.pca
    if spec in ("none", ""):
        return None
    if spec == "trained":
        if not layout.pca_path.is_file():
            raise StepError(f"{layout.pca_path}: the trained PCA is missing; run TrainPCA "
                            f"(any Luigi task or 'python -m pipeline build' trains it first)")
        return load_pca(layout.pca_path)
    if spec.endswith(".h5"):
        return load_pca(spec)
    return load_published(spec, layout.cfg.features.level)


def train_pca(layout: Layout, show_progress: bool = True) -> Path:
    """Train the corpus PCA-whitening (``features.pca: trained``) and save it with its provenance."""
    from pipeline.extract import train_pca_on_videos

    cfg = layout.cfg
    check_weights(cfg)
    ex = make_extractor(cfg, None, load_configured_vocabulary(layout), load_configured_frame_model(layout))
    pca = train_pca_on_videos(fitting_sample(layout), ex, extraction_settings(cfg, show_progress),
                              frames_per_video=cfg.features.pca_frames_per_video,
                              provenance={"dataset": cfg.name, "root": str(cfg.root), "settings": layout.pca_key},
                              n_components=RECOMMENDED[cfg.features.extractor].pca_dims,
                              shrinkage=float(cfg.features.pca_shrinkage))
    return save_pca(pca, layout.pca_path)


def ensure_fitted(layout: Layout, show_progress: bool = True) -> None:
    """Fit what the features need from the corpus (vocabulary or network, PCA) when it is not there yet."""
    if layout.needs_vocabulary and not completeness.vocabulary_complete(layout.vocab_path):
        train_vocabulary(layout, show_progress)
    if layout.needs_frame_model and not completeness.frame_model_complete(layout.frame_model_path):
        train_frame_model(layout, show_progress)
    if pca_needed(layout) and not completeness.pca_complete(layout.pca_path):
        train_pca(layout, show_progress)


def write_failures(path: Path, failures: Sequence[Failure]) -> Path:
    """``failures.csv``: one line per file that failed (file, stage, cause)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["file", "stage", "cause"])
    for f in failures:
        w.writerow([f.path, f.stage, f.cause])
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    return path


def extract_videos(layout: Layout, videos: Sequence[Video], shard_dir: Path,
                   fingerprints, show_progress: bool = True,
                   extractor: FrameExtractor | None = None) -> ShardResult:
    """Frame features of ``videos`` into ``shard_dir`` (+ its pack and ``failures.csv``).

    Feature files computed earlier in another shard from identical content with the
    same settings are adopted instead of recomputed.  ``fingerprints`` maps video ids
    to content fingerprints.
    """
    cfg = layout.cfg
    ex = extractor or configured_extractor(layout)
    settings = extraction_settings(cfg, show_progress)
    unreadable = listing_failures(videos)
    videos = [v for v in videos if not v.problem]
    reuse_earlier_features([v.id for v in videos], shard_dir, layout.features_dir, ex, settings, fingerprints)
    res = extract_shard_videos([(v.id, v.path) for v in videos], shard_dir, ex, settings, {"dataset": cfg.name})
    res.failures[:0] = unreadable
    write_failures(layout.failures_file(shard_dir), res.failures)
    return res


def listing_failures(videos: Sequence[Video]) -> list[Failure]:
    """A failure (stage ``list``) for each corpus entry that is not a readable regular file."""
    for v in videos:
        if v.problem:
            log.error("%s: list: %s", v.path, v.problem)
    return [Failure(str(v.path), "list", v.problem) for v in videos if v.problem]


def extract_shard(layout: Layout, shard: int, show_progress: bool = True) -> ShardResult:
    """Frame features of corpus shard ``shard``."""
    from extractors.decode_pool import file_fingerprint

    check_weights(layout.cfg)
    videos = layout.shards[shard]
    path_of = {v.id: v.path for v in videos}
    return extract_videos(layout, videos, layout.feature_shard_dir(shard),
                          lambda ids: {v: file_fingerprint(path_of[v]) for v in ids}, show_progress)


def describe_shard(layout: Layout, feature_shard: Path, model: str) -> Path:
    """Temporal descriptors of ``model`` for every video of one feature shard."""
    out = layout.descriptor_file(model, feature_shard)
    failpoints.hit("describe.before_write")
    return compute_shard_descriptors(feature_shard, out, model, layout.model_spec(model),
                                     layout.cfg.dataset.max_length_s)


# --------------------------------------------------------------------------- index


def descriptor_store(layout: Layout, model: str) -> DescriptorStore:
    return DescriptorStore([layout.descriptor_path(model, s) for s in range(layout.n_shards)])


def index_attrs(cfg: Config, kind: str, n: int) -> dict:
    return {"index_type": kind, "model": cfg.index.model, "dataset": cfg.name, "config": cfg.to_json(),
            "config_source": cfg.source, "n_videos": n}


def build_index(layout: Layout) -> Path:
    """FAISS index over the mean-frame components of ``index.model``."""
    cfg = layout.cfg
    ids, vectors = descriptor_store(layout, cfg.index.model).mean_frames()
    if not ids:
        raise StepError(f"dataset {cfg.name}: no video has features; nothing to index "
                        f"(see failures.csv in {layout.features_dir})")
    kind = choose_index_type(len(ids), cfg.index.type, cfg.index.ivf_threshold)
    index = build_faiss(vectors, kind)
    failpoints.hit("index.built")
    log.info("index %s: %d videos, %s", cfg.name, len(ids), kind)
    return write_index(layout.index_dir, index, ids, index_attrs(cfg, kind, len(ids)))


# --------------------------------------------------------------------------- search


class FeatureLookup:
    """Frame features by video id (through the shard packs, or a published manifest)."""

    def __init__(self, where: dict[str, Path]) -> None:
        self.where = where

    @classmethod
    def of_layout(cls, layout: Layout) -> FeatureLookup:
        where: dict[str, Path] = {}
        for s in range(layout.n_shards):
            d = layout.feature_shard_dir(s)
            if not completeness.feature_shard_complete(d):
                continue
            pack = read_pack(d)
            for vid, name in zip(pack.video_ids, pack.files, strict=True):
                where[vid] = d / name
        return cls(where)

    @classmethod
    def of_manifest(cls, manifest: dict) -> FeatureLookup:
        return cls({vid: Path(e["features"]) for vid, e in manifest["videos"].items()})

    def get(self, vid: str, dim: int | None = None) -> VideoFeatures:
        """The features of ``vid``; with ``dim``, refused (naming the file) unless ``dim``-dimensional."""
        vf = read_video_features(self.where[vid])
        if dim is not None and vf.features.shape[1] != dim:
            raise ArtifactError(f"{self.where[vid]}: {vf.features.shape[1]}-dimensional features, expected {dim} "
                                f"(damaged, or from another configuration; run verify)")
        return vf


def configured_model(layout: Layout, model_name: str):
    """The temporal model ``models.<model_name>`` of the config (a learned kernel read from its file)."""
    return build_model(layout.model_spec(model_name), layout.cfg.dataset.max_length_s)


def search_one(cfg: Config, model, query_id: str, query_fv: torch.Tensor, query_mean: np.ndarray,
               q_feats: VideoFeatures | None, index, store: DescriptorStore,
               features: FeatureLookup | None, allowed: set[str] | None,
               segments: list[Box] | None = None) -> list[Match]:
    """FAISS candidates -> offset re-ranking with ``model`` -> copy segments and decisions, for one
    query; the segments found are appended to ``segments``."""
    segments = [] if segments is None else segments
    s = cfg.search
    n_bg = s.background if s.score_normalisation == "background" else 0
    _, names = index.search(query_mean[None], s.top_k + 1 + n_bg, cfg.index.nprobe)
    ranked = [c for c in names[0] if c != query_id and (allowed is None or c in allowed) and c in store]
    cands, background = ranked[: s.top_k], ranked[s.top_k:s.top_k + n_bg]
    if not cands:
        return []
    q_frames = len(q_feats.features) if q_feats is not None else store.n_frames.get(query_id, 1)
    offsets = offset_range(model, q_frames, max(store.n_frames[c] for c in cands + background))
    scores_all, off_all = rerank_with_expansion(model, query_fv, store.get(cands + background), offsets,
                                                s.query_expansion, s.qe_n1, s.qe_n2, s.qe_mode)
    raw, off_s = scores_all[: len(cands)], off_all[: len(cands)]
    scores = background_normalised(raw, scores_all[len(cands):]) if n_bg else raw
    order = np.argsort(-scores, kind="stable")[: s.keep]
    located = features is not None and q_feats is not None
    loaded: dict[str, VideoFeatures] = {}

    def frames(c: str) -> VideoFeatures:
        """A candidate's frame features, read once for the verification, the segments and DRAQ."""
        if c not in loaded:
            loaded[c] = features.get(c, q_feats.features.shape[1])
        return loaded[c]

    verified = s.verify != "none" and located
    if verified:  # frame-level verification of the kept candidates (and the background)
        kept = [cands[i] for i in order]
        usable = [c for c in kept + background if c in features.where]
        if len(usable) < len(kept) + len(background):
            verified = False
    if verified:
        step = max(1, round(FPS / s.verify_fps))
        v = diagonal_verify(q_feats.features, [frames(c).features for c in usable], step, s.verify_threshold)
        raw_v = v.score[: len(kept)].astype(np.float64)
        scores_v = background_normalised(raw_v, v.score[len(kept):]) if n_bg else raw_v
        offsets_v = refine_offsets(v.offset_frames[: len(kept)], off_s[order] * FPS, step) / FPS
        raw, scores, off_s = raw.copy(), scores.copy(), off_s.copy()
        raw[order], scores[order], off_s[order] = raw_v, scores_v, offsets_v  # the kept ones, re-scored
        order = order[np.argsort(-scores_v, kind="stable")]
    found: list[Box] = []
    if located:
        usable = [int(i) for i in order if cands[i] in features.where]
        found = locate_copies(cfg, query_id, q_feats, [cands[i] for i in usable],
                              [frames(cands[i]) for i in usable], off_s[usable])
        segments += found
    best: dict[str, Box] = {}  # this query's best segment per candidate
    for b in found:
        if b.ref not in best or b.score > best[b.ref].score:
            best[b.ref] = b
    draq = np.full(len(cands), np.nan)
    if cfg.align.draq_top > 0 and located:  # re-rank the top results by alignability (Sync from the Sea)
        from pipeline.alignment import draq_order

        top = [int(i) for i in order[: cfg.align.draq_top] if cands[i] in features.where]
        if top:
            by, values = draq_order(q_feats, [frames(cands[i]) for i in top], cfg.align)
            draq[top] = values
            chosen = set(top)
            rest = [i for i in order if int(i) not in chosen]
            order = np.r_[np.asarray(top)[by], rest].astype(np.int64)
    out = []
    for rank, i in enumerate(order):
        b = best.get(cands[i])
        spans = (b.q0, b.q1, b.r0, b.r1) if b is not None else (float("nan"),) * 4
        seg_score = (b.score if b is not None else 0.0) if located else float("nan")
        out.append(Match(query_id, cands[i], float(scores[i]), round(float(off_s[i]), 6), rank + 1, *spans,
                         raw_score=float(raw[i]), copy=bool(seg_score >= cfg.segments.copy_threshold),
                         segment_score=seg_score, draq=float(draq[i])))
    return out


def localiser_settings(cfg: Config) -> LocaliserSettings:
    """``segments:`` in the localiser's units (compared frames of the 15-fps stream)."""
    sg = cfg.segments
    step = max(1, round(FPS / sg.fps))
    per = FPS / step  # compared frames per second

    def frames(seconds: float) -> int:
        return round(seconds * per)

    return LocaliserSettings(method=sg.method, step=step, threshold=sg.frame_threshold,
                             band=frames(sg.band_s) if sg.method != "offset" else 0, max_gap=frames(sg.max_gap_s),
                             min_length=max(1, frames(sg.min_length_s)), max_segments=sg.max_segments,
                             max_overlap=sg.max_overlap, tn_top_k=sg.tn_top_k,
                             tn_max_step=max(1, frames(sg.tn_max_step_s)), contextualise=sg.contextualise,
                             max_elements=sg.max_elements)


def locate_copies(cfg: Config, query_id: str, query: VideoFeatures, ref_ids: list[str],
                  refs: list[VideoFeatures], offsets_s: np.ndarray) -> list[Box]:
    """The frame-level stage of one query: copy segments (seconds) in each reference, seeded by the
    re-ranking model's offsets."""
    found = localise(query.features, query.timestamps_s, [r.features for r in refs],
                     [r.timestamps_s for r in refs], np.asarray(offsets_s, dtype=np.float64), localiser_settings(cfg))
    return [Box(query_id, ref_ids[c.candidate], c.query_start_s, c.query_end_s, c.ref_start_s, c.ref_end_s,
                c.score) for c in found]


def search(layout: Layout, model_name: str, show_progress: bool = True) -> Path:
    """Every query of the dataset: candidates from the index, re-ranked with ``model_name``."""
    cfg = layout.cfg
    idx = read_index(layout.index_dir)
    store = descriptor_store(layout, model_name)
    index_model = cfg.index.model
    index_store = store if index_model == model_name else descriptor_store(layout, index_model)
    ids, means = index_store.mean_frames()
    mean_of = dict(zip(ids, means, strict=True))
    features = FeatureLookup.of_layout(layout)
    queries, allowed = search_scope(cfg, store.ids)
    model = configured_model(layout, model_name)
    rows: list[Match] = []
    segments: list[Box] = []
    for q in progress(queries, unit="query", desc=f"search {model_name}", wanted=show_progress):
        qf = features.get(q) if q in features.where else None
        rows += search_one(cfg, model, q, store.get([q]), mean_of[q], qf, idx, store, features, allowed, segments)
    return write_search_results(layout.search_dir(model_name), rows,
                                {"model": model_name, "dataset": cfg.name, "n_queries": len(queries),
                                 "segments_method": cfg.segments.method}, segments, cfg.segments.copy_threshold)


# --------------------------------------------------------------------------- evaluation


def evaluate(layout: Layout, model_name: str) -> Path:
    """Metrics and reports (JSON, Markdown, HTML) of one model's search results."""
    from pipeline.evaluate import evaluate_results
    from pipeline.lamv import held_out
    from pipeline.report import write_report

    cfg = layout.cfg
    rows = read_search_results(layout.search_dir(model_name))
    segments, _ = read_segments(layout.search_dir(model_name))
    store = descriptor_store(layout, model_name)
    durations = {v: frame_count_seconds(n) for v, n in store.n_frames.items()}
    result = evaluate_results(cfg, model_name, configured_model(layout, model_name), rows,
                              FeatureLookup.of_layout(layout), durations, store, [v.id for v in layout.videos],
                              held_out(layout), segments)
    result["metrics"] = {k: (float(v) if isinstance(v, np.floating) else v) for k, v in result["metrics"].items()}
    result["search_results"] = str(layout.search_dir(model_name))
    kernel = layout.kernel_file(model_name)
    if kernel is not None:
        from pipeline.lamv_store import load_kernel

        result["learned_kernel"] = {"file": str(kernel), **load_kernel(kernel).summary()}
    return write_report(layout.report_dir(model_name), cfg.name, model_name, result, cfg.data)


# --------------------------------------------------------------------------- the whole chain


STAGES = ("features", "descriptors", "index", "search", "evaluate")


@dataclass
class BuildSummary:
    ran: list[str]
    skipped: int
    failures: list[Failure]


def build(layout: Layout, until: str = "index", models: Sequence[str] | None = None,
          show_progress: bool = True) -> BuildSummary:
    """Run the chain up to ``until`` without a scheduler, skipping every complete output
    (the same completeness checks as the Luigi tasks, so both redo exactly what is missing)."""
    if until not in STAGES:
        raise ValueError(f"until must be one of {', '.join(STAGES)}, got {until!r}")
    cfg = layout.cfg
    stop = STAGES.index(until)
    summary = BuildSummary([], 0, [])

    def step(done: bool, task: str, run, **params: object) -> None:
        """Run ``run`` unless its outputs are complete; record it like a Luigi task."""
        if done:
            summary.skipped += 1
            return
        out = run()
        if isinstance(out, ShardResult):
            summary.failures.extend(out.failures)
        summary.ran.append(task + (f"({', '.join(f'{k}={v}' for k, v in params.items())})" if params else ""))
        record_run(layout, task, **params)

    if kind_of(cfg).generated:
        from pipeline.synthetic import ensure_demo_corpus

        ensure_demo_corpus(cfg.root)
    if layout.needs_vocabulary:
        step(completeness.vocabulary_complete(layout.vocab_path), "TrainVocabulary",
             lambda: train_vocabulary(layout, show_progress))
    if layout.needs_frame_model:
        step(completeness.frame_model_complete(layout.frame_model_path), "TrainFrameModel",
             lambda: train_frame_model(layout, show_progress))
    if pca_needed(layout):
        step(completeness.pca_complete(layout.pca_path), "TrainPCA", lambda: train_pca(layout, show_progress))
    for s in range(layout.n_shards):
        step(completeness.feature_shard_complete(layout.feature_shard_dir(s)), "ExtractFeatures",
             lambda s=s: extract_shard(layout, s, show_progress), shard=s)
    if stop >= 1:
        from pipeline.lamv import train_kernel

        for m in layout.trained_kernels:
            step(completeness.lamv_kernel_complete(layout.lamv_path(m)), "TrainLAMV",
                 lambda m=m: train_kernel(layout, m, show_progress), model=m)
        from pipeline.tca import train_tca_model

        for m in layout.trained_tca:
            step(completeness.tca_complete(layout.tca_path(m)), "TrainTCA",
                 lambda m=m: train_tca_model(layout, m, show_progress), model=m)
        for s in range(layout.n_shards):
            for m in cfg.models:
                step(completeness.descriptors_complete(layout.descriptor_path(m, s)), "ComputeDescriptors",
                     lambda s=s, m=m: describe_shard(layout, layout.feature_shard_dir(s), m), shard=s, model=m)
    if stop >= 2:
        step(completeness.index_complete(layout.index_dir), "BuildIndex", lambda: build_index(layout))
    chosen = list(models) if models else (list(cfg.evaluate.models) if stop >= 4 else [cfg.search.model])
    if stop >= 3:
        for m in chosen:
            step(completeness.search_complete(layout.search_dir(m)), "Search",
                 lambda m=m: search(layout, m, show_progress), model=m)
    if stop >= 4:
        for m in chosen:
            step(completeness.reports_complete(layout.report_dir(m), layout.search_dir(m)), "Evaluate",
                 lambda m=m: evaluate(layout, m), model=m)
    return summary


def record_run(layout: Layout, task: str, **params: object) -> None:
    """Append one line per executed step to ``task_runs.log`` (who ran what, when)."""
    line = json.dumps({"task": task, **params, "host": socket.gethostname(), "pid": os.getpid(),
                       "time": utc_now()}) + "\n"
    layout.work.mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.task_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())  # one small O_APPEND write: atomic across processes
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- query


@dataclass
class QueryResult:
    video: str
    model: str
    index_dir: Path
    n_frames: int
    matches: list[Match]

    @property
    def duration_s(self) -> float:
        return frame_count_seconds(self.n_frames)


def find_index(cfg: Config) -> Path:
    """The index a dataset serves: its published version; else the batch index built with exactly
    these settings; else the newest batch index of the dataset (a warning names it: queries always
    run with the settings stored with the index they use)."""
    from pipeline.publish import current_version

    layout = Layout(cfg)
    published = current_version(layout.published_root)
    if published is not None:
        return published
    try:
        if completeness.index_complete(layout.index_dir):
            return layout.index_dir
    except ConfigError:
        pass  # the corpus is not reachable from here: use what was built
    built = sorted((d for d in layout.work.glob("index-*") if completeness.index_complete(d)),
                   key=lambda d: (d / "meta.h5").stat().st_mtime_ns)
    if built:
        log.warning("no index built with exactly these settings; using %s with the settings stored in it",
                    built[-1])
        return built[-1]
    how = (f"luigi --module pipeline BuildIndex --dataset {cfg.name} --local-scheduler"
           f" (or python -m pipeline build --dataset {cfg.name}), with the same --overrides")
    raise StepError(f"dataset {cfg.name}: no index under {layout.work}; build it first: {how}")


def query_features(cfg: Config, layout: Layout, path: Path) -> VideoFeatures:
    """Frame features of a video outside the corpus, with the index's own settings."""
    from extractors.decode import decode_video

    ex = configured_extractor(layout)
    d = decode_video(path, cfg.features.image_area, FPS, max_pixels=cfg.features.max_pixels)
    bs = cfg.features.batch_size
    crop = crop_black_bars if cfg.features.remove_black_bars else (lambda x: x)
    feats = [ex.describe(crop(d.frames[b0:b0 + bs])) for b0 in range(0, len(d.frames), bs)]
    return VideoFeatures(str(path), np.concatenate(feats), d.timestamps_s, {})


def query(video: Path, index_dir: Path, model_name: str | None = None, top: int = 10) -> QueryResult:
    """Rank the indexed videos that contain a copy of ``video``, with offsets and spans (seconds).

    Every setting (weights, PCA, models) comes from the configuration stored with the index.
    """
    from pipeline.publish import MANIFEST, read_manifest

    idx = read_index(index_dir)
    cfg = config_from_json(str(idx.attrs["config"]), f"{index_dir / 'meta.h5'} (stored configuration)")
    layout = Layout(cfg)
    model_name = model_name or cfg.search.model
    if model_name not in cfg.models:
        raise StepError(f"model {model_name!r} is not one of this index's models ({', '.join(cfg.models)})")
    cfg.data["search"]["keep"] = top
    cfg.data["search"]["top_k"] = max(cfg.search.top_k, top)
    cfg = Config(cfg.data, cfg.source)
    manifest = read_manifest(index_dir) if (index_dir / MANIFEST).is_file() else None
    if manifest is not None:
        store = DescriptorStore.from_manifest(manifest["videos"], model_name)
        features = FeatureLookup.of_manifest(manifest)
    else:
        store = descriptor_store(layout, model_name)
        features = FeatureLookup.of_layout(layout)
    vf = query_features(cfg, layout, video)  # decoded and described once
    times = vf.timestamps_s * FPS
    model = configured_model(layout, model_name)
    fv = describe_video(model, vf.features, times)
    imodel = model if cfg.index.model == model_name else configured_model(layout, cfg.index.model)
    ifv = fv if imodel is model else describe_video(imodel, vf.features, times)
    mean = mean_frame_component(imodel, ifv[None]).numpy()[0]
    rows = search_one(cfg, model, str(video), fv[None], mean, vf, idx, store, features, None)
    return QueryResult(str(video), model_name, index_dir, len(vf.features), rows)
