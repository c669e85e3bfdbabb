"""Paired statistics for comparing two models on the same items: sign test, paired bootstrap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.metrics.pair_level import ranked_ap


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
