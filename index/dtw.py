"""Dynamic time warping, contextualised frame features and DRAQ (Sync from the Sea).

* :func:`contextualise` (paper eq. 2-3): each frame feature concatenated with the running mean of
  the features up to it (cumulative sum divided by the clip length), then zero-centred per clip.
* :func:`banded_dtw` (eq. 4-5): the cheapest monotone path of moves (0, 1), (1, 0), (1, 1) from the
  first cell to the last, batched over pairs.  Cells live in a *band* around a diagonal: column
  ``w`` of row ``i`` is the cell ``(i, j = i + band_start + w)``; a full DTW is the band that covers
  the whole matrix (:func:`full_band`).  The recurrence is evaluated one row at a time, each row as a
  min-plus scan (a cumulative sum and a cumulative minimum) vectorised over the row and the batch:
  the rows are the only sequential dependency, there is no loop over cells or pairs.
* :func:`random_path_costs` and :func:`draq` (eq. 6): the optimal cost divided by the mean cost of
  ``k`` biased random monotone paths from ``(n, m)`` to ``(1, 1)`` (up with probability
  ``i / (i + j)``, left with ``j / (i + j)``; a step out of the matrix is not taken).  Lower DRAQ: the
  pair is more alignable than chance.
* :func:`warp` turns a path into a map from one sequence's positions to the other's, optionally
  keeping one sequence unwarped (one position per frame of it: repeated indices dropped).

Shapes: ``B`` pairs, ``n`` rows (the first sequence), ``m`` columns, ``W`` band width.  Positions are
frame indices of whatever sampling the caller used; converting them to seconds is the caller's job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

INF = float("inf")
MOVE_DIAGONAL, MOVE_UP, MOVE_LEFT = 0, 1, 2  # (i-1, j-1), (i-1, j), (i, j-1)


def contextualise(features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """``(n, d)`` -> ``(n, 2d)``: ``[x_t, (sum_{s<=t} x_s) / n]``, minus its mean over the clip.  A
    padded batch ``(B, N, d)`` with ``lengths (B,)``: each clip over its first ``lengths[b]`` rows, zero
    rows after them."""
    x = features.to(torch.float32)
    if x.dim() == 2:
        return contextualise(x[None], torch.tensor([x.shape[0]]))[0]
    valid = (torch.arange(x.shape[1])[None, :] < lengths[:, None]).to(x.dtype)[..., None]
    x = x * valid
    n = lengths.clamp_min(1).to(x.dtype)[:, None, None]
    ctx = torch.cat([x, torch.cumsum(x, dim=1) / n], dim=2)
    mean = (ctx * valid).sum(dim=1, keepdim=True) / n
    return (ctx - mean) * valid


def cosine_cost(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine distance ``1 - cos(a_i, b_j)``: ``(n, d), (m, d) -> (n, m)``."""
    an = torch.nn.functional.normalize(a.to(torch.float32), dim=1)
    bn = torch.nn.functional.normalize(b.to(torch.float32), dim=1)
    return 1.0 - an @ bn.T


@dataclass(frozen=True)
class Band:
    """The cells a DTW may visit: row ``i``, column ``w`` is cell ``(i, i + start + w)``."""

    start: int
    width: int


def full_band(n: int, m: int) -> Band:
    """The band covering every cell of an ``n x m`` matrix."""
    return Band(start=-(n - 1), width=n + m - 1)


def band_cost(full: torch.Tensor, band: Band) -> torch.Tensor:
    """``(B, n, m)`` dense costs -> ``(B, n, W)`` band layout (cells outside the matrix: inf)."""
    n, m = full.shape[1:]
    i = torch.arange(n)[:, None]
    j = i + band.start + torch.arange(band.width)[None, :]
    inside = (j >= 0) & (j < m)
    out = full[:, i, j.clamp(0, max(0, m - 1))]
    return torch.where(inside[None], out, torch.full_like(out, INF))


