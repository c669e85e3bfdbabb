"""Trained PCA-whitening files (HDF5, schema ``videoalign/pca``) with their provenance."""

from __future__ import annotations

import os
from pathlib import Path

from extractors.frame.pca import PCAError, PCAWhitening
from pipeline.core.hdf5 import ArtifactError, load_fitted, save_fitted

SCHEMA = "videoalign/pca"
SCHEMA_VERSION = 1


def save_pca(pca: PCAWhitening, path: str | os.PathLike) -> Path:
    """Write ``pca`` to HDF5 atomically (``mean``, ``DVt``, provenance as JSON)."""
    return save_fitted(path, SCHEMA, SCHEMA_VERSION, {"mean": pca.mean, "DVt": pca.dvt}, pca.provenance,
                       ("pca_id", pca.pca_id))


def load_pca(path: str | os.PathLike) -> PCAWhitening:
    """Read a PCA written by :func:`save_pca` (refuses other schemas); errors are :class:`PCAError`."""
    if not Path(path).is_file():
        raise PCAError(f"{path}: PCA file not found")
    try:
        (mean, dvt), provenance = load_fitted(path, SCHEMA, SCHEMA_VERSION, ("mean", "DVt"), "PCA")
    except ArtifactError as exc:
        raise PCAError(str(exc)) from None
    return PCAWhitening(mean, dvt, provenance)
