"""Is an output complete?  Every check opens the artifact and validates it, so a deleted,
truncated or foreign file counts as missing and is redone.

Used by the Luigi targets (``Task.complete``) and by ``python -m pipeline build``,
so both entry points skip and redo exactly the same work.  The checks are cheap
(schemas, shapes, the files a pack lists); ``python -m pipeline verify`` goes
deeper (norms, timestamps, fingerprints).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pipeline.artifacts import FEATURES_SCHEMA, FEATURES_VERSION, PACK_NAME, ArtifactError, open_checked, read_pack
from pipeline.descriptors import DESCRIPTORS_SCHEMA, DESCRIPTORS_VERSION
from pipeline.layout import Layout


def _loads(reader: Callable[[Path], object], path: Path) -> bool:
    """True when ``reader`` reads ``path`` without an error (every artifact error is a ValueError)."""
    try:
        reader(path)
    except (ValueError, OSError, KeyError):
        return False
    return True


def pca_complete(path: Path) -> bool:
    from pipeline.pca_store import load_pca

    return _loads(load_pca, path)


def vocabulary_complete(path: Path) -> bool:
    from pipeline.vocab_store import load_vocabulary

    return _loads(load_vocabulary, path)


def frame_model_complete(path: Path) -> bool:
    from pipeline.frame_model_store import load_frame_model

    return _loads(load_frame_model, path)


def lamv_kernel_complete(path: Path) -> bool:
    from pipeline.lamv_store import load_kernel

    return _loads(load_kernel, path)


def tca_complete(path: Path) -> bool:
    from pipeline.tca_store import load_tca

    return _loads(load_tca, path)


def feature_shard_complete(shard: Path) -> bool:
    """The pack is readable and every file it lists exists with the frame count it records."""
    if not (shard / PACK_NAME).is_file():
        return False
    try:
        pack = read_pack(shard)
    except (ArtifactError, OSError, KeyError):
        return False
    for name, count in zip(pack.files, pack.frame_counts, strict=True):
        try:
            with open_checked(shard / name, FEATURES_SCHEMA, FEATURES_VERSION) as f:
                if f["features"].shape[0] != int(count):
                    return False
        except (ArtifactError, OSError, KeyError):
            return False
    return True


def descriptors_complete(path: Path) -> bool:
    try:
        with open_checked(path, DESCRIPTORS_SCHEMA, DESCRIPTORS_VERSION) as f:
            n = f["video_ids"].shape[0]
            return all(f[k].shape[0] == n for k in ("descriptors", "mean_frames", "n_frames", "duration_s"))
    except (ArtifactError, OSError, KeyError):
        return False


def index_complete(directory: Path) -> bool:
    from pipeline.index_store import read_index

    return _loads(read_index, directory)


def search_complete(directory: Path) -> bool:
    from pipeline.search_results import RESULTS_CSV, read_search_results

    if not (directory / RESULTS_CSV).is_file():
        return False
    try:
        read_search_results(directory)
    except (ArtifactError, OSError, KeyError):
        return False
    return True


def reports_complete(directory: Path, search_dir: Path) -> bool:
    """All three report files exist and ``report.json`` was made from ``search_dir``."""
    if not all((directory / n).is_file() for n in Layout.REPORT_FILES):
        return False
    try:
        doc = json.loads((directory / "report.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return doc.get("search_results") == str(search_dir)