@dataclass(frozen=True)
class DTWResult:
    """``cost (B,)``: the optimal path's summed cost (inf: no path inside the band);
    ``path (B, P, 2)``: its cells ``(i, j)`` from the first to the last, padded with -1;
    ``length (B,)``: cells on each path."""

    cost: np.ndarray
    path: np.ndarray
    length: np.ndarray

    def cells(self, b: int) -> np.ndarray:
        """The ``(L, 2)`` cells of pair ``b``'s path."""
        return self.path[b, : self.length[b]]


def banded_dtw(cost: torch.Tensor, band: Band, n: np.ndarray, m: np.ndarray) -> DTWResult:
    """Optimal warping of every pair: ``cost (B, N, W)`` in band layout, ``n (B,)`` and ``m (B,)`` the
    pairs' own lengths (rows ``>= n[b]`` and columns ``>= m[b]`` are padding).  Each path runs from
    ``(0, 0)`` to ``(n[b] - 1, m[b] - 1)``; both must lie inside the band.

    One row at a time, vectorised over the row and the batch: with ``A[w]`` the best way into cell
    ``w`` from the row above (diagonal or up), the row's recurrence ``D[w] = c[w] + min(A[w], D[w-1])``
    is the min-plus scan ``D[w] = C[w] + min_{k <= w} (A[k] - C[k-1])`` (``C``: the row's cumulative
    cost), a cumulative sum and a cumulative minimum."""
    B, N, W = cost.shape
    n_a, m_a = np.asarray(n, dtype=np.int64), np.asarray(m, dtype=np.int64)
    end_w = (m_a - 1) - (n_a - 1) - band.start
    if ((end_w < 0) | (end_w >= W)).any() or -band.start < 0 or -band.start >= W:
        raise ValueError("the first or last cell of a pair lies outside the DTW band")
    c_all = cost.detach().to(torch.float64).numpy() if isinstance(cost, torch.Tensor) else np.asarray(cost, np.float64)
    cols = np.arange(W)[None, :]
    D = np.empty((B, N, W))
    move = np.zeros((B, N, W), dtype=np.uint8)
    prev = np.full((B, W), np.inf)
    prev_up = np.full((B, W), np.inf)
    first = np.where(cols == -band.start, 0.0, np.inf).repeat(B, axis=0)
    left = np.zeros((B, W), dtype=bool)
    for i in range(N):  # each row depends on the one above (small arrays: NumPy, not torch, per row)
        j = i + band.start + cols
        valid = (j >= 0) & (j < m_a[:, None]) & (i < n_a[:, None])  # (B, W)
        c = np.where(valid, c_all[:, i], 0.0)
        if i == 0:
            a, from_up = first, np.zeros((B, W), dtype=bool)
        else:
            prev_up[:, :-1] = prev[:, 1:]  # cell (i-1, j) is column w+1 of the row above
            from_up = prev_up < prev
            a = np.minimum(prev, prev_up)
        a = np.where(valid, a, np.inf)
        C = np.cumsum(c, axis=1)
        row = np.where(valid, C + np.minimum.accumulate(a - (C - c), axis=1), np.inf)
        left[:, 1:] = row[:, :-1] < a[:, 1:]
        move[:, i] = np.where(left, MOVE_LEFT, np.where(from_up, MOVE_UP, MOVE_DIAGONAL))
        D[:, i] = row
        prev = row
    total = D[np.arange(B), n_a - 1, end_w]
    path, length = _backtrack(move, band, n_a, m_a, np.isfinite(total))
    return DTWResult(total, path, length)


