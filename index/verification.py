"""Frame-level verification of candidates: the best diagonal of the frame similarity matrix.

For a query and each candidate, frames are sub-sampled to ``step`` (in 1/15-s
frames), and every pair of sampled frames ``(i, j)`` votes for the offset
``i - j`` with the part of its cosine similarity above ``threshold``. A
candidate's score is the best offset's total vote, smoothed over the two
neighbouring offsets (a copy whose frames fall between samples still adds up):
the summed excess similarity of the frames that line up at one time offset,
so a longer or closer copy scores higher and unrelated material adds ~0.

All candidates are scored together (one matrix product and one scatter-add per
block of candidates, blocks bounded by ``chunk_elements``); no loop over frames,
offsets or single candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Verified:
    """Per candidate: ``score (C,)`` and best ``offset (C,)`` in 1/15-s frames (``t_query - t_candidate``)."""

    score: np.ndarray
    offset_frames: np.ndarray


def diagonal_verify(query: np.ndarray, candidates: list[np.ndarray], step: int = 7, threshold: float = 0.2,
                    chunk_elements: int = 8 << 20) -> Verified:
    """Best-diagonal scores of ``query (Nq, d)`` against each ``candidates[c] (Nc, d)`` (unit rows)."""
    C = len(candidates)
    if C == 0 or len(query) == 0:
        return Verified(np.zeros(C, np.float32), np.zeros(C, np.int64))
    q = torch.from_numpy(np.ascontiguousarray(query[::step], dtype=np.float32))  # (nq, d)
    nq = q.shape[0]
    sampled = [np.ascontiguousarray(c[::step], dtype=np.float32) for c in candidates]
    lengths = np.array([len(c) for c in sampled], dtype=np.int64)
    score = np.zeros(C, np.float32)
    offset = np.zeros(C, np.int64)
    # blocks of candidates whose similarity matrix stays below chunk_elements
    per_block = np.maximum(1, chunk_elements // max(1, nq * int(max(1, lengths.max()))))
    for b0 in range(0, C, int(per_block)):
        block = range(b0, min(C, b0 + int(per_block)))
        lens = lengths[list(block)]
        if lens.sum() == 0:
            continue
        span = nq + int(lens.max()) - 1  # diagonals i - j + (L - 1), L = longest candidate of the block
        L = int(lens.max())
        m = torch.from_numpy(np.concatenate([sampled[c] for c in block]))  # (M, d)
        owner = torch.from_numpy(np.repeat(np.arange(len(block)), lens))  # (M,)
        local = torch.from_numpy(np.concatenate([np.arange(n) for n in lens]))  # (M,)
        w = (q @ m.T - threshold).clamp_min(0)  # (nq, M)
        i = torch.arange(nq)[:, None]
        bins = owner[None, :] * span + (i - local[None, :] + L - 1)  # (nq, M)
        votes = torch.zeros(len(block) * span).scatter_add_(0, bins.reshape(-1), w.reshape(-1)).view(-1, span)
        smooth = votes.clone()
        smooth[:, 1:] += 0.5 * votes[:, :-1]
        smooth[:, :-1] += 0.5 * votes[:, 1:]
        best = smooth.argmax(dim=1)
        score[b0:b0 + len(block)] = smooth.gather(1, best[:, None])[:, 0].numpy()
        offset[b0:b0 + len(block)] = (best.numpy() - (L - 1)) * step
    return Verified(score, offset)


def refine_offsets(coarse_frames: np.ndarray, model_frames: np.ndarray, step: int) -> np.ndarray:
    """The temporal model's finer offset where it agrees with the verified one (within one sampling
    step), else the verified offset; both in 1/15-s frames."""
    coarse = np.asarray(coarse_frames, dtype=np.float64)
    fine = np.asarray(model_frames, dtype=np.float64)
    return np.where(np.abs(fine - coarse) <= step, fine, coarse)
