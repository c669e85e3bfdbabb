"""Copy-decision thresholds set from a corpus's own background (no labels).

The frame-level stage keeps frame pairs whose cosine is above a frame threshold and scores a segment by
the similarity above it, summed over its frames, times the compared period (seconds); a pair is a copy
when its best segment scores at least a copy threshold.  Both numbers live on the feature space's
similarity scale, which differs between extractors and between trainings of the same network (a
briefly trained ``selfsup`` network puts unrelated frames at 0.35 where the fully trained one puts them
at 0.12), so fixed thresholds do not transfer.

The background is what a frame meets in a video it was *not* copied into: the best similarity of a
frame with any frame of another video of the corpus.  Over a sample of videos, its median ``a`` and its
spread ``b`` (90th percentile minus median) set the scale::

    frame_threshold = a + frame_units * b
    copy_threshold  = copy_units * b          (seconds; the segment score is linear in the similarity)

Copies in the corpus barely move these statistics: a frame meets its copy in one video out of the
sample, and only in the copied part, so the median and the 90th percentile stay those of non-matching
videos until a large share of the corpus copies the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BACKGROUND_QUANTILE = 0.9  # the spread: this quantile of the background minus its median


@dataclass(frozen=True)
class Background:
    """How frames meet the frames of other videos: ``median`` and ``spread`` (90th percentile minus
    median) of the best cosine of a sampled frame in each other sampled video; ``pairs`` such values from
    ``videos`` videos (``rows`` sampled frames)."""

    median: float
    spread: float
    videos: int
    rows: int
    pairs: int


@dataclass(frozen=True)
class Thresholds:
    """The frame threshold (cosine) and the copy threshold (seconds of similarity above it)."""

    frame_threshold: float
    copy_threshold: float


def background_similarity(videos: list[np.ndarray], rows_per_video: int, seed: int = 0,
                          max_elements: int = 1 << 24) -> Background:
    """The :class:`Background` of ``videos`` (each ``(n_v, d)`` unit rows at the compared rate).

    Of every video, ``rows_per_video`` frames (evenly spaced, the first at a seeded phase) are compared
    with *every* frame of every other video, as the frame-level stage compares a query frame with a
    candidate's frames; the best cosine per (sampled frame, other video) is one background value.
    Matrix products over blocks of sampled frames (``max_elements`` similarities at a time)."""
    kept = [np.asarray(v, dtype=np.float32) for v in videos if len(v)]
    if len(kept) < 2:
        raise ValueError(f"the background needs frames of at least 2 videos, got {len(kept)}")
    rng = np.random.default_rng(seed)
    lengths = np.array([len(v) for v in kept])
    frames = np.concatenate(kept)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    picks = []
    for v, n in enumerate(lengths):  # a handful of indices per video (not a loop over frames)
        k = min(rows_per_video, int(n))
        phase = rng.uniform(0.0, n / k)
        picks.append(starts[v] + np.minimum((phase + np.arange(k) * (n / k)).astype(np.int64), n - 1))
    rows = np.concatenate(picks)
    owner = np.repeat(np.arange(len(kept)), [len(p) for p in picks])
    best = np.empty((len(rows), len(kept)), dtype=np.float32)
    per_block = max(1, max_elements // max(1, len(frames)))
    for r0 in range(0, len(rows), per_block):
        sim = frames[rows[r0:r0 + per_block]] @ frames.T  # (block, all frames)
        best[r0:r0 + per_block] = np.maximum.reduceat(sim, starts, axis=1)
    values = best[np.arange(len(kept))[None, :] != owner[:, None]]
    median = float(np.median(values))
    spread = float(np.quantile(values, BACKGROUND_QUANTILE)) - median
    return Background(median, max(spread, 1e-6), len(kept), len(rows), int(values.size))


def thresholds_from_background(bg: Background, frame_units: float, copy_units: float) -> Thresholds:
    """Thresholds at ``frame_units`` spreads above the background's median (frames) and ``copy_units``
    spreads (x seconds) of segment score."""
    return Thresholds(bg.median + frame_units * bg.spread, copy_units * bg.spread)
