"""The copy decision's calibrated thresholds, with their provenance.

File ``<work>/thresholds-<K>.json`` (K: features, compared rate, ``calibration``
settings, corpus), written by ``CalibrateThresholds`` (:func:`pipeline.steps.thresholds.calibrate_thresholds`)::

    {"schema": "videoalign/thresholds", "version": 1,
     "frame_threshold": 0.56, "copy_threshold": 2.0,          # what the search applies
     "background": {"median": 0.35, "spread": 0.42, "videos": 11, "rows": 306, "pairs": 3060},
     "frame_units": 0.5, "copy_units": 4.75,                   # calibration settings used
     "features": "<features key>", "corpus": "<corpus hash>", "videos": [...]}

JSON, never pickled, and a function of its inputs only (no time stamp: the CLI and Luigi write the same
bytes); read back with every field checked.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from index.calibration import Background, Thresholds
from pipeline.core.atomic import atomic_write_text
from pipeline.core.hdf5 import ArtifactError

THRESHOLDS_SCHEMA = "videoalign/thresholds"
THRESHOLDS_VERSION = 1


@dataclass(frozen=True)
class CalibratedThresholds:
    """The thresholds in force for one corpus and feature configuration, and how they were set."""

    thresholds: Thresholds
    background: Background
    frame_units: float
    copy_units: float
    features: str
    corpus: str
    videos: list[str]


def write_thresholds(path: Path, t: CalibratedThresholds) -> Path:
    doc = {"schema": THRESHOLDS_SCHEMA, "version": THRESHOLDS_VERSION, **asdict(t.thresholds),
           "background": asdict(t.background), "frame_units": t.frame_units, "copy_units": t.copy_units,
           "features": t.features, "corpus": t.corpus, "videos": list(t.videos)}
    return atomic_write_text(path, json.dumps(doc, indent=1))


def read_thresholds(path: Path) -> CalibratedThresholds:
    """The file written by :func:`write_thresholds`; :class:`ArtifactError` naming it when it is not one."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        if doc.get("schema") != THRESHOLDS_SCHEMA or doc.get("version") != THRESHOLDS_VERSION:
            raise ValueError(f"not a {THRESHOLDS_SCHEMA} v{THRESHOLDS_VERSION} file")
        bg = doc["background"]
        out = CalibratedThresholds(
            Thresholds(float(doc["frame_threshold"]), float(doc["copy_threshold"])),
            Background(float(bg["median"]), float(bg["spread"]), int(bg["videos"]), int(bg["rows"]),
                       int(bg["pairs"])),
            float(doc["frame_units"]), float(doc["copy_units"]), str(doc["features"]), str(doc["corpus"]),
            [str(v) for v in doc["videos"]])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{path}: unreadable calibrated thresholds ({exc})") from None
    if not all(math.isfinite(x) for x in (out.thresholds.frame_threshold, out.thresholds.copy_threshold)):
        raise ArtifactError(f"{path}: calibrated thresholds are not finite")
    return out
