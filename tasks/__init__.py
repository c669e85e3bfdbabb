"""Luigi tasks: they only wire ``requires`` / ``input`` / ``output`` to ``pipeline.steps.extractor``.

    luigi --module pipeline BuildIndex --dataset EVVE --local-scheduler
    luigi --module pipeline Evaluate --dataset demo --overrides "search.top_k=20"

Tasks work on shards of videos (``shards.size`` per task), never one task per
video: the central scheduler's cost grows quickly with the number of tasks.
Every path comes from ``pipeline.store.layout``.  A task is complete only when each
of its outputs passes its validity check (``pipeline.store.completeness``) *and*
everything it requires is complete, so re-running after damage or deletion
redoes exactly the missing outputs and what is made from them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import luigi
from luigi.task import flatten

from pipeline.config.load import Config, load_config
from pipeline.config.schema import ConfigError
from pipeline.core.errors import StepError
from pipeline.datasets.kinds import kind_of
from pipeline.datasets.listing import Video, list_videos
from pipeline.datasets.synthetic import DEMO_MARKER, ensure_demo_corpus
from pipeline.steps.build import record_run
from pipeline.steps.describe import describe_shard
from pipeline.steps.evaluate import evaluate
from pipeline.steps.extract import extract_shard
from pipeline.steps.extractor import check_weights, needs_weights, pca_needed
from pipeline.steps.fitting import train_frame_model, train_pca, train_vocabulary
from pipeline.steps.index import build_index
from pipeline.steps.operations.refresh import is_up_to_date, locked_refresh
from pipeline.steps.search import search
from pipeline.steps.training.train import train_model
from pipeline.store import completeness
from pipeline.store.layout import Layout
from tasks.luigi_settings import apply_defaults, log_failures
from tasks.storage import Storage, storage_for

apply_defaults()
log_failures()

_LISTINGS: dict[str, list[Video]] = {}


def shared_listing(cfg: Config) -> list[Video]:
    """One corpus listing per configuration and process: every task of a run sees the same
    corpus, and hundreds of shard tasks do not each walk it.  (A corpus that cannot be listed
    yet, e.g. a demo corpus before generation, is not remembered.)"""
    key = cfg.to_json()
    if key not in _LISTINGS:
        _LISTINGS[key] = list_videos(cfg)
    return _LISTINGS[key]


def forget_listings() -> None:
    """Forget the listings (the corpus changed; a new run in the same process must see it)."""
    _LISTINGS.clear()


class DatasetTask(luigi.Task):
    """Base: a dataset config name (or YAML path) and optional ``key.path=value;...`` overrides."""

    dataset = luigi.Parameter(description="configs/<NAME>.yaml or a path to a YAML file")
    overrides = luigi.Parameter(default="", description="'key.path=value;key2=value2' config overrides")

    @cached_property
    def cfg(self) -> Config:
        return load_config(self.dataset, self.overrides)

    @property
    def layout(self) -> Layout:
        return Layout(self.cfg, shared_listing)

    @cached_property
    def store(self) -> Storage:
        """Where outputs live (local/shared filesystem or object storage): targets and staging."""
        return storage_for(self.cfg)

    def outputs_valid(self) -> bool:
        return all(t.exists() for t in flatten(self.output()))

    def complete(self) -> bool:
        """Every output valid *and* every requirement complete, so a damaged or deleted
        artifact anywhere below is found and redone.  A task scheduled only because
        something below it was missing keeps its own valid outputs: every path hashes
        everything upstream and the steps are deterministic, so they are still right
        (``run`` returns at once, as ``python -m pipeline build`` skips them)."""
        if not self.outputs_valid():
            return False
        return all(r.complete() for r in flatten(self.requires()))

    def corpus_ready(self) -> list[luigi.Task]:
        """The task that produces the corpus, for kinds the pipeline generates (demo)."""
        return [self.clone(GenerateCorpus)] if kind_of(self.cfg.dataset).generated else []

    def corpus_listed(self) -> bool:
        """True when the corpus can be listed now (a generated one may not exist yet)."""
        try:
            _ = self.layout.videos
        except ConfigError:
            if kind_of(self.cfg.dataset).generated:
                return False
            raise
        return True

    def preflight(self) -> None:
        """Fail at scheduling, before any work, when frame features are still owed and the CNN
        weights are missing.  Every task calls it from ``requires``, so the root task of a run
        fails at once (a failing dependency would leave the root pending until the worker's
        idle limit)."""
        try:
            check_weights(self.cfg)
        except StepError:
            if self.extraction_pending():
                raise

    def extraction_pending(self) -> bool:
        if not needs_weights(self.cfg):
            return False
        if not self.corpus_listed():
            return True
        lay = self.layout
        if pca_needed(lay) and not completeness.pca_complete(lay.pca_path):
            return True
        return not all(completeness.feature_shard_complete(lay.feature_shard_dir(s)) for s in range(lay.n_shards))

    def record(self, **params: object) -> None:
        record_run(self.layout, type(self).__name__, **params)

    def fetch_inputs(self) -> None:
        """Stage in the stored artifacts this task reads (fitted vocabulary, network, PCA)."""
        for t in flatten(self.input()):
            if hasattr(t, "local"):
                self.store.fetch(t.local)


class GenerateCorpus(DatasetTask):
    """A corpus the pipeline makes itself (``dataset.kind: demo``: planted copies + ground truth)."""

    def requires(self):
        return []

    def output(self):

        return luigi.LocalTarget(str(self.cfg.root / DEMO_MARKER))

    def run(self):

        ensure_demo_corpus(self.cfg.root)
        forget_listings()


class CorpusFit(DatasetTask):
    """Something fitted on the corpus's own frames before any feature: one file, one step."""

    def target_path(self) -> Path:
        raise NotImplementedError

    def fit(self) -> None:
        raise NotImplementedError

    is_valid: Callable[[Path], bool]

    def requires(self):
        return self.corpus_ready()

    def output(self):
        return self.store.target(self.target_path(), type(self).is_valid)

    def run(self):
        if self.outputs_valid():
            return
        self.fetch_inputs()
        self.fit()
        self.store.publish(self.output().local)
        self.record()


