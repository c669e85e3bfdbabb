"""Pair-level AP: every unordered video pair ranked by its best score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
