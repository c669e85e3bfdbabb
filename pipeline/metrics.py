"""Evaluation metrics (spec section 5), as pure NumPy functions.

Units: every offset and error here is in **seconds** unless the argument name
says ``_frames`` (1/15-s frames).  Scores are whatever the temporal model
returns (dimensionless).

Where the reference deviates from its own intent, both readings exist:

===========================  =============================  ===============================
metric                       ``reference`` (published)       ``corrected`` (default)
===========================  =============================  ===============================
VCDB mislocalised true copy  emits (score, 1) and (0, 0)     emits (score, 0) and (0, 1)
EVVE mAP                     mean AP over pooled queries     both reported; EVVE protocol =
                                                            mean of per-event mean APs
===========================  =============================  ===============================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

ACCURACY_THRESHOLDS_S = (0.1, 1.0, 10.0)

# --------------------------------------------------------------------------- localisation


def localization_errors(n_items: int, pair_index: np.ndarray, pair_max: np.ndarray,
                        pair_offset_s: np.ndarray, gt_index: np.ndarray,
                        gt_offset_s: np.ndarray) -> np.ndarray:
    """Per-item localisation error of the top-scoring pair (spec 5.1).

    Args:
        n_items: number of items (every item is a query once).
        pair_index: ``(n, 2) int`` scored pairs ``(first, second)``.
        pair_max: ``(n,)`` best score of each pair.
        pair_offset_s: ``(n,)`` predicted offset of each pair in seconds
            (``t_first - t_second`` at the best score).
        gt_index: ``(g, 2) int`` ground-truth overlapping pairs.
        gt_offset_s: ``(g,)`` ``start(first) - start(second)`` on the global timeline, seconds.

    Returns:
        ``(n_items,) float64`` absolute errors in seconds; ``inf`` when the
        item's best pair is not a ground-truth pair (or the item has no pair).
    """
    pair_index = np.asarray(pair_index, dtype=np.int64).reshape(-1, 2)
    pair_max = np.asarray(pair_max, dtype=np.float64)
    gt = {(int(a), int(b)): float(o) for (a, b), o in zip(np.asarray(gt_index).reshape(-1, 2),
                                                         np.asarray(gt_offset_s), strict=True)}
    errors = np.full(n_items, np.inf)
    # Best pair per item: scatter-max over both endpoints, first pair on ties.
    order = np.argsort(-pair_max, kind="stable")
    seen = np.zeros(n_items, dtype=bool)
    for k in order:
        a, b = pair_index[k]
        for v in (a, b):
            if seen[v]:
                continue
            seen[v] = True
            if (a, b) in gt:
                target = -gt[(a, b)]
            elif (b, a) in gt:
                target = gt[(b, a)]
            else:
                continue
            errors[v] = abs(float(pair_offset_s[k]) - target)
    return errors


def accuracy_below(errors_s: np.ndarray,
                   thresholds_s: Sequence[float] = ACCURACY_THRESHOLDS_S) -> dict[float, float]:
    """Fraction of items with error strictly below each threshold (seconds)."""
    e = np.asarray(errors_s, dtype=np.float64)
    if e.size == 0:
        return {float(t): float("nan") for t in thresholds_s}
    return {float(t): float(np.mean(e < t)) for t in thresholds_s}


def map_localization(n_items: int, pair_index: np.ndarray, pair_max: np.ndarray,
                     gt_index: np.ndarray, top: int = 50) -> tuple[float, np.ndarray]:
    """Localisation mAP (spec 5.4): per item, AP of its top-``top`` pairs by score.

    AP divides by the number of ground-truth pairs *found* in the list (as the
    reference does), 0 when none is found.

    Returns:
        ``(mAP, per-item AP (n_items,))``.
    """
    pair_index = np.asarray(pair_index, dtype=np.int64).reshape(-1, 2)
    pair_max = np.asarray(pair_max, dtype=np.float64)
    gt = {tuple(sorted((int(a), int(b)))) for a, b in np.asarray(gt_index).reshape(-1, 2)}
    is_gt = np.array([tuple(sorted(map(int, p))) in gt for p in pair_index], dtype=bool)
    ap = np.zeros(n_items)
    for v in range(n_items):
        mine = np.flatnonzero((pair_index == v).any(axis=1))
        if mine.size == 0:
            continue
        ranked = mine[np.argsort(-pair_max[mine], kind="stable")][:top]
        ap[v] = _walk_ap(is_gt[ranked])
    return float(ap.mean()) if n_items else float("nan"), ap


def _walk_ap(hits: np.ndarray) -> float:
    """Sum of ``(p0 + p1)/2`` over hits at list position ``j``, divided by the hits found."""
    pos = np.flatnonzero(hits)
    if pos.size == 0:
        return 0.0
    tp = np.arange(pos.size, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p0 = np.where(pos == 0, 1.0, tp / np.maximum(pos, 1))
    p1 = (tp + 1.0) / (pos + 1.0)
    return float(((p0 + p1) / 2.0).sum() / pos.size)


# --------------------------------------------------------------------------- VCDB segments


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


# --------------------------------------------------------------------------- EVVE


def evve_average_precision(ranked_relevance: np.ndarray, n_positives: int) -> float:
    """EVVE trapezoid AP of one ranked list.

    Args:
        ranked_relevance: ``(D,)`` relevance of the ranked database,
            1 positive, -1 null (removed from the list), 0 negative.
        n_positives: positives of the event in the database.
    """
    rel = np.asarray(ranked_relevance)
    if n_positives <= 0:
        return 0.0
    pos = np.flatnonzero(rel == 1)
    if pos.size == 0:
        return 0.0
    nulls_before = np.cumsum(rel == -1)[pos]
    r = pos - nulls_before
    i = np.arange(pos.size, dtype=np.float64)
    p0 = np.where(r == 0, 1.0, i / np.maximum(r, 1))
    p1 = (i + 1.0) / (r + 1.0)
    return float(((p0 + p1).sum()) / (2.0 * n_positives))


@dataclass(frozen=True)
class EvveResult:
    """EVVE retrieval summary: ``map_pooled`` is what the reference reports;
    ``map_event_mean`` is the EVVE protocol's mean of per-event means."""

    ap_per_query: np.ndarray
    map_pooled: float
    ap_per_event: dict[str, float]
    map_event_mean: float


