"""HDF5 files with a schema: atomic writing, reading with schema checks, fitted arrays.

Every file carries ``schema`` and ``schema_version`` file attributes; readers refuse any other
schema or version with a one-line :class:`ArtifactError`.  The file format is pinned to the
HDF5 1.8 feature set (``libver=('earliest', 'v108')``) so older HDF5 tools can read it.
Artifacts carry no wall-clock time, so the same inputs and settings give byte-identical files
whichever entry point (CLI or Luigi) made them; ``task_runs.log`` records when.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from extractors.runtime.errors import VideoAlignError
from pipeline.core.atomic import atomic_path
from pipeline.core.version import __version__

LIBVER = ("earliest", "v108")


class ArtifactError(VideoAlignError, ValueError):
    """An artifact that is missing, unreadable or of the wrong schema (message names the file)."""


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """An HDF5 file opened for writing that appears at ``path`` only once complete."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w", libver=LIBVER) as f:
        f.attrs["package_version"] = __version__
        yield f


def open_h5(p: Path) -> h5py.File:
    """Open an HDF5 file read-only, or raise a one-line :class:`ArtifactError`."""
    if not p.is_file():
        raise ArtifactError(f"{p}: file not found")
    try:
        return h5py.File(p, "r")
    except OSError as exc:
        raise ArtifactError(f"{p}: not a readable HDF5 file ({exc})") from None


def open_checked(path: str | os.PathLike, schema: str, version: int | tuple[int, ...]) -> h5py.File:
    """Open an artifact read-only after checking its schema and version (one of ``version``)."""
    accepted = version if isinstance(version, tuple) else (version,)
    p = Path(path)
    f = open_h5(p)
    found = f.attrs.get("schema")
    found_v = f.attrs.get("schema_version")
    if isinstance(found, bytes):
        found = found.decode("utf-8", "replace")
    if not (isinstance(found, str) and found == schema):
        f.close()
        raise ArtifactError(f"{p}: schema is {found!r}, expected {schema!r}")
    try:
        found_v = None if found_v is None else int(found_v)
    except (TypeError, ValueError):
        found_v = repr(found_v)
    if found_v is None or found_v not in accepted:
        f.close()
        expected = " or ".join(str(v) for v in accepted)
        raise ArtifactError(f"{p}: {schema} schema version {found_v} is not supported by this "
                            f"version of the package (expected {expected}); re-run extraction")
    return f


def save_fitted(path: str | os.PathLike, schema: str, version: int, arrays: dict[str, np.ndarray],
                provenance: dict, ident: tuple[str, str]) -> Path:
    """Write something fitted on a corpus (PCA, vocabulary) atomically: one dataset per array,
    ``provenance`` as JSON and an identity attribute ``ident = (name, value)``."""
    path = Path(path)
    with atomic_h5(path) as f:
        f.attrs["schema"] = schema
        f.attrs["schema_version"] = version
        for name, a in arrays.items():
            f.create_dataset(name, data=a)
        f.attrs["provenance"] = json.dumps(provenance, sort_keys=True)
        f.attrs[ident[0]] = ident[1]
    return path


def load_fitted(path: str | os.PathLike, schema: str, version: int, names: tuple[str, ...],
                what: str) -> tuple[list[np.ndarray], dict]:
    """The arrays ``names`` and the provenance of a file written by :func:`save_fitted`; any problem is
    one :class:`ArtifactError` naming the file (``what`` says what it should have been)."""
    try:
        with open_checked(path, schema, version) as f:
            return [f[n][()] for n in names], json.loads(f.attrs["provenance"])
    except ArtifactError:
        raise
    except (KeyError, OSError, ValueError, TypeError) as exc:
        raise ArtifactError(f"{path}: not a readable {what} ({type(exc).__name__}: {exc})") from None