def _backtrack(move: np.ndarray, band: Band, n: np.ndarray, m: np.ndarray, ok: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Follow the stored moves back from every pair's last cell at once (one step per iteration)."""
    B = len(n)
    P = int((n + m).max()) - 1 if B else 0
    path = np.full((B, max(P, 0), 2), -1, dtype=np.int64)
    i, j = np.where(ok, n - 1, 0), np.where(ok, m - 1, 0)  # pairs without a path wait at (0, 0)
    alive = ok.copy()
    steps = np.zeros(B, dtype=np.int64)
    rows = np.arange(B)
    di = np.array([1, 1, 0])[move]  # rows to step back per cell: diagonal 1, up 1, left 0
    dj = np.array([1, 0, 1])[move]
    for s in range(P):
        if not alive.any():
            break
        path[alive, s, 0], path[alive, s, 1] = i[alive], j[alive]
        steps[alive] = s + 1
        alive &= (i > 0) | (j > 0)
        w = j - i - band.start
        i, j = i - di[rows, i, w] * alive, j - dj[rows, i, w] * alive
    # reverse each path so it runs from (0, 0)
    idx = steps[:, None] - 1 - np.arange(path.shape[1])[None, :]
    rev = np.take_along_axis(path, np.clip(idx, 0, None)[..., None].repeat(2, axis=2), axis=1)
    rev[idx < 0] = -1
    return rev, steps


def dtw(cost: torch.Tensor) -> DTWResult:
    """Full DTW of one ``(n, m)`` cost matrix."""
    n, m = cost.shape
    band = full_band(n, m)
    return banded_dtw(band_cost(cost[None], band), band, np.array([n]), np.array([m]))


def first_of_each_row(path: np.ndarray) -> np.ndarray:
    """The path ``(L, 2)`` with one cell per row: the first of each horizontal run (the first sequence
    unwarped)."""
    return path[np.r_[True, path[1:, 0] != path[:-1, 0]]]


def warp(path: np.ndarray, n: int, unwarped: str | None = None) -> np.ndarray:
    """Position in the second sequence for each of the first sequence's ``n`` positions along ``path
    (L, 2)``: the mean of the columns the path pairs with that row; ``unwarped='first'`` keeps the
    first sequence unwarped by taking the first such column instead (each row used once: the repeated
    row indices of horizontal runs are dropped)."""
    i, j = path[:, 0], path[:, 1]
    if unwarped == "first":
        i, j = first_of_each_row(path).T
        out = np.full(n, np.nan)
        out[i] = j
        return out
    total = np.bincount(i, weights=j, minlength=n)
    count = np.bincount(i, minlength=n)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def random_path_costs(cost: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Summed cost of ``k`` biased random monotone paths through ``cost (n, m)`` from ``(n, m)`` to
    ``(1, 1)`` (1-based): at ``(i, j)`` the path steps up with probability ``i / (i + j)``, else left;
    a step that would leave the matrix is not taken.  All ``k`` paths advance together -> ``(k,)``."""
    n, m = cost.shape
    c = cost.to(torch.float64).reshape(-1)
    i = torch.full((k,), n, dtype=torch.long)
    j = torch.full((k,), m, dtype=torch.long)
    total = c[(i - 1) * m + (j - 1)].clone()
    while True:
        active = (i > 1) | (j > 1)
        if not bool(active.any()):
            return total
        u = torch.rand(k, generator=generator, dtype=torch.float64)
        up = u < i.to(torch.float64) / (i + j).to(torch.float64)
        step_i = active & up & (i > 1)
        step_j = active & ~up & (j > 1)
        i = i - step_i.long()
        j = j - step_j.long()
        moved = step_i | step_j
        total = total + torch.where(moved, c[(i - 1) * m + (j - 1)], torch.zeros((), dtype=torch.float64))


def draq(cost: torch.Tensor, optimal: float, k: int = 100, seed: int = 0) -> float:
    """DRAQ of one pair: the optimal DTW cost over the mean cost of ``k`` random monotone paths."""
    g = torch.Generator().manual_seed(seed)
    mean = float(random_path_costs(cost, k, g).mean())
    return float(optimal) / mean if mean > 0 else float("inf")
