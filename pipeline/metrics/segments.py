"""Segment-level copy metrics: the VSC 2022 matching metric and the VCSL precision / recall.

Both compare predicted copy boxes (a query span x a reference span, seconds) with ground-truth boxes
of the same ordered (query, reference) pair.

* :func:`vsc_micro_ap` (VSC 2022 matching track): predictions of every pair ranked together by score;
  after each score level, per axis (query, reference) ``precision = |union of predictions n union of
  the ground-truth boxes they touch| / |union of predictions|`` and ``recall = |same intersection| /
  |union of all ground-truth boxes|``, summed over pairs; ``P = sqrt(P_q P_r)``, ``R = sqrt(R_q R_r)``,
  ``AP = sum P dR``.
* :func:`vcsl_pair` (VCSL, per pair): per axis, the precision is the length of each prediction covered
  by the ground-truth boxes it overlaps (boxes, not just axes, must overlap) over the predictions'
  summed lengths, the recall the same with the roles swapped; ``P = P_q P_r``, ``R = R_q R_r``.
  :func:`vcsl_metrics` averages ``P`` over pairs with predictions and ``R`` over pairs with ground
  truth (VCSL's micro average over video pairs) and gives ``F1 = 2PR / (P + R)``, the share of
  ground-truth pairs without any prediction (false rejection) and of predicted pairs without ground
  truth (false alarm).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    """A copy of ``query [q0, q1)`` in ``ref [r0, r1)`` (seconds) with a score."""

    query: str
    ref: str
    q0: float
    q1: float
    r0: float
    r1: float
    score: float = 1.0


def union_length(starts: np.ndarray, ends: np.ndarray) -> float:
    """Total length of the union of intervals ``[starts, ends)``."""
    if len(starts) == 0:
        return 0.0
    order = np.argsort(starts, kind="stable")
    s, e = np.asarray(starts, np.float64)[order], np.asarray(ends, np.float64)[order]
    reach = np.maximum.accumulate(e)
    # a new block starts where the interval begins after everything before it ended
    new = np.r_[True, s[1:] > reach[:-1]]
    block = np.cumsum(new) - 1
    lo = s[new]
    hi = np.zeros(int(block[-1]) + 1)
    np.maximum.at(hi, block, e)
    return float(np.sum(np.maximum(hi - lo, 0)))


def intersection_length(a: np.ndarray, b: np.ndarray) -> float:
    """``|union(a) n union(b)|`` of two ``(k, 2)`` interval sets: ``|A| + |B| - |A u B|``."""
    both = np.concatenate([a, b]) if len(a) and len(b) else np.zeros((0, 2))
    if not len(both):
        return 0.0
    return union_length(a[:, 0], a[:, 1]) + union_length(b[:, 0], b[:, 1]) - union_length(both[:, 0], both[:, 1])


def _boxes(items: Sequence[Box]) -> np.ndarray:
    return np.array([[b.q0, b.q1, b.r0, b.r1] for b in items], dtype=np.float64).reshape(-1, 4)


def _touching(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``(P, G)``: whether prediction p's box and ground-truth g's box intersect with positive area."""
    w = np.minimum(pred[:, None, 1], gt[None, :, 1]) - np.maximum(pred[:, None, 0], gt[None, :, 0])
    h = np.minimum(pred[:, None, 3], gt[None, :, 3]) - np.maximum(pred[:, None, 2], gt[None, :, 2])
    return (w > 0) & (h > 0)


@dataclass(frozen=True)
class VSCResult:
    ap: float
    precision: np.ndarray
    recall: np.ndarray