class TrainVocabulary(CorpusFit):
    """MultiVLAD vocabularies fitted on the corpus's frames (only for ``features.extractor: mvlad``)."""

    is_valid = staticmethod(completeness.vocabulary_complete)

    def target_path(self) -> Path:
        return self.layout.vocab_path

    def fit(self) -> None:
        train_vocabulary(self.layout)


class TrainFrameModel(CorpusFit):
    """The ``selfsup`` extractor's network, trained self-supervised on the corpus's frames
    (only for ``features.extractor: selfsup``); resumes an interrupted training."""

    is_valid = staticmethod(completeness.frame_model_complete)

    def target_path(self) -> Path:
        return self.layout.frame_model_path

    def fit(self) -> None:
        train_frame_model(self.layout)


def fitted_first(task: DatasetTask) -> list[luigi.Task]:
    """What the extractor fits on the corpus before any frame feature: vocabulary or network."""
    lay = task.layout
    return ([task.clone(TrainVocabulary)] if lay.needs_vocabulary else []) + \
        ([task.clone(TrainFrameModel)] if lay.needs_frame_model else [])


class TrainPCA(CorpusFit):
    """PCA-whitening trained on the corpus (only when ``features.pca: trained``), after the vocabulary
    or network the extractor needs."""

    is_valid = staticmethod(completeness.pca_complete)

    def requires(self):
        self.preflight()
        return fitted_first(self) or self.corpus_ready()

    def target_path(self) -> Path:
        return self.layout.pca_path

    def fit(self) -> None:
        train_pca(self.layout)


