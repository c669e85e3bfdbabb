"""MultiVLAD vocabulary files (HDF5, schema ``videoalign/vocabulary``) with their provenance."""

from __future__ import annotations

import json
import os
from pathlib import Path

from extractors.mvlad import Vocabulary
from pipeline.artifacts import ArtifactError, atomic_h5, open_checked

SCHEMA = "videoalign/vocabulary"
SCHEMA_VERSION = 1


def save_vocabulary(vocab: Vocabulary, path: str | os.PathLike) -> Path:
    """Write ``vocab`` atomically: ``mean (1, 128)``, ``proj (p, 128)``, ``centroids (V, k, p)``."""
    path = Path(path)
    with atomic_h5(path) as f:
        f.attrs["schema"] = SCHEMA
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.create_dataset("mean", data=vocab.mean)
        f.create_dataset("proj", data=vocab.proj)
        f.create_dataset("centroids", data=vocab.centroids)
        f.attrs["provenance"] = json.dumps(vocab.provenance, sort_keys=True)
        f.attrs["vocab_id"] = vocab.vocab_id
    return path


def load_vocabulary(path: str | os.PathLike) -> Vocabulary:
    """Read a vocabulary written by :func:`save_vocabulary` (refuses other schemas)."""
    try:
        with open_checked(path, SCHEMA, SCHEMA_VERSION) as f:
            return Vocabulary(f["mean"][()], f["proj"][()], f["centroids"][()], json.loads(f.attrs["provenance"]))
    except ArtifactError:
        raise
    except (KeyError, OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: not a readable vocabulary ({exc})") from None