def vsc_micro_ap(gt: Sequence[Box], predictions: Sequence[Box]) -> VSCResult:
    """The VSC 2022 matching-track micro-AP (module docstring)."""
    gts: dict[tuple[str, str], np.ndarray] = {k: _boxes(list(v)) for k, v in
                                              itertools.groupby(sorted(gt, key=lambda b: (b.query, b.ref)),
                                                                key=lambda b: (b.query, b.ref))}
    total = [sum(union_length(g[:, 2 * a], g[:, 2 * a + 1]) for g in gts.values()) for a in (0, 1)]
    if min(total) <= 0:
        return VSCResult(float("nan"), np.zeros(0), np.zeros(0))
    preds: dict[tuple[str, str], list[list[float]]] = defaultdict(list)
    inter = {}  # per pair: current intersection per axis
    covered = {}  # per pair: current prediction union per axis
    sum_inter, sum_cover = [0.0, 0.0], [0.0, 0.0]
    ap, recall = 0.0, 0.0
    curve_p, curve_r = [], []
    ranked = sorted(predictions, key=lambda b: -b.score)
    for _, level in itertools.groupby(ranked, key=lambda b: b.score):
        for b in level:
            key = (b.query, b.ref)
            preds[key].append([b.q0, b.q1, b.r0, b.r1])
            p = np.asarray(preds[key])
            g = gts.get(key, np.zeros((0, 4)))
            g = g[_touching(p, g).any(axis=0)] if len(g) else g
            new_inter = [intersection_length(p[:, 2 * a:2 * a + 2], g[:, 2 * a:2 * a + 2]) for a in (0, 1)]
            new_cover = [union_length(p[:, 2 * a], p[:, 2 * a + 1]) for a in (0, 1)]
            old_inter, old_cover = inter.get(key, (0.0, 0.0)), covered.get(key, (0.0, 0.0))
            for a in (0, 1):
                sum_inter[a] += new_inter[a] - old_inter[a]
                sum_cover[a] += new_cover[a] - old_cover[a]
            inter[key], covered[key] = tuple(new_inter), tuple(new_cover)
        rec = math.sqrt((sum_inter[0] / total[0]) * (sum_inter[1] / total[1]))
        prec = math.sqrt((sum_inter[0] / sum_cover[0] if sum_cover[0] else 0.0)
                         * (sum_inter[1] / sum_cover[1] if sum_cover[1] else 0.0))
        ap += prec * (rec - recall)
        if rec > recall:
            curve_p.append(prec)
            curve_r.append(rec)
        recall = rec
    return VSCResult(float(ap), np.asarray(curve_p), np.asarray(curve_r))


@dataclass(frozen=True)
class PairPR:
    precision: float  # nan: no prediction
    recall: float  # nan: no ground truth


def vcsl_pair(pred: np.ndarray, gt: np.ndarray) -> PairPR:
    """VCSL precision and recall of one pair's ``pred (P, 4)`` and ``gt (G, 4)`` boxes
    ``[q0, q1, r0, r1]`` (module docstring)."""
    if len(pred) == 0 or len(gt) == 0:
        return PairPR(float("nan") if len(pred) == 0 else 0.0, float("nan") if len(gt) == 0 else 0.0)
    touch = _touching(pred, gt)

    def covered(a: np.ndarray, b: np.ndarray, t: np.ndarray, axis: int) -> float:
        """Summed over the boxes of ``a``: the length of ``a``'s span covered by the ``b`` it touches."""
        lo = np.maximum(a[:, None, 2 * axis], b[None, :, 2 * axis])
        hi = np.minimum(a[:, None, 2 * axis + 1], b[None, :, 2 * axis + 1])
        return float(sum(union_length(lo[k][t[k]], hi[k][t[k]]) for k in range(len(a)) if t[k].any()))

    def length(a: np.ndarray, axis: int) -> float:
        return float(np.sum(a[:, 2 * axis + 1] - a[:, 2 * axis]))

    p = [covered(pred, gt, touch, a) / max(length(pred, a), 1e-12) for a in (0, 1)]
    r = [covered(gt, pred, touch.T, a) / max(length(gt, a), 1e-12) for a in (0, 1)]
    return PairPR(p[0] * p[1], r[0] * r[1])


@dataclass(frozen=True)
class VCSLResult:
    precision: float
    recall: float
    f1: float
    false_rejection: float
    false_alarm: float
    pairs: int


def vcsl_metrics(gt: Sequence[Box], predictions: Sequence[Box]) -> VCSLResult:
    """VCSL segment-level precision, recall and F1 over every pair with ground truth or predictions."""
    by_gt: dict[tuple[str, str], list[Box]] = defaultdict(list)
    by_pred: dict[tuple[str, str], list[Box]] = defaultdict(list)
    for b in gt:
        by_gt[(b.query, b.ref)].append(b)
    for b in predictions:
        by_pred[(b.query, b.ref)].append(b)
    keys = sorted(set(by_gt) | set(by_pred))
    res = [vcsl_pair(_boxes(by_pred.get(k, [])), _boxes(by_gt.get(k, []))) for k in keys]
    ps = [r.precision for r in res if not math.isnan(r.precision)]
    rs = [r.recall for r in res if not math.isnan(r.recall)]
    p = float(np.mean(ps)) if ps else float("nan")
    r = float(np.mean(rs)) if rs else float("nan")
    f1 = 2 * p * r / (p + r) if ps and rs and p + r > 0 else 0.0
    fr = sum(1 for k in by_gt if k not in by_pred) / len(by_gt) if by_gt else float("nan")
    fa = sum(1 for k in by_pred if k not in by_gt) / len(by_pred) if by_pred else float("nan")
    return VCSLResult(p, r, f1, fr, fa, len(keys))
