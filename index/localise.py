"""Copy segments of one query's candidates, in seconds: the frame-level stage after re-ranking.

:func:`localise` sub-samples the 15-fps frame features (``step`` frames), runs the configured
localiser of :mod:`index.segments` over all candidates in memory-bounded groups (``max_elements``
floats of similarities and padded features at a time), and converts the segments to seconds from
each video's own timestamps, clipped to both videos' durations.  The ``offset`` method is the
TMK / CTE offset alone: runs of matching frames along it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from extractors.runtime.timebase import FPS
from index.segments import (
    FrameSegments,
    blocks,
    dtw_segments,
    hough_segments,
    seed_band,
    temporal_network_paths,
    top_matches,
)

METHODS = ("offset", "hv", "tn", "dtw")


@dataclass(frozen=True)
class LocaliserSettings:
    """``method`` (:data:`METHODS`); ``step``: frames of the 15-fps stream per compared frame; every
    other length in compared frames: ``band`` (offsets searched around the seed), ``max_gap``,
    ``min_length``, ``tn_max_step``."""

    method: str = "hv"
    step: int = 8
    threshold: float = 0.3
    band: int = 10
    max_gap: int = 4
    min_length: int = 2
    max_segments: int = 3
    max_overlap: float = 0.3
    tn_top_k: int = 5
    tn_max_step: int = 5
    contextualise: bool = False
    max_elements: int = 1 << 26

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown localiser {self.method!r} (one of {', '.join(METHODS)})")


@dataclass(frozen=True)
class CopySegment:
    """A copied segment: ``candidate`` (index in the candidate list), spans in seconds, score
    (similarity above the frame threshold summed over the matched frames, times the compared frames'
    period: ~seconds of close match)."""

    candidate: int
    query_start_s: float
    query_end_s: float
    ref_start_s: float
    ref_end_s: float
    score: float


@dataclass(frozen=True)
class SampledFrames:
    """One video's frames at the compared rate: ``features (n, d)`` (unit rows), their times
    ``times_s (n,)`` and the video's duration (s).  What the frame-level stage reads."""

    features: np.ndarray
    times_s: np.ndarray
    duration_s: float


def sample_frames(features: np.ndarray, times_s: np.ndarray, step: int) -> SampledFrames:
    """Every ``step``-th frame of a 15-fps stream (from the first), with the stream's duration."""
    t = np.asarray(times_s, dtype=np.float64)
    return SampledFrames(features[::step], t[::step], float(t[-1] + 1.0 / FPS) if len(t) else 0.0)


def localise(query: np.ndarray, query_times_s: np.ndarray, candidates: list[np.ndarray],
             candidate_times_s: list[np.ndarray], seed_offsets_s: np.ndarray,
             settings: LocaliserSettings) -> list[CopySegment]:
    """Segments of ``query (Nq, d)`` in every ``candidates[c] (Nc, d)`` (unit rows, 15-fps features with
    their timestamps); ``seed_offsets_s (C,)``: the re-ranking model's offsets ``t_query - t_ref``."""
    st = settings
    return localise_sampled(sample_frames(query, query_times_s, st.step),
                            [sample_frames(c, t, st.step) for c, t in zip(candidates, candidate_times_s, strict=True)],
                            seed_offsets_s, st)


def localise_sampled(query: SampledFrames, candidates: list[SampledFrames], seed_offsets_s: np.ndarray,
                     settings: LocaliserSettings) -> list[CopySegment]:
    """:func:`localise` on frames already at the compared rate (``settings.step`` frames of the 15-fps
    stream apart), e.g. from the segment-frame store."""
    st = settings
    if not candidates or len(query.features) == 0:
        return []
    q = query.features
    cs = [c.features for c in candidates]
    seeds = np.rint(np.asarray(seed_offsets_s, dtype=np.float64) * FPS / st.step).astype(np.int64)
    d = q.shape[1]
    if st.method == "tn":  # every similarity: padded full-matrix blocks
        tops = [top_matches(blk, st.tn_top_k) for blk in blocks(q, cs, st.max_elements)]
        parts = [temporal_network_paths(np.concatenate([t[0] for t in tops]), np.concatenate([t[1] for t in tops]),
                                        st.threshold, st.tn_max_step, st.min_length, st.max_segments,
                                        st.max_overlap)]  # one pass over the query's rows for every candidate
    else:  # the band around the seeds only, candidates grouped so their padded features fit the budget
        width = 2 * max(st.band, 1) + 1
        longest = max(1, max(len(c) for c in cs))
        # per candidate: its padded features and the band tables (similarities, DTW costs and moves)
        per_group = max(1, st.max_elements // max(1, longest * (d + 4 * width)))
        parts = []
        for c0 in range(0, len(cs), per_group):
            group, gs = cs[c0:c0 + per_group], seeds[c0:c0 + per_group]
            if st.method == "dtw":
                seg = dtw_segments(q, group, gs, st.band, st.threshold, st.max_gap, st.min_length, st.max_segments,
                                   st.contextualise, st.max_overlap)
            else:  # hv; offset: the seed diagonal alone (its neighbours still tolerate a drift)
                bb = seed_band(q, group, gs, max(st.band, 1))
                seg = hough_segments(bb, max(st.band, 1), st.threshold, st.max_gap, st.min_length, st.max_segments,
                                     st.max_overlap, search=st.band)
            parts.append(seg.shifted(c0))
    found = FrameSegments.concat(parts)
    return to_seconds(found, query, candidates, st.step)


def to_seconds(seg: FrameSegments, query: SampledFrames, candidates: list[SampledFrames],
               step: int) -> list[CopySegment]:
    """Compared-frame spans -> seconds on each video's own timestamps (end: the last matched frame's
    time plus one compared period), clipped to ``[0, duration]`` of both videos."""
    period = step / FPS
    tq = np.asarray(query.times_s, dtype=np.float64)
    out = []
    for k in range(len(seg)):  # one record per found segment (a handful per candidate)
        c = int(seg.pair[k])
        tr = np.asarray(candidates[c].times_s, dtype=np.float64)
        qi0, qi1 = int(seg.q0[k]), int(seg.q1[k]) - 1
        ri0, ri1 = int(seg.r0[k]), int(seg.r1[k]) - 1
        if qi0 >= len(tq) or ri0 >= len(tr) or ri0 < 0 or qi0 < 0:
            continue
        q0, q1 = tq[qi0], min(tq[min(qi1, len(tq) - 1)] + period, query.duration_s)
        r0, r1 = tr[ri0], min(tr[min(ri1, len(tr) - 1)] + period, candidates[c].duration_s)
        out.append(CopySegment(c, float(max(q0, 0.0)), float(q1), float(max(r0, 0.0)), float(r1),
                               float(seg.score[k]) * period))
    return out
