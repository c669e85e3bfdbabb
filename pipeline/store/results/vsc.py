"""The VSC 2022 exchange files beside the matching CSV (:mod:`pipeline.store.results.segments`).

* **Descriptor files** (the descriptor track): a NumPy ``.npz`` with ``video_ids`` ``(N,)`` (text or
  integers), ``timestamps`` ``(N,)`` or ``(N, 2)`` (seconds: a time or a start, end span) and
  ``features`` ``(N, D)``; the rows of one video are consecutive. Read without pickles
  (``allow_pickle=False``).
* **Candidates** (``candidates.csv``): ``query_id,ref_id,score`` with a header, the columns in any
  order.

Ids are normalised as ``vsc2022`` does (:func:`pipeline.metrics.vsc2022.format_video_id`): ``1`` in a
query column is ``Q000001``, and a reference id in a query column is refused. Every reader names the
file (and the line) of what it refuses; every writer is atomic.
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.atomic import atomic_path
from pipeline.datasets.readers import AnnotationError, read_annotation_text
from pipeline.metrics.segments import Box
from pipeline.metrics.vsc2022 import QUERY, REFERENCE, CandidatePair, VSCInputError, format_video_id

CANDIDATE_FIELDS = ["query_id", "ref_id", "score"]


@dataclass(frozen=True)
class VideoDescriptors:
    """One video's descriptors in a VSC descriptor file: ``timestamps (n,)`` or ``(n, 2)`` seconds,
    ``features (n, D)``."""

    video_id: str
    timestamps: np.ndarray
    features: np.ndarray


def normalised_boxes(boxes: Sequence[Box], where: str) -> list[Box]:
    """``boxes`` with VSC ids (``Q%06d`` / ``R%06d`` for integers; the Q / R prefix checked)."""
    out = []
    for b in boxes:
        try:
            q, r = format_video_id(b.query, QUERY), format_video_id(b.ref, REFERENCE)
        except VSCInputError as exc:
            raise AnnotationError(f"{where}: {exc}") from None
        out.append(Box(q, r, b.q0, b.q1, b.r0, b.r1, b.score))
    return out


def read_candidates_csv(path: str | Path) -> list[CandidatePair]:
    """A VSC ``candidates.csv`` (module docstring)."""
    path = Path(path)
    rows = csv.DictReader(io.StringIO(read_annotation_text(path)))
    missing = [f for f in CANDIDATE_FIELDS if f not in (rows.fieldnames or [])]
    if missing:
        raise AnnotationError(f"{path}:1: missing column(s) {', '.join(missing)} "
                              f"(expected {','.join(CANDIDATE_FIELDS)})")
    out = []
    for no, row in enumerate(rows, 2):
        try:
            score = float(row["score"])
        except (TypeError, ValueError):
            raise AnnotationError(f"{path}:{no}: score {row['score']!r} is not a number") from None
        if not math.isfinite(score):
            raise AnnotationError(f"{path}:{no}: score must be finite")
        try:
            out.append(CandidatePair(format_video_id(row["query_id"] or "", QUERY),
                                     format_video_id(row["ref_id"] or "", REFERENCE), score))
        except VSCInputError as exc:
            raise AnnotationError(f"{path}:{no}: {exc}") from None
    return out


def write_candidates_csv(path: str | Path, pairs: Sequence[CandidatePair]) -> Path:
    """``pairs`` as a VSC ``candidates.csv``, best first."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CANDIDATE_FIELDS)
    for p in sorted(pairs, key=lambda p: -p.score):
        w.writerow([format_video_id(p.query, QUERY), format_video_id(p.ref, REFERENCE), repr(float(p.score))])
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    return Path(path)


def read_vsc_descriptors(path: str | Path, side: str) -> list[VideoDescriptors]:
    """The videos of a VSC descriptor file (module docstring), ids normalised for ``side`` (``"Q"``
    queries, ``"R"`` references)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("video_ids", "timestamps", "features") if k not in data.files]
            if missing:
                raise AnnotationError(f"{path}: missing array(s) {', '.join(missing)} "
                                      f"(a VSC descriptor file holds video_ids, timestamps, features)")
            ids, times, feats = data["video_ids"], data["timestamps"], data["features"]
    except FileNotFoundError:
        raise AnnotationError(f"{path}: file not found") from None
    except ValueError as exc:  # object arrays (pickles) are refused, never loaded
        raise AnnotationError(f"{path}: not a plain .npz of arrays ({str(exc).splitlines()[0]})") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise AnnotationError(f"{path}: not a readable .npz file ({exc})") from None
    if feats.ndim != 2 or ids.ndim != 1 or len(ids) != len(feats) or len(times) != len(feats):
        raise AnnotationError(f"{path}: expected video_ids (N,), timestamps (N,) or (N, 2) and features (N, D); "
                              f"got {ids.shape}, {times.shape}, {feats.shape}")
    if not (times.ndim == 1 or times.shape[1:] == (2,)):
        raise AnnotationError(f"{path}: timestamps must be (N,) or (N, 2), got {times.shape}")
    if feats.dtype.kind not in "fiu" or times.dtype.kind not in "fiu" or ids.dtype.kind not in "Uiu":
        raise AnnotationError(f"{path}: features and timestamps must be numbers and video_ids text or integers")
    if not (np.all(np.isfinite(feats)) and np.all(np.isfinite(times))):
        raise AnnotationError(f"{path}: features and timestamps must be finite")
    if not len(ids):
        return []
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    names = []
    for i in starts:
        try:
            names.append(format_video_id(ids[i].item(), side))
        except VSCInputError as exc:
            raise AnnotationError(f"{path}: {exc}") from None
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})[0]
        raise AnnotationError(f"{path}: the rows of video {twice} are not consecutive")
    return [VideoDescriptors(n, times[a:b], feats[a:b]) for n, a, b in zip(names, starts, ends, strict=True)]


def write_vsc_descriptors(path: str | Path, videos: Sequence[VideoDescriptors], side: str) -> Path:
    """``videos`` as a VSC descriptor file, ids normalised for ``side``."""
    ids = np.concatenate([np.full(len(v.features), format_video_id(v.video_id, side)) for v in videos]) \
        if videos else np.zeros(0, dtype="<U7")
    times = np.concatenate([np.asarray(v.timestamps) for v in videos]) if videos else np.zeros(0)
    feats = np.concatenate([np.asarray(v.features, dtype=np.float32) for v in videos]) if videos \
        else np.zeros((0, 0), np.float32)
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, video_ids=ids, timestamps=times, features=feats)
    return path
