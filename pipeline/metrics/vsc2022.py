"""The VSC 2022 metrics, computed as ``facebookresearch/vsc2022`` (``vsc/metrics.py``) computes them.

* **Ids** (:func:`format_video_id`): an integer id becomes ``Q%06d`` (queries) or ``R%06d``
  (references); a text id must start with that letter, so ``1`` and ``Q000001`` are one video and a
  reference id in the query column is refused.
* **Pairwise micro-AP** (:func:`pairwise_micro_ap`, the descriptor track's metric and the matching
  track's auxiliary one): the predicted (query, reference) pairs ranked by score; at each distinct
  score (tied pairs enter together) ``precision = correct / predicted`` so far; ``AP = sum over
  score levels of precision x (correct pairs added) / (ground-truth pairs)``. That is scikit-learn's
  average precision over the predicted pairs, rescaled by the share of ground-truth pairs predicted
  at all, exactly the challenge's (DrivenData's) implementation. Pairs never predicted count as
  misses; pairs predicted but absent from the ground truth as false positives.
* **Segment micro-AP** (the matching track's main metric): :func:`pipeline.metrics.segments.vsc_micro_ap`.

Stricter than the peer, by design (documented in README): duplicate pairs, non-finite scores and an
empty ground truth raise :class:`VSCInputError` with one line instead of an ``AssertionError`` or a
division by zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from extractors.runtime.errors import VideoAlignError
from pipeline.metrics.segments import Box, vsc_micro_ap

QUERY, REFERENCE = "Q", "R"


class VSCInputError(VideoAlignError, ValueError):
    """Input the VSC metrics cannot score (duplicates, a wrong id prefix, non-finite scores)."""


def format_video_id(value: str | int, side: str, where: str = "") -> str:
    """``value`` as a VSC id of ``side`` (``"Q"`` or ``"R"``): integers (or all-digit text, as a CSV
    reader that types columns sees them) become ``Q000001``; text must carry the side's prefix."""
    text = str(value).strip()
    if text.isdigit():
        return f"{side}{int(text):06d}"
    if not text.startswith(side):
        what = "query" if side == QUERY else "reference"
        raise VSCInputError(f"{where}{': ' if where else ''}{what} id {text!r} does not start with {side!r} "
                            f"(VSC {what} ids are {side}000001, ... or integers)")
    return text


@dataclass(frozen=True)
class CandidatePair:
    """A predicted (or, score unused, ground-truth) copy pair of a query and a reference video."""

    query: str
    ref: str
    score: float = 1.0


@dataclass(frozen=True)
class AveragePrecision:
    """An AP and its curve: precision and recall after each score level that added a correct pair
    (``scores``: that level's score)."""

    ap: float
    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray

    def as_json(self) -> dict:
        return {"ap": self.ap, "precision": self.precision.tolist(), "recall": self.recall.tolist(),
                "scores": self.scores.tolist()}


@dataclass(frozen=True)
class MatchingTrack:
    segment_ap: float
    segment_precision: np.ndarray
    segment_recall: np.ndarray
    pairwise_micro_ap: AveragePrecision


def candidate_pairs(boxes: Iterable[Box]) -> list[CandidatePair]:
    """One pair per (query, reference) of ``boxes``, scored by its best box (first-seen order)."""
    best: dict[tuple[str, str], float] = {}
    for b in boxes:
        key = (b.query, b.ref)
        best[key] = max(b.score, best.get(key, float("-inf")))
    return [CandidatePair(q, r, s) for (q, r), s in best.items()]


def pairwise_micro_ap(ground_truth: Sequence[CandidatePair], predictions: Sequence[CandidatePair]) -> AveragePrecision:
    """The VSC 2022 pairwise micro-AP (module docstring) of ``predictions`` against ``ground_truth``."""
    truth = {(p.query, p.ref) for p in ground_truth}
    if len(truth) != len(ground_truth):
        raise VSCInputError("the ground truth lists a (query, reference) pair twice")
    if not truth:
        raise VSCInputError("the ground truth has no pairs: the micro-AP is undefined")
    keys = [(p.query, p.ref) for p in predictions]
    if len(set(keys)) != len(keys):
        raise VSCInputError("the predictions list a (query, reference) pair twice")
    scores = np.array([p.score for p in predictions], dtype=np.float64)
    if not np.all(np.isfinite(scores)):
        raise VSCInputError("prediction scores must be finite")
    empty = np.zeros(0)
    if not len(scores):
        return AveragePrecision(0.0, empty, empty, empty)
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    correct = np.fromiter((keys[i] in truth for i in order), dtype=bool, count=len(order))
    last = np.r_[s[1:] != s[:-1], True]  # the last pair of each score level
    tp = np.cumsum(correct)[last]
    n = (np.arange(len(s)) + 1)[last]
    added = np.diff(np.r_[0, tp])
    precision = tp / n
    recall = tp / len(truth)
    ap = float(np.sum(precision * added) / len(truth))
    hit = added > 0
    return AveragePrecision(ap, precision[hit], recall[hit], s[last][hit])


def matching_track(ground_truth: Sequence[Box], predictions: Sequence[Box]) -> MatchingTrack:
    """The matching track's segment micro-AP and its pairwise micro-AP (predicted pairs scored by their
    best segment), as ``vsc2022``'s ``evaluate_matching_track``."""
    seg = vsc_micro_ap(ground_truth, predictions)
    pair = pairwise_micro_ap(candidate_pairs(ground_truth), candidate_pairs(predictions))
    return MatchingTrack(seg.ap, seg.precision, seg.recall, pair)
