"""Copy segments from frame similarity matrices (index/segments.py, index/localise.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from index.localise import LocaliserSettings, localise
from index.segments import FrameSegments, bridge_gaps, runs, suppress
from tests.conftest import noisy_copy, smooth_rows

METHODS = ["offset", "hv", "tn", "dtw"]


def corpus(rng):
    """A query (2 fps-like sampled at step 1) whose frames 40-99 are copied at 130-189 of ``ref``, plus an
    unrelated candidate."""
    ref = smooth_rows(rng, 260, 64)
    q = smooth_rows(rng, 160, 64)
    q[40:100] = noisy_copy(rng, ref[130:190], 0.3)
    return q, [ref, smooth_rows(rng, 200, 64)]


@pytest.mark.parametrize("method", METHODS)
def test_each_localiser_finds_the_copied_span_and_nothing_in_unrelated_material(rng, method):
    q, cands = corpus(rng)
    t = [np.arange(len(x)) / 15.0 for x in (q, *cands)]
    seeds = np.array([(40 - 130 + 1) / 15.0, 0.0])  # the temporal model's offsets (one frame off)
    st = LocaliserSettings(method=method, step=1, threshold=0.5, band=8, max_gap=3, min_length=5)
    found = localise(q, t[0], cands, t[1:], seeds, st)
    best = max((s for s in found if s.candidate == 0), key=lambda s: s.score)
    assert best.query_start_s == pytest.approx(40 / 15, abs=0.3)
    assert best.query_end_s == pytest.approx(100 / 15, abs=0.3)
    assert best.ref_start_s == pytest.approx(130 / 15, abs=0.3)
    assert best.ref_end_s == pytest.approx(190 / 15, abs=0.3)
    assert best.score > 1.0
    assert max((s.score for s in found if s.candidate == 1), default=0.0) < 0.05 * best.score


@pytest.mark.parametrize("method", ["hv", "dtw"])
def test_the_band_recovers_from_a_rough_seed_offset(rng, method):
    q, cands = corpus(rng)
    t = [np.arange(len(x)) / 15.0 for x in (q, *cands)]
    st = LocaliserSettings(method=method, step=1, threshold=0.5, band=8, max_gap=3, min_length=5)
    rough = localise(q, t[0], cands[:1], t[1:2], np.array([(40 - 130 + 6) / 15.0]), st)
    best = max(rough, key=lambda s: s.score)
    assert best.query_start_s - best.ref_start_s == pytest.approx((40 - 130) / 15.0, abs=1.5 / 15)
    assert best.query_end_s - best.query_start_s > 50 / 15


@pytest.mark.parametrize("method", ["hv", "tn"])
def test_two_copies_in_one_pair_are_two_segments(rng, method):
    ref = smooth_rows(rng, 300, 64)
    q = smooth_rows(rng, 200, 64)
    q[10:50] = noisy_copy(rng, ref[200:240], 0.3)
    q[120:170] = noisy_copy(rng, ref[20:70], 0.3)
    st = LocaliserSettings(method=method, step=1, threshold=0.5, band=200, max_gap=3, min_length=5)
    t = np.arange(300) / 15.0
    found = sorted(localise(q, t[:200], [ref], [t], np.array([0.0]), st), key=lambda s: -s.score)[:2]
    spans = sorted((round(s.query_start_s * 15), round(s.ref_start_s * 15)) for s in found)
    assert np.allclose(spans, [(10, 200), (120, 20)], atol=2)


def test_temporal_network_follows_a_copy_played_faster(rng):
    ref = smooth_rows(rng, 300, 64, width=16)
    q = smooth_rows(rng, 150, 64)
    j = np.round(100 + np.arange(60) * 1.25).astype(int)  # 60 query frames show 75 reference frames
    q[30:90] = noisy_copy(rng, ref[j], 0.2)
    st = LocaliserSettings(method="tn", step=1, threshold=0.5, max_gap=3, min_length=5, tn_max_step=3)
    t = np.arange(300) / 15.0
    best = max(localise(q, t[:150], [ref], [t], np.array([0.0]), st), key=lambda s: s.score)
    assert round(best.query_start_s * 15) == pytest.approx(30, abs=2)
    assert round(best.query_end_s * 15) == pytest.approx(90, abs=3)
    assert round(best.ref_end_s * 15) == pytest.approx(175, abs=4)


def test_spans_stay_inside_both_videos(rng):
    ref = smooth_rows(rng, 100, 32)
    q = noisy_copy(rng, ref[60:100], 0.2)  # the copy runs to the end of both videos
    t = np.arange(100) / 15.0
    for method in METHODS:
        found = localise(q, t[:40], [ref], [t], np.array([-4.0]),
                         LocaliserSettings(method=method, step=3, threshold=0.5, band=3, max_gap=1, min_length=2))
        assert found, method
        for s in found:
            assert 0 <= s.query_start_s < s.query_end_s <= 40 / 15 + 1e-9, (method, s)
            assert 0 <= s.ref_start_s < s.ref_end_s <= 100 / 15 + 1e-9, (method, s)


@pytest.mark.parametrize("method", METHODS)
def test_memory_bounded_groups_give_the_same_segments(rng, method):
    q, cands = corpus(rng)
    cands = cands * 3
    t = [np.arange(len(x)) / 15.0 for x in cands]
    seeds = np.tile([(40 - 130) / 15.0, 0.0], 3)
    st = LocaliserSettings(method=method, step=1, threshold=0.5, band=8, max_gap=3, min_length=5)
    whole = localise(q, t[0][:160], cands, t, seeds, st)
    small = localise(q, t[0][:160], cands, t, seeds, dataclasses.replace(st, max_elements=len(q) * 300))
    assert sorted(whole, key=repr) == sorted(small, key=repr)
    assert {s.candidate for s in whole if s.score > 1} == {0, 2, 4}


@pytest.mark.parametrize("method", METHODS)
def test_a_candidate_gets_the_same_segments_alone_as_among_others(rng, method):
    """Candidates of very different lengths (one shorter than TN's top_k) searched together give each
    the segments it gets alone: nothing leaks between candidates through padding or batching."""
    q, (ref, other) = corpus(rng)
    cands = [other[:3], ref, other, ref[100:220], other[:40]]
    t = [np.arange(len(x)) / 15.0 for x in cands]
    seeds = np.array([0.0, (40 - 130) / 15.0, 0.0, (40 - 30) / 15.0, 0.0])
    st = LocaliserSettings(method=method, step=1, threshold=0.2, band=8, max_gap=3, min_length=2, tn_top_k=5)
    together = localise(q, np.arange(len(q)) / 15.0, cands, t, seeds, st)
    for c in range(len(cands)):
        alone = localise(q, np.arange(len(q)) / 15.0, [cands[c]], [t[c]], seeds[c:c + 1], st)
        mine = sorted((dataclasses.replace(s, candidate=0) for s in together if s.candidate == c), key=repr)
        alone = sorted(alone, key=repr)  # the same spans; scores up to the float rounding of batched products
        assert [dataclasses.replace(s, score=0.0) for s in mine] == [dataclasses.replace(s, score=0.0) for s in alone]
        assert [s.score for s in mine] == pytest.approx([s.score for s in alone], rel=1e-5)
    assert {s.candidate for s in together if s.score > 1} == {1, 3}


def test_gaps_are_bridged_and_runs_found():
    m = np.array([[1, 0, 0, 1, 0, 0, 0, 1, 1, 0]], dtype=bool)
    assert bridge_gaps(m, 2).astype(int).tolist() == [[1, 1, 1, 1, 0, 0, 0, 1, 1, 0]]
    row, start, end = runs(bridge_gaps(m, 2))
    assert list(zip(row, start, end, strict=True)) == [(0, 0, 4), (0, 7, 9)]


def test_suppression_drops_boxes_inside_a_better_one_and_keeps_separate_ones():
    seg = FrameSegments(np.array([0, 0, 0, 1]), np.array([0, 2, 50, 0]), np.array([40, 10, 60, 5]),
                        np.array([0, 2, 10, 0]), np.array([40, 10, 20, 5]), np.array([9.0, 3.0, 2.0, 1.0]))
    kept = suppress(seg, max_overlap=0.3, max_segments=3)
    assert sorted(zip(kept.pair, kept.q0, strict=True)) == [(0, 0), (0, 50), (1, 0)]
    assert len(suppress(seg, 0.3, max_segments=1)) == 2  # the best of each pair
