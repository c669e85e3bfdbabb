"""The VCSL evaluation protocol over a split, as ``alipay/VCSL`` (``vcsl/metric.py``,
``run_video_eval.py``) computes it.

Every pair of the split (``q-r`` keys; positives have boxes in ``label_file.json``, negatives none) is
scored by :func:`pipeline.metrics.segments.vcsl_pair`; a pair without predictions, without ground
truth, or without both takes VCSL's sentinel values:

================  =========  ======
pair              precision  recall
================  =========  ======
predictions only  0          1
ground truth only 1          0
neither           1          1
================  =========  ======

* **Micro** (over video pairs): the precision averages the pairs that have predictions, the recall
  the pairs that have ground truth; ``F1 = 2PR / (P + R)``. With ``N`` split pairs and ``ratio`` =
  positives / negatives (``--ratio-pos-neg``), ``FRR = (1 + ratio) / ratio x (missed positives) / N``
  and ``FAR = (1 + ratio) x (pairs predicted without ground truth) / N``: the split's positives and
  negatives are taken as ``N ratio / (1 + ratio)`` and ``N / (1 + ratio)``.
* **Macro** (over query sets, ``meta_pairs.json``): per set, the mean precision and recall of its
  pairs, sentinels included; then the mean over sets.

Where the peer divides by zero (no pair with predictions) the value here is NaN; where it adds 1e-6
to a denominator (and, in float32, sums lengths) the values here are exact: they agree to ~1e-6.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.metrics.segments import vcsl_pair

Pair = tuple[str, str]


@dataclass(frozen=True)
class PairScore:
    precision: float
    recall: float
    has_pred: bool
    has_gt: bool


@dataclass(frozen=True)
class VCSLMicro:
    precision: float
    recall: float
    f1: float
    far: float
    frr: float
    pairs: int


@dataclass(frozen=True)
class VCSLMacro:
    precision: float
    recall: float
    f1: float
    sets: int


def f1_score(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else (float("nan") if math.isnan(p + r) else 0.0)


def pair_score(pred: np.ndarray, gt: np.ndarray) -> PairScore:
    """VCSL's precision and recall of one pair's ``(P, 4)`` / ``(G, 4)`` boxes ``[q0, q1, r0, r1]``,
    sentinels included (module docstring)."""
    has_pred, has_gt = len(pred) > 0, len(gt) > 0
    if has_pred and has_gt:
        pr = vcsl_pair(pred, gt)
        return PairScore(pr.precision, pr.recall, True, True)
    return PairScore(0.0 if has_pred else 1.0, 0.0 if has_gt else 1.0, has_pred, has_gt)


def score_split(split: Sequence[Pair], gt: Mapping[Pair, np.ndarray], pred: Mapping[Pair, np.ndarray]
                ) -> dict[Pair, PairScore]:
    """Every pair of ``split`` scored (boxes of pairs outside the split are ignored)."""
    empty = np.zeros((0, 4))
    return {k: pair_score(np.asarray(pred.get(k, empty), np.float64).reshape(-1, 4),
                          np.asarray(gt.get(k, empty), np.float64).reshape(-1, 4)) for k in split}


def micro(scores: Mapping[Pair, PairScore], ratio_pos_neg: float = 1.0) -> VCSLMicro:
    """VCSL's micro average over the split's pairs and its video-level FAR / FRR."""
    if ratio_pos_neg <= 0 or not math.isfinite(ratio_pos_neg):
        raise ValueError(f"ratio_pos_neg must be a positive number, got {ratio_pos_neg}")
    vals = list(scores.values())
    ps = [s.precision for s in vals if s.has_pred]
    rs = [s.recall for s in vals if s.has_gt]
    p = float(np.mean(ps)) if ps else float("nan")
    r = float(np.mean(rs)) if rs else float("nan")
    n = len(vals)
    missed = sum(1 for s in vals if s.has_gt and not s.has_pred)
    alarms = sum(1 for s in vals if s.has_pred and not s.has_gt)
    frr = (1 + ratio_pos_neg) / ratio_pos_neg * missed / n if n else float("nan")
    far = (1 + ratio_pos_neg) * alarms / n if n else float("nan")
    return VCSLMicro(p, r, f1_score(p, r), far, frr, n)


def macro(scores: Mapping[Pair, PairScore], query_sets: Mapping[str, Sequence[Pair]]) -> VCSLMacro:
    """VCSL's macro average over query sets: per set the mean precision and recall of its pairs
    (sentinels included), then the mean over sets. Every pair of a set must be in ``scores``."""
    per_set = []
    for name, pairs in query_sets.items():
        outside = [k for k in pairs if k not in scores]
        if outside:
            raise KeyError(f"query set {name!r}: pair {'-'.join(outside[0])} is not in the split")
        if pairs:
            per_set.append((np.mean([scores[k].precision for k in pairs]), np.mean([scores[k].recall for k in pairs])))
    if not per_set:
        return VCSLMacro(float("nan"), float("nan"), float("nan"), 0)
    p, r = (float(np.mean(v)) for v in zip(*per_set, strict=True))
    return VCSLMacro(p, r, f1_score(p, r), len(per_set))
