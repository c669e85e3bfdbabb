"""Offsets resolved at frame level where the temporal model's own peak is wide.

A temporal model reports the offset of its score curve's maximum.  Where that peak is narrow the
offset is as precise as the frames allow; where it is wide (TMK-Poullot's periods have no short one:
its peak is ~1 s wide on any features) the maximum can sit a second away from the true offset.  For
those pairs the offset is resolved from the frames themselves: within ``+-band`` frames of the
model's offset, the diagonal of the query-candidate frame similarity with the most similarity above
the frame threshold.

Units: offsets, half-widths and bands in 1/15-s frames (``t_query - t_candidate``); the callers
convert from and to seconds.  Everything is vectorised over candidates and offsets (a few chunks
bounded by ``max_elements``).
"""

from __future__ import annotations

import numpy as np
import torch

from extractors.temporal.cte import CTE
from extractors.temporal.tmk import TMK

PEAK_WINDOW_S = 3.0  # a peak's width is measured against the curve's median within this many seconds of it


def peak_halfwidths(curves: np.ndarray, centre: int) -> np.ndarray:
    """``(B,) int``: frames from ``centre`` (each curve's peak) to the nearest offset, either side, where
    the curve falls below half-way between its peak and its median (the wider side); the whole window
    side when it never does.  ``curves (B, K)``: scores around the peak, ``nan`` where not defined
    (counted as below)."""
    curves = np.asarray(curves, dtype=np.float64)
    K = curves.shape[1]
    level = 0.5 * (curves[:, centre] + np.nanmedian(curves, axis=1))
    below = ~(curves >= level[:, None])  # nan is below
    right, left = below[:, centre:], below[:, : centre + 1][:, ::-1]
    to_right = np.where(right.any(axis=1), right.argmax(axis=1), K - centre)
    to_left = np.where(left.any(axis=1), left.argmax(axis=1), centre + 1)
    return np.maximum(to_right, to_left).astype(np.int64)


def model_peak_halfwidths(model: TMK | CTE, query_fv: torch.Tensor, candidate_fv: torch.Tensor,
                          offsets: np.ndarray, window: int) -> np.ndarray:
    """``(B,) int``: :func:`peak_halfwidths` of ``model``'s score curve of the query ``query_fv`` (its
    descriptor, batch of 1) against each of ``candidate_fv (B, ...)`` within ``+-window`` frames of that
    candidate's offset ``offsets (B,) int``.  One scoring of the union of the windows."""
    offsets = np.asarray(offsets, dtype=np.int64)
    if len(offsets) == 0:
        return np.zeros(0, np.int64)
    wanted = offsets[:, None] + np.arange(-window, window + 1)[None, :]  # (B, 2 window + 1)
    scored = np.unique(wanted)
    if isinstance(model, CTE):  # the offsets a CTE resolves
        scored = scored[np.abs(scored) < model.length // 2]
    if len(scored) == 0:
        return np.zeros(len(offsets), np.int64)
    curves = model.score(query_fv, candidate_fv, scored).numpy()  # (B, |scored|)
    at = np.clip(np.searchsorted(scored, wanted), 0, len(scored) - 1)
    known = scored[at] == wanted
    windows = np.where(known, np.take_along_axis(curves, at, axis=1), np.nan)
    return peak_halfwidths(windows, window)


def band_mass(query: np.ndarray, refs: list[np.ndarray], centres: np.ndarray, band: int, threshold: float,
              max_elements: int = 1 << 24) -> np.ndarray:
    """``(B, 2 band + 1)``: for candidate ``b`` and each offset ``centres[b] - band .. centres[b] + band``,
    the cosine above ``threshold`` of ``query (n, d)`` frame ``i`` and ``refs[b] (m_b, d)`` frame
    ``i - offset``, summed over the frames that face each other (unit rows, 15 fps)."""
    B = len(refs)
    width = 2 * band + 1
    if B == 0 or len(query) == 0:
        return np.zeros((B, width), np.float32)
    q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32))  # (n, d)
    n, d = q.shape
    lengths = np.array([len(r) for r in refs], dtype=np.int64)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    rows = torch.from_numpy(np.concatenate([np.asarray(r, dtype=np.float32).reshape(-1, d) for r in refs]
                                           + [np.zeros((1, d), np.float32)]))  # the last row: outside
    outside = len(rows) - 1
    owner = np.repeat(np.arange(B), width)  # one diagonal per (candidate, offset)
    offset = (np.asarray(centres, dtype=np.int64)[:, None] + np.arange(-band, band + 1)[None, :]).reshape(-1)
    mass = np.zeros(B * width, np.float32)
    i = np.arange(n)[None, :]
    per_chunk = max(1, max_elements // max(1, n * d))
    for c0 in range(0, B * width, per_chunk):  # chunks of diagonals, each (chunk, n, d) gathered once
        b, o = owner[c0:c0 + per_chunk], offset[c0:c0 + per_chunk]
        j = i - o[:, None]  # (chunk, n): the candidate frame facing query frame i
        inside = (j >= 0) & (j < lengths[b][:, None])
        at = torch.from_numpy(np.where(inside, starts[b][:, None] + j, outside))
        sim = torch.einsum("cnd,nd->cn", rows[at], q)
        mass[c0:c0 + per_chunk] = ((sim - threshold).clamp_min(0) * torch.from_numpy(inside)).sum(1).numpy()
    return mass.reshape(B, width)


def refined_offsets(query: np.ndarray, refs: list[np.ndarray], centres: np.ndarray, band: int,
                    threshold: float) -> np.ndarray:
    """``(B,) int``: the offset within ``+-band`` frames of each ``centres[b]`` whose diagonal has the most
    :func:`band_mass` (the first of equals: the most negative)."""
    centres = np.asarray(centres, dtype=np.int64)
    if len(refs) == 0:
        return centres
    return centres + band_mass(query, refs, centres, band, threshold).argmax(axis=1) - band