def evve_map(scores: np.ndarray, query_events: Sequence[str], db_events: Sequence[str],
             db_labels: np.ndarray) -> EvveResult:
    """EVVE mAP from a ``(Q, D)`` score matrix (spec 5.3).

    Args:
        scores: ``(Q, D)`` similarity of every query to every database video.
        query_events: ``(Q,)`` event of each query.
        db_events: ``(D,)`` event of each database video.
        db_labels: ``(D,)`` label within its event: 1 positive, 0 negative, -1 null.
    """
    scores = np.asarray(scores, dtype=np.float64)
    db_events_a = np.asarray(db_events, dtype=object)
    db_labels = np.asarray(db_labels)
    ap = np.zeros(len(query_events))
    for q, ev in enumerate(query_events):
        same = db_events_a == ev
        rel = np.where(same, db_labels, 0)
        order = np.argsort(-scores[q], kind="stable")
        ap[q] = evve_average_precision(rel[order], int(np.sum(rel == 1)))
    per_event: dict[str, list[float]] = {}
    for ev, a in zip(query_events, ap, strict=True):
        per_event.setdefault(ev, []).append(float(a))
    means = {ev: float(np.mean(v)) for ev, v in per_event.items()}
    return EvveResult(ap, float(ap.mean()) if ap.size else math.nan, means,
                      float(np.mean(list(means.values()))) if means else math.nan)


@dataclass(frozen=True)
class PairLevel:
    """Ranking every unordered video pair of a corpus by its best reported score."""

    ap: float  # average precision over all unordered pairs (unreported pairs score 0, ranked last on ties)
    best_f1: float  # best F1 over score thresholds
    recall_reported: float  # share of true pairs that were reported at all (candidate recall)
    n_pairs: int
    n_true: int
    best_f1_threshold: float = float("nan")  # pairs scoring at least this are "detected" at the best F1


def ranked_ap(positive: np.ndarray, negative: np.ndarray) -> float:
    """Average precision of ``positive`` scores ``(P,)`` ranked among ``negative`` scores ``(N,)``, ties
    broken pessimistically (negatives first): the mean over positives of ``j / (j + #negatives scoring at
    least the j-th best positive)``. NaN without positives."""
    if len(positive) == 0:
        return float("nan")
    pos = np.sort(np.asarray(positive, dtype=np.float64))[::-1]
    neg = np.sort(np.asarray(negative, dtype=np.float64))
    above = len(neg) - np.searchsorted(neg, pos, side="left")
    j = np.arange(1, len(pos) + 1)
    return float(np.mean(j / (j + above)))


@dataclass(frozen=True)
class PairedDifference:
    """A paired comparison of model B against model A on the same items (B minus A)."""

    difference: float  # the observed difference of the (fold-weighted) statistic
    low: float  # 2.5 % percentile of the paired bootstrap
    high: float  # 97.5 % percentile
    wins: int = 0  # binary outcomes: items B gets right and A wrong
    losses: int = 0  # items A gets right and B wrong
    p_sign: float = float("nan")  # exact two-sided sign test on wins vs losses (McNemar)


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided binomial sign test of ``wins`` against ``losses`` (ties dropped)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
    return float(min(1.0, 2 * tail))


