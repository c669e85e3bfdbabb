"""Is an output complete?  Every check opens the artifact and validates it, so a deleted,
truncated or foreign file counts as missing and is redone.

Used by the Luigi targets (``Task.complete``) and by ``python -m pipeline build``,
so both entry points skip and redo exactly the same work.  The checks are cheap
(schemas, shapes, the files a pack lists); ``python -m pipeline verify`` goes
deeper (norms, timestamps, fingerprints).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from pipeline.core.atomic import atomic_write_text, clean_stale_temporaries
from pipeline.core.hdf5 import ArtifactError, open_checked
from pipeline.store.descriptors import DESCRIPTORS_SCHEMA, DESCRIPTORS_VERSION
from pipeline.store.features import FEATURES_SCHEMA, FEATURES_VERSION, PACK_NAME, read_pack
from pipeline.store.fitted.frame_model import load_frame_model
from pipeline.store.fitted.pca import load_pca
from pipeline.store.fitted.thresholds import read_thresholds
from pipeline.store.fitted.vocabulary import load_vocabulary
from pipeline.store.index_files import read_index
from pipeline.store.layout import Layout
from pipeline.store.results.search import RESULTS_CSV, read_attrs, read_search_results
from pipeline.store.segment_frames import SEGMENT_FRAMES_SCHEMA, SEGMENT_FRAMES_VERSION


def _loads(reader: Callable[[Path], object], path: Path) -> bool:
    """True when ``reader`` reads ``path`` without an error (every artifact error is a ValueError)."""
    try:
        reader(path)
    except (ValueError, OSError, KeyError):
        return False
    return True


def write_member_list(marker: Path, members: list[Path]) -> Path:
    """The marker of a set of artifacts (e.g. every descriptor shard of a model): the members' paths
    (temporaries a killed writer left beside it are removed first)."""
    clean_stale_temporaries(marker.parent)
    return atomic_write_text(marker, json.dumps({"members": _relative(marker, members)}, indent=0))


def _relative(marker: Path, members: list[Path]) -> list[str]:
    """Members named relative to the marker's directory (the same on every machine)."""
    return [os.path.relpath(m, marker.parent) for m in members]


def member_list_complete(marker: Path, members: list[Path], member_complete: Callable[[], bool]) -> bool:
    """The marker lists exactly ``members`` and every member is complete (``member_complete``)."""
    try:
        listed = json.loads(marker.read_text(encoding="utf-8"))["members"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return listed == _relative(marker, members) and member_complete()


def pca_complete(path: Path) -> bool:
    return _loads(load_pca, path)


def vocabulary_complete(path: Path) -> bool:
    return _loads(load_vocabulary, path)


def frame_model_complete(path: Path) -> bool:
    return _loads(load_frame_model, path)


def trained_model_complete(layout: Layout, model: str) -> bool:
    """The file ``Train(model)`` writes exists and loads (its type's reader validates it)."""
    t = layout.trainable(model)
    return t is not None and _loads(t.load, layout.trained_path(model))


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
    return _loads(read_index, directory)


def segment_frames_complete(path: Path) -> bool:
    """A segment-frame file opens with its schema."""
    try:
        with open_checked(path, SEGMENT_FRAMES_SCHEMA, SEGMENT_FRAMES_VERSION):
            return True
    except (ArtifactError, OSError):
        return False


def thresholds_complete(path: Path) -> bool:
    return _loads(read_thresholds, path)


def search_shard_complete(path: Path) -> bool:
    """One search shard's results file opens with its schema."""
    try:
        read_attrs(path)
    except (ArtifactError, OSError, KeyError):
        return False
    return True


def search_complete(directory: Path) -> bool:
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
