"""Positive snippet pairs for learned-LAMV training (paper section 3.3), vectorised over pairs.

An overlapping pair of videos ``(A, B)`` is known by its offset ``offset``
(1/15-s frames): frame ``i`` of ``A`` shows what frame ``i - offset`` of ``B``
shows (the TMK sign convention: the score curve of ``(A, B)`` peaks at
``delta = t_A - t_B = offset``). A training example takes a snippet ``X0`` of
``L`` frames from ``A`` and a snippet ``X+`` of ``L`` frames from ``B`` that
shows at least ``min_overlap`` of ``X0``'s content, shifted by a random
``delta*``: the true offset of the snippet pair, in snippet-local frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SnippetPairs:
    """Per pair: ``start_a``, ``start_b`` (frames, into A and B) and ``delta`` (``t_X0 - t_X+``, frames);
    ``valid`` is False where the two videos do not share ``min_overlap * L`` frames at all."""

    start_a: np.ndarray
    start_b: np.ndarray
    delta: np.ndarray
    valid: np.ndarray


def sample_snippet_pairs(len_a: np.ndarray, len_b: np.ndarray, offset: np.ndarray, length: int,
                         min_overlap: float, rng: np.random.Generator, span_lo: np.ndarray | None = None,
                         span_hi: np.ndarray | None = None) -> SnippetPairs:
    """One positive snippet pair for each video pair (arrays of equal length ``n``).

    ``X0 = A[start_a : start_a + L]``, ``X+ = B[start_b : start_b + L]``; ``X+`` holds at least
    ``ceil(min_overlap * L)`` frames of ``X0``'s content, and ``delta`` is uniform over the shifts that
    allow it (``ceil(min_overlap * S)`` frames when the shared span ``S`` is shorter than ``L``).
    Videos shorter than ``L`` give snippets padded by the caller (start 0).  ``span_lo``,
    ``span_hi`` optionally bound the frames of A whose content B shows (a partial copy amid unrelated
    material): only content inside counts as shared.
    """
    len_a, len_b = np.asarray(len_a, np.int64), np.asarray(len_b, np.int64)
    offset = np.asarray(np.round(offset), np.int64)
    n = len(len_a)
    need_full = int(np.ceil(min_overlap * length))
    la, lb = np.minimum(len_a, length), np.minimum(len_b, length)
    # the shared span of the two videos, in A's frames: [lo, hi)
    lo = np.maximum(0, offset)
    hi = np.minimum(len_a, len_b + offset)
    if span_lo is not None:
        lo = np.maximum(lo, np.asarray(span_lo, np.int64))
    if span_hi is not None:
        hi = np.minimum(hi, np.asarray(span_hi, np.int64))
    shared = np.maximum(hi - lo, 0)
    # a shared span shorter than a snippet (a short copy amid other material): X+ shows at least
    # ``min_overlap`` of the span instead of ``min_overlap * L`` frames
    need = np.where(shared >= length, need_full, np.ceil(min_overlap * shared).astype(np.int64))
    need = np.maximum(need, 1)
    valid = shared >= np.minimum(need, np.minimum(la, lb))
    # X0 starts where at least `need` of its frames (or all of a short video) fall in the shared span
    a_min = np.clip(lo + np.minimum(need, la) - la, 0, np.maximum(len_a - la, 0))
    a_max = np.clip(hi - np.minimum(need, la), 0, np.maximum(len_a - la, 0))
    a_max = np.maximum(a_max, a_min)
    start_a = a_min + np.floor(rng.random(n) * (a_max - a_min + 1)).astype(np.int64)
    # X0's content sits at B frames [centre, centre + la); the part of it inside B is [c0, c1), and X+
    # must cover at least `need` of those frames
    centre = start_a - offset
    c0, c1 = np.maximum(start_a, lo) - offset, np.minimum(start_a + la, hi) - offset
    want = np.minimum(np.minimum(need, np.maximum(c1 - c0, 0)), lb)
    b_min = np.clip(c0 + want - lb, 0, np.maximum(len_b - lb, 0))
    b_max = np.clip(c1 - want, 0, np.maximum(len_b - lb, 0))
    b_max = np.maximum(b_max, b_min)
    start_b = b_min + np.floor(rng.random(n) * (b_max - b_min + 1)).astype(np.int64)
    # frame k of X0 = A[start_a + k] = B[start_a + k - offset] = X+[start_a + k - offset - start_b]
    delta = start_b - centre
    return SnippetPairs(start_a, start_b, delta, valid)


def overlap_frames(p: SnippetPairs, len_a: np.ndarray, len_b: np.ndarray, offset: np.ndarray,
                   length: int) -> np.ndarray:
    """Frames of ``X0``'s content that ``X+`` shows (for checks): ``(n,)``."""
    a0, a1 = p.start_a, np.minimum(p.start_a + length, np.asarray(len_a))
    b0 = p.start_b + np.asarray(np.round(offset), np.int64)  # X+ in A's frames
    b1 = np.minimum(p.start_b + length, np.asarray(len_b)) + np.asarray(np.round(offset), np.int64)
    return np.maximum(0, np.minimum(a1, b1) - np.maximum(a0, b0))
