"""Trained PCA-whitening files (HDF5, schema ``videoalign/pca``) with their provenance."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py

from extractors.pca import PCAError, PCAWhitening
from pipeline.artifacts import atomic_h5

SCHEMA = "videoalign/pca"
SCHEMA_VERSION = 1


def save_pca(pca: PCAWhitening, path: str | os.PathLike) -> Path:
    """Write ``pca`` to HDF5 atomically (``mean``, ``DVt``, provenance as JSON)."""
    path = Path(path)
    with atomic_h5(path) as f:
        f.attrs["schema"] = SCHEMA
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.create_dataset("mean", data=pca.mean)
        f.create_dataset("DVt", data=pca.dvt)
        f.attrs["provenance"] = json.dumps(pca.provenance, sort_keys=True)
        f.attrs["pca_id"] = pca.pca_id
    return path


def load_pca(path: str | os.PathLike) -> PCAWhitening:
    """Read a PCA written by :func:`save_pca` (refuses other schemas)."""
    p = Path(path)
    if not p.is_file():
        raise PCAError(f"{p}: PCA file not found")
    try:
        with h5py.File(p, "r") as f:
            if f.attrs.get("schema") != SCHEMA:
                raise PCAError(f"{p}: not a PCA file (schema {f.attrs.get('schema')!r})")
            if int(f.attrs.get("schema_version", -1)) != SCHEMA_VERSION:
                raise PCAError(f"{p}: PCA schema version {f.attrs.get('schema_version')} "
                               f"is not supported (expected {SCHEMA_VERSION})")
            return PCAWhitening(f["mean"][()], f["DVt"][()], json.loads(f.attrs["provenance"]))
    except OSError as exc:
        raise PCAError(f"{p}: unreadable HDF5 ({exc})") from None
