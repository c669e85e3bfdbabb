"""The FAISS index over the mean-frame components of ``index.model``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from extractors.runtime import failpoints
from index.faiss_index import SearchParams, build_faiss, ivf_of, resolve_factory
from pipeline.config.load import Config
from pipeline.config.schema import IndexConfig
from pipeline.core.errors import StepError
from pipeline.steps.describe import descriptor_store
from pipeline.store.index_files import write_index
from pipeline.store.layout import Layout

log = logging.getLogger(__name__)


def index_attrs(cfg: Config, factory: str, n: int) -> dict:
    return {"index_type": factory, "model": cfg.index.model, "dataset": cfg.name, "config": cfg.to_json(),
            "config_source": cfg.source, "n_videos": n}


def search_params(ix: IndexConfig) -> SearchParams:
    return SearchParams(nprobe=ix.nprobe, ef_search=ix.ef_search)


def make_index(ix: IndexConfig, vectors, ids=None) -> tuple[object, str]:
    """The index ``index:`` asks for over ``vectors (n, d)`` (under ``ids``), and its factory string."""
    factory = resolve_factory(ix.factory, len(vectors))
    index = build_faiss(vectors, factory, ids=ids, train_size=ix.train_size)
    if ix.on_disk and ivf_of(index) is None:
        log.info("index.on_disk applies to IVF indexes; %s is kept in memory", factory)
    return index, factory


def build_index(layout: Layout) -> Path:
    """FAISS index over the mean-frame components of ``index.model``."""
    cfg = layout.cfg
    ids, vectors = descriptor_store(layout, cfg.index.model).mean_frames()
    if not ids:
        raise StepError(f"dataset {cfg.name}: no video has features; nothing to index "
                        f"(see failures.csv in {layout.features_dir})")
    index, factory = make_index(cfg.index, vectors)
    failpoints.hit("index.built")
    log.info("index %s: %d videos, %s", cfg.name, len(ids), factory)
    return write_index(layout.index_dir, index, ids, {**index_attrs(cfg, factory, len(ids)), "trained_on": len(ids)},
                       on_disk=cfg.index.on_disk)