def paired_bootstrap_accuracy(groups: Sequence[tuple[np.ndarray, np.ndarray]], weights: Sequence[float],
                              rounds: int = 2000, seed: int = 0) -> PairedDifference:
    """Difference of accuracies, B minus A, over folds: ``groups[f] = (right_a, right_b)``, boolean ``(n_f,)``
    per item of fold ``f`` (same items, same order); the statistic is the ``weights``-weighted mean of the
    folds' accuracies. Items are resampled with replacement within each fold, the same draw for both
    models; plus the exact sign test on the items where they disagree."""
    rng = np.random.default_rng(seed)
    w = np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
    diffs = [np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64) for a, b in groups]
    observed = float(sum(wf * d.mean() for wf, d in zip(w, diffs, strict=True)))
    boot = np.zeros(rounds)
    for wf, d in zip(w, diffs, strict=True):
        boot += wf * d[rng.integers(0, len(d), size=(rounds, len(d)))].mean(axis=1)
    wins = int(sum(int((d > 0).sum()) for d in diffs))
    losses = int(sum(int((d < 0).sum()) for d in diffs))
    low, high = np.percentile(boot, [2.5, 97.5])
    return PairedDifference(observed, float(low), float(high), wins, losses, sign_test(wins, losses))


def paired_bootstrap_ap(groups: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], weights: Sequence[float],
                        rounds: int = 2000, seed: int = 0) -> PairedDifference:
    """Difference of pair-level APs, B minus A, over folds: ``groups[f] = (scores_a, scores_b, true)``, one
    entry per pair of fold ``f`` (``(n_f,)`` each; a pair a model did not report scores 0 for it), the
    statistic the ``weights``-weighted mean of the folds' :func:`ranked_ap`. True and false pairs are
    resampled with replacement separately (stratified), the same draw for both models."""
    rng = np.random.default_rng(seed)
    w = np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
    observed, boot = 0.0, np.zeros(rounds)
    for wf, (sa, sb, y) in zip(w, groups, strict=True):
        y = np.asarray(y, dtype=bool)
        pa, na, pb, nb = sa[y], sa[~y], sb[y], sb[~y]
        observed += wf * (ranked_ap(pb, nb) - ranked_ap(pa, na))
        for r in range(rounds):
            ip, i_n = rng.integers(0, len(pa), len(pa)), rng.integers(0, len(na), len(na))
            boot[r] += wf * (ranked_ap(pb[ip], nb[i_n]) - ranked_ap(pa[ip], na[i_n]))
    low, high = np.percentile(boot, [2.5, 97.5])
    return PairedDifference(float(observed), float(low), float(high))


def pair_level(pair_scores: dict[frozenset, float], true_pairs: set[frozenset], n_videos: int) -> PairLevel:
    """Pair-level AP and best F1 over all ``n_videos * (n_videos - 1) / 2`` unordered pairs.

    ``pair_scores``: the best score reported for a pair in either direction (pairs never
    reported score 0). Ties are broken pessimistically (negatives first), so a constant
    score earns nothing.
    """
    n_pairs = n_videos * (n_videos - 1) // 2
    n_true = len(true_pairs)
    if n_true == 0:
        return PairLevel(float("nan"), float("nan"), float("nan"), n_pairs, 0)
    keys = list(pair_scores)
    s = np.array([pair_scores[k] for k in keys], dtype=np.float64)
    y = np.array([k in true_pairs for k in keys], dtype=bool)
    # unreported pairs: score 0; the true ones among them go after every other pair at 0
    n_unrep_true = n_true - int(y.sum())
    n_unrep_false = n_pairs - len(keys) - n_unrep_true
    s = np.r_[s, np.zeros(n_unrep_true + n_unrep_false)]
    y = np.r_[y, np.zeros(n_unrep_false, bool), np.ones(n_unrep_true, bool)]
    order = np.lexsort((y, -s))  # by score descending, negatives before positives on ties
    hits = y[order]
    tp = np.cumsum(hits)
    rank = np.arange(1, len(hits) + 1)
    precision = tp / rank
    ap = ranked_ap(s[y], s[~y])
    # best F1 at thresholds between distinct scores (reported pairs only)
    reported = len(keys)
    if reported:
        p, r = precision[:reported], tp[:reported] / n_true
        f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
        best_f1, threshold = float(f1.max()), float(s[order][int(f1.argmax())])
    else:
        best_f1, threshold = 0.0, float("nan")
    return PairLevel(ap, best_f1, float(int(y[: reported].sum()) / n_true) if reported else 0.0, n_pairs, n_true,
                     threshold)
