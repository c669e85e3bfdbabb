"""Copy-detection metrics of VCDB (spec section 5): segment judgements, precision / recall.

Units: seconds.  Where the reference deviates from its own intent, both readings exist:
``reference`` (published) emits (score, 1) and (0, 0) for a mislocalised true copy;
``corrected`` (default) emits (score, 0) and (0, 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Segment:
    """A span ``[begin_s, end_s)`` of a video (seconds)."""

    video: str
    begin_s: float
    end_s: float


def grid_bounds(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of ``round(arange(start, end, 0.01), 2)`` in integer hundredths of a second.

    Returns ``(lo, hi)``; a span is empty where ``hi < lo``.  Reproduces NumPy's
    ``arange`` length ``ceil((end - start) / 0.01)`` and element values.
    """
    start = np.asarray(start, dtype=np.float64)
    end = np.asarray(end, dtype=np.float64)
    n = np.ceil((end - start) / 0.01)
    lo = np.rint(np.round(start, 2) * 100.0)
    hi = np.rint(np.round(start + (n - 1.0) * 0.01, 2) * 100.0)
    return lo, np.where(n >= 1, hi, lo - 1)


def spans_overlap(a_start: np.ndarray, a_end: np.ndarray, b_start: np.ndarray,
                  b_end: np.ndarray) -> np.ndarray:
    """Whether two spans share a point of the 0.01-s grid (half-open spans), elementwise."""
    alo, ahi = grid_bounds(a_start, a_end)
    blo, bhi = grid_bounds(b_start, b_end)
    return (np.maximum(alo, blo) <= np.minimum(ahi, bhi)) & (ahi >= alo) & (bhi >= blo)


