"""Copy segments on disk: the VSC 2022 matching CSV and the VCSL prediction JSON.

* VSC 2022: ``query_id,ref_id,query_start,query_end,ref_start,ref_end,score`` (seconds; a header
  line; the columns in any order).  :func:`read_vsc_csv` also reads the VSC ground truth (the same
  columns, ``score`` optional).
* VCSL: ``{"<query>-<ref>": [[query_start, ref_start, query_end, ref_end], ...]}`` (seconds); the
  ground truth of that format is read by ``pipeline.datasets.readers.parse_vcdb_json``.

Every writer is atomic (temporary file, fsync, rename); every reader names the file and line of a
bad row.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from pipeline.core.atomic import atomic_path
from pipeline.datasets.readers import AnnotationError, CopyPair, check_span, read_annotation_text
from pipeline.metrics.segments import Box

VSC_FIELDS = ["query_id", "ref_id", "query_start", "query_end", "ref_start", "ref_end", "score"]
VSC_MATCHES = "matches.csv"
VCSL_PREDICTIONS = "vcsl_pred.json"


def write_vsc_csv(path: Path, boxes: Sequence[Box]) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(VSC_FIELDS)
    for b in boxes:
        w.writerow([b.query, b.ref, f"{b.q0:.3f}", f"{b.q1:.3f}", f"{b.r0:.3f}", f"{b.r1:.3f}", f"{b.score:.6g}"])
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    return Path(path)


def read_vsc_csv(path: Path, ground_truth: bool = False) -> list[Box]:
    """Matches (or, with ``ground_truth``, annotated copies: ``score`` optional) of a VSC 2022 CSV."""
    path = Path(path)
    need = VSC_FIELDS[:-1] if ground_truth else VSC_FIELDS
    rows = csv.DictReader(io.StringIO(read_annotation_text(path)))
    missing = [f for f in need if f not in (rows.fieldnames or [])]
    if missing:
        raise AnnotationError(f"{path}:1: missing column(s) {', '.join(missing)} (expected {','.join(VSC_FIELDS)})")
    out = []
    for no, row in enumerate(rows, 2):
        try:
            vals = [float(row[f]) for f in ("query_start", "query_end", "ref_start", "ref_end")]
            score = float(row["score"]) if row.get("score") not in (None, "") else 1.0
        except (TypeError, ValueError):
            raise AnnotationError(f"{path}:{no}: times and score must be numbers (seconds)") from None
        if not all(math.isfinite(v) for v in [*vals, score]) or vals[0] < 0 or vals[2] < 0 \
                or vals[1] < vals[0] or vals[3] < vals[2]:
            raise AnnotationError(f"{path}:{no}: spans must be finite, non-negative and end >= start")
        if not row["query_id"] or not row["ref_id"]:
            raise AnnotationError(f"{path}:{no}: empty query_id or ref_id")
        check_span(f"{path}:{no}", "query span", vals[0], vals[1])  # at most 10^6 s, like every annotation
        check_span(f"{path}:{no}", "reference span", vals[2], vals[3])
        out.append(Box(row["query_id"], row["ref_id"], *vals, score=score))
    return out


def vsc_copy_pairs(path: Path) -> list[CopyPair]:
    """A VSC 2022 ground-truth CSV as the pipeline's copy pairs."""
    return [CopyPair(b.query, b.ref, b.q0, b.q1, b.r0, b.r1) for b in read_vsc_csv(path, ground_truth=True)
            if b.query != b.ref]


def write_vcsl_json(path: Path, boxes: Sequence[Box]) -> Path:
    pairs: dict[str, list[list[float]]] = defaultdict(list)
    for b in boxes:
        pairs[f"{b.query}-{b.ref}"].append([round(b.q0, 3), round(b.r0, 3), round(b.q1, 3), round(b.r1, 3)])
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(json.dumps(dict(sorted(pairs.items())), indent=1), encoding="utf-8")
    return Path(path)


def ground_truth_boxes(pairs: Sequence[CopyPair], queries: set[str] | None = None) -> list[Box]:
    """Ground-truth copies as boxes in both orientations (every video is searched as a query), limited
    to ``queries`` when given."""
    out = []
    for p in pairs:
        for b in (Box(p.video_a, p.video_b, p.a_begin_s, p.a_end_s, p.b_begin_s, p.b_end_s),
                  Box(p.video_b, p.video_a, p.b_begin_s, p.b_end_s, p.a_begin_s, p.a_end_s)):
            if queries is None or b.query in queries:
                out.append(b)
    return out
