"""EVVE event retrieval (spec section 5): average precision and mAP.

The reference reports the mean AP over pooled queries; the EVVE protocol is the mean of
per-event mean APs.  Both are reported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


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