class ExtractFeatures(DatasetTask):
    """Frame features of one shard; output: the shard's ``_pack.h5`` (written last)."""

    shard = luigi.IntParameter()

    def requires(self):
        self.preflight()
        lay = self.layout
        fitted = ([self.clone(TrainPCA)] if pca_needed(lay) else []) + fitted_first(self)
        return fitted or self.corpus_ready()

    def output(self):
        return self.store.target(self.layout.feature_shard_dir(self.shard) / "_pack.h5",
                                 lambda p: completeness.feature_shard_complete(p.parent))

    def run(self):
        if self.outputs_valid():
            return
        self.fetch_inputs()  # the fitted PCA / vocabulary / network
        shard = self.output().local.parent
        self.store.fetch(shard)  # videos finished by an interrupted attempt are kept
        extract_shard(self.layout, self.shard)
        self.store.publish(shard, last=shard / "_pack.h5")
        self.record(shard=self.shard)


class Train(DatasetTask):
    """A model trained on the dataset's ground truth (``models.<model>``: a learned LAMV kernel, a TCA; any
    type with a trained file in ``pipeline.store.model_types``), over every shard's frame features, held-out
    fold excluded; resumable."""

    model = luigi.Parameter()

    def requires(self):
        self.preflight()
        return [self.clone(ExtractFeatures, shard=s) for s in range(self.layout.n_shards)]

    def output(self):
        return self.store.target(self.layout.trained_path(self.model),
                                 lambda _p: completeness.trained_model_complete(self.layout, self.model))

    def run(self):
        if self.outputs_valid():
            return
        for t in flatten(self.input()):
            self.store.fetch(t.local.parent)
        train_model(self.layout, self.model)
        self.store.publish(self.output().local)
        self.record(model=self.model)


class ComputeDescriptors(DatasetTask):
    """Temporal descriptors of one shard for one model (after its kernel's training, for a learned one)."""

    shard = luigi.IntParameter()
    model = luigi.Parameter()

    def requires(self):
        self.preflight()
        trained = [self.clone(Train)] if self.layout.trains(self.model) else []
        return [self.clone(ExtractFeatures), *trained]

    def output(self):
        return self.store.target(self.layout.descriptor_path(self.model, self.shard),
                                 completeness.descriptors_complete)

    def run(self):
        if self.outputs_valid():
            return
        feature_shard = self.input()[0].local.parent
        self.store.fetch(feature_shard)
        if self.layout.trains(self.model):
            self.store.fetch(self.layout.trained_path(self.model))
        describe_shard(self.layout, feature_shard, self.model)
        self.store.publish(self.output().local)
        self.record(shard=self.shard, model=self.model)


class BuildIndex(DatasetTask):
    """FAISS index over every shard (descriptors of all configured models are computed too)."""

    def descriptor_tasks(self) -> list[luigi.Task]:
        return [self.clone(ComputeDescriptors, shard=s, model=m)
                for s in range(self.layout.n_shards) for m in self.cfg.models]

    def requires(self):
        """Static dependencies must not change between scheduling and run time (Luigi checks them
        again before ``run``): a generated corpus does not exist yet at scheduling, so its shards
        are dynamic dependencies (``run`` yields them); any other corpus's shards are static."""
        self.preflight()
        if kind_of(self.cfg.dataset).generated:
            return self.corpus_ready()
        return self.descriptor_tasks()

    def complete(self):
        if not self.outputs_valid() or not self.corpus_listed():
            return False
        deps = flatten(self.requires())
        if kind_of(self.cfg.dataset).generated:  # the shards are not static requirements: check them too
            deps += self.descriptor_tasks()
        return all(r.complete() for r in deps)

    def output(self):
        if not self.corpus_listed():
            return self.store.target(self.layout.work / ".corpus-not-generated-yet")
        return self.store.target(self.layout.index_dir / "meta.h5",
                                 lambda p: completeness.index_complete(p.parent))

    def run(self):
        # a generated corpus exists only now: its shards become dynamic dependencies
        deps = self.descriptor_tasks()
        yield deps
        if self.outputs_valid():
            return
        for t in deps:
            if t.model == self.cfg.index.model:
                self.store.fetch(t.output().local)
        out = build_index(self.layout)
        self.store.publish(out, last=out / "meta.h5")
        self.record()


