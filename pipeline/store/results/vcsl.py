"""The VCSL protocol's files, read for :mod:`pipeline.metrics.vcsl`.

* ``label_file.json`` and prediction files: ``{"<query>-<reference>": [[q_start, r_start, q_end,
  r_end], ...]}`` (seconds);
* a split's pair file (``pair_file_test.csv``): ``query_id,reference_id`` with a header; it lists the
  positive pairs (boxes in the label file) and the negative ones (none);
* ``meta_pairs.json`` (VCSL's ``split_meta_pairs.json``): query sets, ``{"<set>": ["q-r", ...]}``,
  or the same grouped by split, ``{"train": {...}, "val": {...}, "test": {...}}``.

Every reader names the file (and line, or key) of what it refuses.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from pipeline.datasets.readers import MAX_TIME_S, AnnotationError, read_annotation_text

Pair = tuple[str, str]
SPLITS = ("train", "val", "test")


def _json(path: Path) -> object:
    text = read_annotation_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    except RecursionError:
        raise AnnotationError(f"{path}: JSON nested too deeply") from None


def pair_key(path: Path, key: str) -> Pair:
    q, sep, r = str(key).partition("-")
    if not sep or not q or not r:
        raise AnnotationError(f"{path}: key {str(key)[:80]!r} is not '<query>-<reference>'")
    return q, r


def read_vcsl_boxes(path: str | Path) -> dict[Pair, np.ndarray]:
    """A label or prediction file: per (query, reference) pair its ``(n, 4)`` boxes ``[q0, q1, r0, r1]``
    (note: the file's order is ``[q0, r0, q1, r1]``). Spans must be finite, non-negative, at most
    10^6 s and not reversed (the peer scores those silently)."""
    path = Path(path)
    data = _json(path)
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected an object of '<query>-<reference>': [boxes]")
    out: dict[Pair, np.ndarray] = {}
    for key, boxes in data.items():
        pair = pair_key(path, key)
        if not isinstance(boxes, list):
            raise AnnotationError(f"{path}: {key}: expected a list of boxes")
        rows = []
        for box in boxes:
            ok = isinstance(box, list) and len(box) == 4 and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in box)
            try:
                vals = [float(v) for v in box] if ok else []
            except OverflowError:
                ok = False
            if not ok or not all(math.isfinite(v) and 0 <= v <= MAX_TIME_S for v in vals) \
                    or vals[2] < vals[0] or vals[3] < vals[1]:
                raise AnnotationError(f"{path}: {key}: box {str(box)[:80]} is not [q_start, r_start, q_end, r_end] "
                                      f"(seconds, 0 to {MAX_TIME_S:g}, end >= start)")
            rows.append([vals[0], vals[2], vals[1], vals[3]])
        out[pair] = np.asarray(rows, np.float64).reshape(-1, 4)
    return out


def read_vcsl_split(path: str | Path) -> list[Pair]:
    """A split's pair file: its (query, reference) pairs, each once, in file order."""
    path = Path(path)
    rows = csv.DictReader(io.StringIO(read_annotation_text(path)))
    if not {"query_id", "reference_id"} <= set(rows.fieldnames or []):
        raise AnnotationError(f"{path}:1: expected the columns query_id,reference_id")
    pairs: dict[Pair, None] = {}
    for no, row in enumerate(rows, 2):
        q, r = (row["query_id"] or "").strip(), (row["reference_id"] or "").strip()
        if not q or not r:
            raise AnnotationError(f"{path}:{no}: empty query_id or reference_id")
        pairs[(q, r)] = None
    return list(pairs)


def read_meta_pairs(path: str | Path) -> dict[str, list[Pair]]:
    """Query sets of ``meta_pairs.json``; grouped by split, the splits' sets are merged."""
    path = Path(path)
    data = _json(path)
    if isinstance(data, dict) and data and set(data) <= set(SPLITS) and all(isinstance(v, dict) for v in data.values()):
        merged: dict[str, object] = {}
        for split in SPLITS:
            merged.update(data.get(split, {}))
        data = merged
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected an object of '<query set>': ['<query>-<reference>', ...]")
    sets = {}
    for name, keys in data.items():
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise AnnotationError(f"{path}: {name}: expected a list of '<query>-<reference>' keys")
        sets[str(name)] = [pair_key(path, k) for k in keys]
    return sets
