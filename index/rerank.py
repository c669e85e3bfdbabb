"""Candidate re-ranking by offset scoring, query expansion, and copy segments.

Units: offsets and spans returned here are in **seconds**; the kernels work in
1/15-s frames internally.  ``offset_s = t_query - t_match`` for corresponding
content (a match that shows the query's first frame 10 s into itself has
offset -10 s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from extractors.runtime.timebase import FPS
from extractors.temporal.cte import CTE
from extractors.temporal.tmk import TMK
from index.query_expansion import expand_query


@dataclass(frozen=True)
class Match:
    """One re-ranked result."""

    query: str
    match: str
    score: float
    offset_s: float
    rank: int
    query_start_s: float = float("nan")
    query_end_s: float = float("nan")
    match_start_s: float = float("nan")
    match_end_s: float = float("nan")
    raw_score: float = float("nan")  # the model's score before per-query normalisation (= score without it)
    copy: bool = False  # the frame-level stage found a segment scoring at least segments.copy_threshold
    segment_score: float = float("nan")  # the best segment's score (nan: no frame-level stage)
    draq: float = float("nan")  # DRAQ alignability (lower: more alignable) when align.draq_top re-ranked it


def offset_range(model: TMK | CTE, query_frames: int, max_candidate_frames: int) -> np.ndarray:
    """Every offset (1/15 s) at which the query and some candidate overlap:
    ``t_q - t_c`` from ``-(max_candidate_frames - 1)`` to ``query_frames - 1``;
    clipped to ``|offset| < L/2`` for CTE."""
    lo, hi = -(max_candidate_frames - 1), query_frames - 1
    if isinstance(model, CTE):
        half = model.length // 2 - 1
        lo, hi = max(lo, -half), min(hi, half)
    return np.arange(lo, hi + 1)


def rerank(model: TMK | CTE, query_fv: torch.Tensor, candidate_fv: torch.Tensor,
           offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best score ``(B,)`` and best offset in seconds ``(B,)`` of one query against candidates."""
    if len(candidate_fv) == 0:
        return np.zeros(0, np.float32), np.zeros(0)
    best, off = model.score_max(query_fv, candidate_fv, offsets)
    return best.numpy(), off.numpy() / FPS


def rerank_with_expansion(model: TMK | CTE, query_fv: torch.Tensor, candidate_fv: torch.Tensor,
                          offsets: np.ndarray, kind: str = "none", n1: int = 10, n2: int = 2000,
                          mode: str = "corrected") -> tuple[np.ndarray, np.ndarray]:
    """:func:`rerank`, then (TMK only) query expansion over the candidates and a second pass."""
    scores, off_s = rerank(model, query_fv, candidate_fv, offsets)
    if kind in ("", "none") or len(candidate_fv) == 0:
        return scores, off_s
    if not isinstance(model, TMK):
        raise ValueError("query expansion needs a TMK model (CTE has no phase shift)")
    q = query_fv[0] if query_fv.dim() == 4 else query_fv
    expanded = expand_query(kind, model, q, candidate_fv, scores, off_s * FPS, n1, n2, mode)  # type: ignore[arg-type]
    return rerank(model, expanded, candidate_fv, offsets)


def aligned_segment(q_feats: np.ndarray, q_times_s: np.ndarray, m_feats: np.ndarray,
                    m_times_s: np.ndarray, offset_s: float, threshold: float = 0.5,
                    max_gap_s: float = 1.0) -> tuple[float, float, float, float]:
    """Matching spans along the diagonal ``t_m = t_q - offset_s``.

    Every query frame is paired with the match frame nearest to ``t_q - offset``
    (within one 15-fps period); pairs with cosine >= ``threshold`` match; gaps
    of at most ``max_gap_s`` inside a run are bridged; the longest run gives
    ``(query_start_s, query_end_s, match_start_s, match_end_s)`` (end exclusive),
    or NaNs when nothing matches.

    Args:
        q_feats: ``(Nq, d)`` unit frame features; ``q_times_s`` ``(Nq,)`` seconds.
        m_feats: ``(Nm, d)``; ``m_times_s`` ``(Nm,)`` seconds (increasing).
    """
    nan = (float("nan"),) * 4
    if len(q_feats) == 0 or len(m_feats) == 0:
        return nan
    target = np.asarray(q_times_s, np.float64) - offset_s
    j = np.clip(np.searchsorted(m_times_s, target), 1, len(m_times_s) - 1) if len(m_times_s) > 1 \
        else np.zeros(len(target), dtype=np.int64)
    if len(m_times_s) > 1:
        left_closer = np.abs(m_times_s[j - 1] - target) <= np.abs(m_times_s[j] - target)
        j = np.where(left_closer, j - 1, j)
    valid = np.abs(m_times_s[j] - target) <= 1.0 / FPS + 1e-9
    sim = np.einsum("nd,nd->n", q_feats.astype(np.float32), m_feats[j].astype(np.float32))
    hit = valid & (sim >= threshold)
    if not hit.any():
        return nan
    idx = np.flatnonzero(hit)
    t = np.asarray(q_times_s, np.float64)[idx]
    breaks = np.flatnonzero(np.diff(t) > max_gap_s + 1e-9)
    starts = np.r_[0, breaks + 1]
    ends = np.r_[breaks, len(idx) - 1]
    dur = t[ends] - t[starts]
    k = int(np.argmax(dur))
    q0, q1 = float(t[starts[k]]), float(t[ends[k]]) + 1.0 / FPS
    return q0, q1, q0 - offset_s, q1 - offset_s


def background_normalised(scores: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Per-query score normalisation against a background of non-matching videos:
    ``score - max(background)`` (scores comparable across queries; > 0 means the candidate
    beats every background video).  ``background`` empty: scores unchanged."""
    if len(background) == 0:
        return np.asarray(scores, dtype=np.float64)
    return np.asarray(scores, dtype=np.float64) - float(np.max(background))
