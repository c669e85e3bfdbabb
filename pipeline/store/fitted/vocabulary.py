"""MultiVLAD vocabulary files (HDF5, schema ``videoalign/vocabulary``) with their provenance."""

from __future__ import annotations

import os
from pathlib import Path

from extractors.frame.mvlad import Vocabulary
from pipeline.core.hdf5 import load_fitted, save_fitted

SCHEMA = "videoalign/vocabulary"
SCHEMA_VERSION = 1


def save_vocabulary(vocab: Vocabulary, path: str | os.PathLike) -> Path:
    """Write ``vocab`` atomically: ``mean (1, 128)``, ``proj (p, 128)``, ``centroids (V, k, p)``."""
    return save_fitted(path, SCHEMA, SCHEMA_VERSION,
                       {"mean": vocab.mean, "proj": vocab.proj, "centroids": vocab.centroids}, vocab.provenance,
                       ("vocab_id", vocab.vocab_id))


def load_vocabulary(path: str | os.PathLike) -> Vocabulary:
    """Read a vocabulary written by :func:`save_vocabulary` (refuses other schemas)."""
    (mean, proj, centroids), provenance = load_fitted(path, SCHEMA, SCHEMA_VERSION, ("mean", "proj", "centroids"),
                                                      "vocabulary")
    return Vocabulary(mean, proj, centroids, provenance)
