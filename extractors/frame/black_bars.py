"""Letterbox / pillarbox removal before feature extraction (``features.remove_black_bars``).

Bars are the leading and trailing rows (columns) whose luma stays dark and flat
over a whole chunk of frames; the chunk is cropped to what is left, so every
frame of a chunk keeps one size (batched extraction).  Vectorised over frames.
"""

from __future__ import annotations

import numpy as np

from extractors.frame.base import luma

DARK = 24.0  # mean luma below which a line can be a bar (0-255)
FLAT = 6.0  # and standard deviation along the line below this
MAX_SHARE = 0.35  # never cut more than this share of the height (width) on one side


def bar_extent(frames: np.ndarray) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` sizes in pixels of the bars of ``(B, H, W, 3) uint8`` frames."""
    y = luma(frames)  # (B, H, W)
    rows_dark = (y.mean(axis=2) < DARK) & (y.std(axis=2) < FLAT)  # (B, H)
    cols_dark = (y.mean(axis=1) < DARK) & (y.std(axis=1) < FLAT)  # (B, W)
    rows, cols = rows_dark.all(axis=0), cols_dark.all(axis=0)  # a bar is dark in every frame

    def run(mask: np.ndarray) -> int:
        lim = int(len(mask) * MAX_SHARE)
        first_light = np.argmin(mask[:lim]) if not mask[:lim].all() else lim
        return int(first_light)

    return run(rows), run(rows[::-1]), run(cols), run(cols[::-1])


def crop_black_bars(frames: np.ndarray) -> np.ndarray:
    """``frames`` without their letterbox / pillarbox bars (unchanged when there are none)."""
    if len(frames) == 0:
        return frames
    t, b, left, r = bar_extent(frames)
    if not (t or b or left or r):
        return frames
    h, w = frames.shape[1:3]
    return np.ascontiguousarray(frames[:, t:h - b, left:w - r])
