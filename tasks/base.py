"""What every task of a dataset shares: its configuration, layout and storage, completeness that looks
all the way down, the scheduling-time weights check, and the record of runs."""

from __future__ import annotations

import logging
from functools import cached_property

import luigi
from luigi.task import flatten

from pipeline.config.load import Config, load_config
from pipeline.config.schema import ConfigError
from pipeline.core.errors import StepError
from pipeline.datasets.kinds import kind_of
from pipeline.datasets.listing import Video, list_videos
from pipeline.steps.build import record_run
from pipeline.steps.features.extractor import check_weights, needs_weights, pca_needed
from pipeline.store import completeness
from pipeline.store.layout import Layout
from tasks.storage import Storage, storage_for

_LISTINGS: dict[str, list[Video]] = {}
_ANNOUNCED: set[str] = set()
log = logging.getLogger("pipeline")


def shared_listing(cfg: Config) -> list[Video]:
    """One corpus listing per configuration and process: every task of a run sees the same
    corpus, and hundreds of shard tasks do not each walk it.  (A corpus that cannot be listed
    yet, e.g. a demo corpus before generation, is not remembered.)"""
    key = cfg.to_json()
    if key not in _LISTINGS:
        _LISTINGS[key] = list_videos(cfg.dataset)
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
        cfg = load_config(self.dataset, self.overrides)
        if cfg.locations not in _ANNOUNCED:  # once per process: where this run reads and writes
            _ANNOUNCED.add(cfg.locations)
            log.info("%s", cfg.locations)
        return cfg

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
        if kind_of(self.cfg.dataset).hashes:
            raise ConfigError(f"dataset {self.cfg.name} is a folder of Meta TMK hashes (dataset.kind: tmk): search it "
                              f"with 'luigi --module pipeline SearchHashes --dataset {self.dataset}' or "
                              f"'python -m pipeline tmk query'")
        try:
            check_weights(self.cfg.features)
        except StepError:
            if self.extraction_pending():
                raise

    def extraction_pending(self) -> bool:
        if not needs_weights(self.cfg.features):
            return False
        if not self.corpus_listed():
            return True
        lay = self.layout
        if pca_needed(lay) and not completeness.pca_complete(lay.pca_path):
            return True
        return not all(completeness.feature_shard_complete(lay.feature_shard_dir(s)) for s in range(lay.n_shards))

    def record(self, **params: object) -> None:
        record_run(self.layout, type(self).__name__, **params)