class Search(DatasetTask):
    """Candidates from the index, re-ranked by offset scoring with ``model``."""

    model = luigi.Parameter(default="", description="model name (default: search.model)")

    @property
    def model_name(self) -> str:
        return self.model or self.cfg.search.model

    def requires(self):
        self.preflight()
        return self.clone(BuildIndex)

    def output(self):
        if not self.corpus_listed():
            return self.store.target(self.layout.work / ".corpus-not-generated-yet")
        return self.store.target(self.layout.search_dir(self.model_name) / "results.h5",
                                 lambda p: completeness.search_complete(p.parent))

    def run(self):
        if self.outputs_valid():
            return
        self.store.fetch(self.input().local.parent)
        for s in range(self.layout.n_shards):
            for m in {self.model_name, self.cfg.index.model}:
                self.store.fetch(self.layout.descriptor_path(m, s))
            self.store.fetch(self.layout.feature_shard_dir(s))
        out = search(self.layout, self.model_name)
        self.store.publish(out, last=out / "results.h5")
        self.record(model=self.model_name)


class Evaluate(DatasetTask):
    """Metrics and reports for each model of ``evaluate.models`` (or just ``model``)."""

    model = luigi.Parameter(default="", description="one model (default: all of evaluate.models)")

    @property
    def models(self) -> list[str]:
        return [self.model] if self.model else list(self.cfg.evaluate.models)

    def requires(self):
        self.preflight()
        return [self.clone(Search, model=m) for m in self.models]

    def output(self):
        """The three report files of each model; ``report.json`` must name the current search results."""
        if not self.corpus_listed():
            return [self.store.target(self.layout.work / ".corpus-not-generated-yet")]
        out = []
        for m in self.models:
            d, s = self.layout.report_dir(m), self.layout.search_dir(m)
            out += [self.store.target(d / name, lambda _p, d=d, s=s: completeness.reports_complete(d, s))
                    for name in Layout.REPORT_FILES]
        return out

    def run(self):
        if self.outputs_valid():
            return
        for s in range(self.layout.n_shards):
            for m in self.models:
                self.store.fetch(self.layout.descriptor_path(m, s))
            self.store.fetch(self.layout.feature_shard_dir(s))
        for m in self.models:
            self.store.fetch(self.layout.search_dir(m))
            out = evaluate(self.layout, m)
            self.store.publish(out, last=out / "report.json")
            self.record(model=m)


class RefreshCorpus(DatasetTask):
    """Incremental refresh: process new/changed videos, drop removed ones, publish a new index version.

    The same step as ``python -m pipeline refresh`` (PCA training included when the
    settings need one).  Complete when the published manifest matches the files on
    disk (a listing and ``stat`` only), so a cron run with nothing new returns in seconds.
    """

    keep = luigi.IntParameter(default=3, description="published versions kept for rollback")

    def requires(self):
        if not self.complete():
            self.preflight()
        return self.corpus_ready()

    def output(self):
        return []

    def complete(self):

        return self.corpus_listed() and is_up_to_date(self.layout)

    def run(self):

        if self.store.remote:
            raise RuntimeError("RefreshCorpus publishes versions behind a symbolic link and needs a POSIX "
                               "work_dir (storage: null); object storage is supported by the batch tasks")
        locked_refresh(self.layout, keep=self.keep)
        self.record()


__all__ = ["BuildIndex", "ComputeDescriptors", "Evaluate", "ExtractFeatures", "GenerateCorpus", "RefreshCorpus",
           "Search", "Train", "TrainFrameModel", "TrainPCA", "TrainVocabulary",
           "forget_listings"]