def vcdb_query_pairs(segments: Sequence[Segment],
                     videos: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Canonical (query segment, database video) records: every segment against every
    annotated video with a different name, segments outer, videos in the given order.

    Returns ``(query_segment (R,), video_index (R,))``.
    """
    q, v = [], []
    for i, seg in enumerate(segments):
        for j, name in enumerate(videos):
            if name != seg.video:
                q.append(i)
                v.append(j)
    return np.asarray(q, dtype=np.int64), np.asarray(v, dtype=np.int64)


def vcdb_judge(segments: Sequence[Segment], gt_pairs: np.ndarray, videos: Sequence[str],
               rec_query: np.ndarray, rec_video: np.ndarray,
               pred_start_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Judge each (query segment, video) detection (spec 5.2).

    Args:
        segments: the query segments.
        gt_pairs: ``(g, 2)`` indices into ``segments`` (file order).
        videos: database video keys.
        rec_query, rec_video: ``(R,)`` record indices (see :func:`vcdb_query_pairs`).
        pred_start_s: ``(R,)`` predicted start of the copy in the database video, seconds.

    Returns:
        ``(localized_ok (R,) bool, query_side_overlap (R,) bool)``.
    """
    gt_pairs = np.asarray(gt_pairs, dtype=np.int64).reshape(-1, 2)
    seg_video = np.array([s.video for s in segments], dtype=object)
    seg_b = np.array([s.begin_s for s in segments])
    seg_e = np.array([s.end_s for s in segments])
    R = len(rec_query)
    ok = np.zeros(R, dtype=bool)
    qside = np.zeros(R, dtype=bool)
    for r in range(R):
        qi, vname = int(rec_query[r]), videos[int(rec_video[r])]
        qv = seg_video[qi]
        p = float(pred_start_s[r])
        pred_end = p + (seg_e[qi] - seg_b[qi])
        for a, b in gt_pairs:
            if seg_video[a] == qv and seg_video[b] == vname:
                qs, vs = a, b
            elif seg_video[b] == qv and seg_video[a] == vname:
                qs, vs = b, a
            else:
                continue
            if spans_overlap(seg_b[qi], seg_e[qi], seg_b[qs], seg_e[qs]):
                qside[r] = True
                if spans_overlap(p, pred_end, seg_b[vs], seg_e[vs]):
                    ok[r] = True
                    break
    return ok, qside


EmissionMode = Literal["corrected", "reference"]


def vcdb_decisions(max_score: np.ndarray, localized_ok: np.ndarray,
                   query_side_overlap: np.ndarray,
                   mode: EmissionMode = "corrected") -> tuple[np.ndarray, np.ndarray]:
    """Score/label decision lists for the PR curve.

    Correct detection -> (score, 1); no ground-truth relation -> (score, 0);
    a true copy localised wrongly -> ``corrected``: (score, 0) and a missed
    positive (0, 1); ``reference``: (score, 1) and (0, 0) (the published
    numbers; spec 5.2 emission bug).  Extra entries follow their record.

    Returns ``(probas (R + n_wrong,) float64, labels int64)``.
    """
    if mode not in ("corrected", "reference"):
        raise ValueError(f"mode must be 'corrected' or 'reference', got {mode!r}")
    s = np.asarray(max_score, dtype=np.float64)
    ok = np.asarray(localized_ok, dtype=bool)
    wrong = np.asarray(query_side_overlap, dtype=bool) & ~ok
    first_label = ok | (wrong if mode == "reference" else False)
    extra_label = np.zeros_like(wrong) if mode == "reference" else np.ones_like(wrong)
    probas, labels = [], []
    for r in range(len(s)):
        probas.append(s[r])
        labels.append(int(first_label[r]))
        if wrong[r]:
            probas.append(0.0)
            labels.append(int(extra_label[r]))
    return np.asarray(probas, dtype=np.float64), np.asarray(labels, dtype=np.int64)


def precision_recall_curve(labels: np.ndarray,
                           probas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision/recall at every distinct score threshold (scikit-learn semantics).

    Returns ``(precision, recall, thresholds)``, ordered by increasing threshold,
    with the final point (precision 1, recall 0) appended as scikit-learn does.
    """
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(probas, dtype=np.float64)
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    idx = np.r_[np.flatnonzero(np.diff(s)), y.size - 1] if y.size else np.array([], int)
    tps = np.cumsum(y)[idx]
    fps = 1.0 + idx - tps
    precision = np.divide(tps, tps + fps, out=np.zeros_like(tps), where=(tps + fps) > 0)
    total = tps[-1] if tps.size else 0.0
    recall = tps / total if total > 0 else np.zeros_like(tps)
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], s[idx][::-1]


def max_f1(precision: np.ndarray, recall: np.ndarray) -> float:
    """``max 2PR / (P + R + 1e-7)`` over the curve points (the VCDB "F1" column)."""
    p, r = np.asarray(precision), np.asarray(recall)
    return float(np.max(2 * p * r / (p + r + 1e-7))) if p.size else float("nan")


def pr_auc(precision: np.ndarray, recall: np.ndarray) -> float:
    """Trapezoidal area under precision as a function of recall, over the curve's own
    point order (``sklearn.metrics.auc`` semantics; recall must be monotonic)."""
    p, r = np.asarray(precision, dtype=np.float64), np.asarray(recall, dtype=np.float64)
    dx = np.diff(r)
    if np.any(dx > 0) and np.any(dx < 0):
        raise ValueError("recall is not monotonic")
    area = float(np.sum(dx * (p[1:] + p[:-1]) / 2.0))
    return -area if np.any(dx < 0) else area


@dataclass(frozen=True)
class SegmentPR:
    """Segment-level copy-detection summary."""

    max_f1: float
    auc: float
    precision: np.ndarray
    recall: np.ndarray
    probas: np.ndarray
    labels: np.ndarray


def segment_pr(max_score: np.ndarray, localized_ok: np.ndarray,
               query_side_overlap: np.ndarray, mode: EmissionMode = "corrected") -> SegmentPR:
    """Decision lists -> PR curve -> max-F1 and AUC (spec 5.2, ``main.test``)."""
    probas, labels = vcdb_decisions(max_score, localized_ok, query_side_overlap, mode)
    precision, recall, _ = precision_recall_curve(labels, probas)
    return SegmentPR(max_f1(precision, recall), pr_auc(precision, recall),
                     precision, recall, probas, labels)
