"""Luigi tasks: thin wrappers around ``pipeline.runner`` (all logic lives there).

    luigi --module pipeline BuildIndex --dataset EVVE --local-scheduler
    luigi --module pipeline Evaluate --dataset demo --overrides "search.top_k=20"

Tasks work on shards of videos (``shards.size`` per task), never one task per
video: the central scheduler's cost grows quickly with the number of tasks.
Every output is written atomically by the runner; a task is complete when its
output exists, so re-running a finished pipeline does nothing and deleting
one shard's output redoes only that shard.
"""

from __future__ import annotations

from functools import cached_property

import luigi

from pipeline import runner
from pipeline.config import Config, load_config
from pipeline.storage import Storage, storage_for


class DatasetTask(luigi.Task):
    """Base: a dataset config name (or YAML path) and optional ``key.path=value;...`` overrides."""

    dataset = luigi.Parameter(description="configs/<NAME>.yaml or a path to a YAML file")
    overrides = luigi.Parameter(default="", description="'key.path=value;key2=value2' config overrides")

    @cached_property
    def cfg(self) -> Config:
        return load_config(self.dataset, self.overrides)

    @cached_property
    def store(self) -> Storage:
        """Where outputs live (local/shared filesystem or object storage): targets and staging."""
        return storage_for(self.cfg)

    def _same(self, cls, **kw):
        return cls(dataset=self.dataset, overrides=self.overrides, **kw)

    def _fetch_descriptors(self, models) -> None:
        for m in models:
            for s in range(runner.n_shards(self.cfg)):
                self.store.fetch(runner.descriptor_path(self.cfg, m, s))

    def _fetch_features(self) -> None:
        for s in range(runner.n_shards(self.cfg)):
            self.store.fetch(runner.feature_shard_dir(self.cfg, s))


class TrainPCA(DatasetTask):
    """PCA-whitening trained on the corpus (only when ``features.pca: trained``)."""

    def output(self):
        return self.store.target(runner.pca_path(self.cfg))

    def run(self):
        runner.run_train_pca(self.cfg)
        self.store.publish(runner.pca_path(self.cfg))


class ExtractFeatures(DatasetTask):
    """Frame features of one shard; output: the shard's ``_pack.h5`` (written last)."""

    shard = luigi.IntParameter()

    def requires(self):
        return [self._same(TrainPCA)] if runner.pca_needs_training(self.cfg) else []

    def output(self):
        return self.store.target(runner.feature_shard_dir(self.cfg, self.shard) / "_pack.h5")

    def run(self):
        if runner.pca_needs_training(self.cfg):
            self.store.fetch(runner.pca_path(self.cfg))
        shard = runner.feature_shard_dir(self.cfg, self.shard)
        self.store.fetch(shard)  # videos finished by an interrupted attempt are kept
        runner.run_extract_shard(self.cfg, self.shard)
        self.store.publish(shard, last=shard / "_pack.h5")
        runner.record_run(self.cfg, "ExtractFeatures", shard=self.shard)


class ComputeDescriptors(DatasetTask):
    """Temporal descriptors of one shard for one model."""

    shard = luigi.IntParameter()
    model = luigi.Parameter()

    def requires(self):
        return self._same(ExtractFeatures, shard=self.shard)

    def output(self):
        return self.store.target(runner.descriptor_path(self.cfg, self.model, self.shard))

    def run(self):
        self.store.fetch(runner.feature_shard_dir(self.cfg, self.shard))
        runner.run_descriptors(self.cfg, self.shard, self.model)
        self.store.publish(runner.descriptor_path(self.cfg, self.model, self.shard))
        runner.record_run(self.cfg, "ComputeDescriptors", shard=self.shard, model=self.model)


class BuildIndex(DatasetTask):
    """FAISS index over every shard (descriptors of all configured models are computed too)."""

    def requires(self):
        return [self._same(ComputeDescriptors, shard=s, model=m)
                for s in range(runner.n_shards(self.cfg)) for m in self.cfg["models"]]

    def output(self):
        return self.store.target(runner.index_dir(self.cfg) / "meta.h5")

    def run(self):
        self._fetch_descriptors([self.cfg.get("index.model")])
        runner.run_build_index(self.cfg)
        self.store.publish(runner.index_dir(self.cfg), last=runner.index_dir(self.cfg) / "meta.h5")
        runner.record_run(self.cfg, "BuildIndex")


class Search(DatasetTask):
    """Candidates from the index, re-ranked by offset scoring with ``model``."""

    model = luigi.Parameter(default="", description="model name (default: search.model)")

    @property
    def model_name(self) -> str:
        return self.model or self.cfg.get("search.model")

    def requires(self):
        return self._same(BuildIndex)

    def output(self):
        return self.store.target(runner.search_dir(self.cfg, self.model_name) / "results.h5")

    def run(self):
        self.store.fetch(runner.index_dir(self.cfg))
        self._fetch_descriptors({self.model_name, self.cfg.get("index.model")})
        self._fetch_features()
        runner.run_search(self.cfg, self.model_name)
        out = runner.search_dir(self.cfg, self.model_name)
        self.store.publish(out, last=out / "results.h5")


class Evaluate(DatasetTask):
    """Metrics and reports for each model of ``evaluate.models`` (or just ``model``)."""

    model = luigi.Parameter(default="", description="one model (default: all of evaluate.models)")

    @property
    def models(self) -> list[str]:
        return [self.model] if self.model else list(self.cfg.get("evaluate.models"))

    def requires(self):
        return [self._same(Search, model=m) for m in self.models]

    def output(self):
        return [self.store.target(runner.report_dir(self.cfg, m) / "report.json") for m in self.models]

    def complete(self):
        """Reports exist *and* were made from the current search results (the corpus may have
        changed since: ``reports/<dataset>/<model>/`` has no hash in its path)."""
        import json

        for m in self.models:
            target = self.store.target(runner.report_dir(self.cfg, m) / "report.json")
            if not target.exists():
                return False
            with target.open("r") as f:
                if json.load(f).get("search_results") != str(runner.search_dir(self.cfg, m)):
                    return False
        return True

    def run(self):
        self._fetch_descriptors(self.models)
        self._fetch_features()
        for m in self.models:
            self.store.fetch(runner.search_dir(self.cfg, m))
            runner.run_evaluate(self.cfg, m)
            out = runner.report_dir(self.cfg, m)
            self.store.publish(out, last=out / "report.json")


class RefreshCorpus(DatasetTask):
    """Incremental refresh: process new/changed videos, drop removed ones, publish a new index version.

    Complete when the published manifest matches the files on disk (a listing and
    ``stat`` only), so a cron run with nothing new returns in seconds.
    """

    keep = luigi.IntParameter(default=3, description="published versions kept for rollback")

    def complete(self):
        from pipeline.refresh import is_up_to_date

        return is_up_to_date(self.cfg)

    def run(self):
        from pipeline.lock import exclusive_lock
        from pipeline.refresh import run_refresh

        if self.store.remote:
            raise RuntimeError("RefreshCorpus publishes versions behind a symbolic link and needs a POSIX "
                               "work_dir (storage: null); object storage is supported by the batch tasks")
        with exclusive_lock(self.cfg.work_dir / "refresh.lock"):
            run_refresh(self.cfg, keep=self.keep)


__all__ = ["BuildIndex", "ComputeDescriptors", "Evaluate", "ExtractFeatures", "RefreshCorpus", "Search",
           "TrainPCA"]
