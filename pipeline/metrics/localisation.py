"""Localisation metrics (spec section 5): offset errors, accuracy below thresholds, localisation mAP.

Units: every offset and error here is in **seconds** unless the argument name says ``_frames``
(1/15-s frames).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ACCURACY_THRESHOLDS_S = (0.1, 1.0, 10.0)


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
