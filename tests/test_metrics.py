"""Evaluators on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import metrics
from pipeline.metrics import Segment


def test_evve_ap_removes_nulls_and_uses_the_trapezoid_rule():
    # ranked: positive, negative, null, positive; 2 positives in the database
    ap = metrics.evve_average_precision(np.array([1, 0, -1, 1]), 2)
    assert ap == pytest.approx((1 + 1 + 1 / 2 + 2 / 3) / 4)
    assert metrics.evve_average_precision(np.array([0, 0]), 0) == 0.0
    assert metrics.evve_average_precision(np.array([0, 0]), 3) == 0.0


def test_evve_map_pooled_vs_event_mean():
    scores = np.array([[0.9, 0.1, 0.5], [0.1, 0.9, 0.5], [0.2, 0.1, 0.9]])
    res = metrics.evve_map(scores, ["a", "a", "b"], ["a", "a", "b"], np.array([1, 0, 1]))
    # query 1 ranks its only positive third: p0 = 0/2, p1 = 1/3
    assert res.ap_per_query.tolist() == pytest.approx([1.0, 1 / 6, 1.0])
    assert res.map_pooled == pytest.approx((1 + 1 / 6 + 1) / 3)
    assert res.map_event_mean == pytest.approx(((1 + 1 / 6) / 2 + 1) / 2)


def test_localization_errors_sign_and_misses():
    # items 0,1 overlap with start0 - start1 = 2 s; item 2 overlaps nothing.
    gt_idx, gt_off = np.array([[0, 1]]), np.array([2.0])
    pairs = np.array([[0, 1], [0, 2], [1, 2]])
    pair_max = np.array([0.9, 0.1, 0.95])
    pair_off = np.array([-1.95, 0.0, 5.0])  # (0,1) peaks at t0 - t1 = -2 s
    err = metrics.localization_errors(3, pairs, pair_max, pair_off, gt_idx, gt_off)
    assert err[0] == pytest.approx(0.05)
    assert np.isinf(err[1]) and np.isinf(err[2])  # item 1's best pair is (1, 2)
    # the reversed GT order flips the sign of the target
    err = metrics.localization_errors(2, np.array([[1, 0]]), [1.0], [1.95], gt_idx, gt_off)
    assert err[0] == pytest.approx(0.05)
    acc = metrics.accuracy_below(np.array([0.05, 0.5, 5.0, np.inf]))
    assert acc == {0.1: 0.25, 1.0: 0.5, 10.0: 0.75}


def test_map_localization_divides_by_hits_found():
    pairs = np.array([[0, 1], [0, 2], [1, 2]])
    m, ap = metrics.map_localization(3, pairs, np.array([0.5, 0.9, 0.1]), np.array([[0, 1]]))
    # item 0: ranked (0,2) miss, (0,1) hit at position 1: p0 = 0/1, p1 = 1/2
    assert ap[0] == pytest.approx(0.25)
    assert ap[1] == pytest.approx(1.0)
    assert ap[2] == 0.0
    assert m == pytest.approx(1.25 / 3)


def test_spans_overlap_on_the_centisecond_grid():
    assert not metrics.spans_overlap(0.0, 1.0, 1.0, 2.0)  # half-open
    assert metrics.spans_overlap(0.0, 1.001, 1.0, 2.0)  # arange reaches 1.00
    assert metrics.spans_overlap(5.0, 25.0, 24.99, 30.0)
    assert not metrics.spans_overlap(3.0, 3.0, 0.0, 10.0)  # empty span


def test_vcdb_judging_and_both_emission_readings():
    segs = [Segment("t/a", 0, 10), Segment("t/b", 20, 30)]
    gt = np.array([[0, 1]])
    videos = ["t/a", "t/b"]
    rq, rv = metrics.vcdb_query_pairs(segs, videos)
    assert rq.tolist() == [0, 1] and rv.tolist() == [1, 0]
    ok, qside = metrics.vcdb_judge(segs, gt, videos, rq, rv, np.array([25.0, 40.0]))
    assert ok.tolist() == [True, False] and qside.tolist() == [True, True]
    p, lab = metrics.vcdb_decisions(np.array([0.8, 0.6]), ok, qside, "reference")
    assert p.tolist() == [0.8, 0.6, 0.0] and lab.tolist() == [1, 1, 0]
    p, lab = metrics.vcdb_decisions(np.array([0.8, 0.6]), ok, qside, "corrected")
    assert lab.tolist() == [1, 0, 1]
    ref = metrics.segment_pr(np.array([0.8, 0.6]), ok, qside, "reference")
    fixed = metrics.segment_pr(np.array([0.8, 0.6]), ok, qside, "corrected")
    assert ref.max_f1 > fixed.max_f1  # the emission bug inflates F1
    # corrected list (0.8, 1), (0.6, 0), (0, 1): best at threshold 0, P = 2/3, R = 1
    assert fixed.max_f1 == pytest.approx(0.8, abs=1e-6)
    assert ref.max_f1 == pytest.approx(1.0, abs=1e-6)


def test_precision_recall_curve_matches_sklearn_semantics():
    labels = np.array([1, 0, 1, 1, 0])
    probas = np.array([0.9, 0.8, 0.8, 0.3, 0.1])
    p, r, thr = metrics.precision_recall_curve(labels, probas)
    assert thr.tolist() == [0.1, 0.3, 0.8, 0.9]
    assert p.tolist() == pytest.approx([3 / 5, 3 / 4, 2 / 3, 1.0, 1.0])
    assert r.tolist() == pytest.approx([1.0, 1.0, 2 / 3, 1 / 3, 0.0])
    assert metrics.max_f1(p, r) == pytest.approx(2 * 0.75 / 1.75, abs=1e-6)
    area = metrics.pr_auc(p, r)
    expected = (1 / 3) * (1 + 1) / 2 + (1 / 3) * (1 + 2 / 3) / 2 + (1 / 3) * (2 / 3 + 3 / 4) / 2
    assert area == pytest.approx(expected)


def test_pair_level_ap_counts_every_unordered_pair():
    f = frozenset
    true = {f(("a", "b")), f(("c", "d"))}
    # perfect: both true pairs on top
    perfect = metrics.pair_level({f(("a", "b")): 0.9, f(("c", "d")): 0.8, f(("a", "c")): 0.1}, true, 4)
    assert perfect.ap == 1.0 and perfect.best_f1 == 1.0 and perfect.recall_reported == 1.0 and perfect.n_pairs == 6
    assert perfect.best_f1_threshold == 0.8  # the two true pairs are detected, (a, c) is not
    # one true pair never reported: it ranks after every other pair (6th of 6): (1/1 + 2/6) / 2
    missed = metrics.pair_level({f(("a", "b")): 0.9, f(("a", "c")): 0.5}, true, 4)
    assert missed.ap == pytest.approx((1 + 2 / 6) / 2) and missed.recall_reported == 0.5
    assert missed.best_f1 == pytest.approx(2 * 1 * 0.5 / 1.5) and missed.best_f1_threshold == 0.9
    # a constant score earns nothing over chance (ties: negatives first)
    flat = metrics.pair_level({k: 1.0 for k in map(f, [("a", "b"), ("a", "c"), ("b", "c")])}, {f(("a", "b"))}, 3)
    assert flat.ap == pytest.approx(1 / 3)


def test_offsets_are_judged_on_every_found_pair_and_on_the_detected_ones():
    from index.search import Match
    from pipeline.corpus import GroundTruth
    from pipeline.datasets import CopyPair
    from pipeline.evaluate import pair_level_metrics

    # a copy of s with two excerpts (offsets 10 s and -5 s), and a weak true pair (c2, s) with a wrong offset
    gt = GroundTruth(kind="vcdb", pairs=[CopyPair("c1", "s", 12, 20, 2, 10), CopyPair("c1", "s", 30, 40, 35, 45),
                                         CopyPair("c2", "s", 0, 5, 0, 5)])
    rows = [Match("c1", "s", 0.9, -5.3, 1), Match("s", "c2", 0.2, 3.0, 1), Match("c1", "x", 0.5, 0.0, 1),
            Match("c2", "x", 0.4, 0.0, 1), Match("s", "x", 0.3, 0.0, 1)]
    m = pair_level_metrics(gt, rows, n_videos=4)
    assert m["found_pairs_offset_within_1s"] == 0.5  # c1: within 0.3 s of its second excerpt; c2: 3 s off
    # the best F1 is at 0.9: only c1 is detected
    assert m["detected_pairs"] == 1 and m["detected_pairs_offset_within_1s"] == 1.0
    assert m["detected_pairs_offset_within_0.1s"] == 0.0
