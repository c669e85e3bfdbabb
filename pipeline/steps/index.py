"""The FAISS index over the mean-frame components of ``index.model``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from extractors.runtime import failpoints
from index.faiss_index import build_faiss, choose_index_type
from pipeline.config.load import Config
from pipeline.core.errors import StepError
from pipeline.steps.describe import descriptor_store
from pipeline.store.index_files import write_index
from pipeline.store.layout import Layout

log = logging.getLogger(__name__)


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
