"""Evaluators on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.metrics.copies import (
    Segment,
    max_f1,
    pr_auc,
    precision_recall_curve,
    segment_pr,
    spans_overlap,
    vcdb_decisions,
    vcdb_judge,
    vcdb_query_pairs,
)
from pipeline.metrics.events import evve_average_precision, evve_map
from pipeline.metrics.localisation import accuracy_below, localization_errors, map_localization
from pipeline.metrics.pair_level import pair_level, ranked_ap
from pipeline.metrics.statistics import paired_bootstrap_accuracy, paired_bootstrap_ap, sign_test


def test_evve_ap_removes_nulls_and_uses_the_trapezoid_rule():
    # ranked: positive, negative, null, positive; 2 positives in the database
    ap = evve_average_precision(np.array([1, 0, -1, 1]), 2)
    assert ap == pytest.approx((1 + 1 + 1 / 2 + 2 / 3) / 4)
    assert evve_average_precision(np.array([0, 0]), 0) == 0.0
    assert evve_average_precision(np.array([0, 0]), 3) == 0.0


def test_evve_map_pooled_vs_event_mean():
    scores = np.array([[0.9, 0.1, 0.5], [0.1, 0.9, 0.5], [0.2, 0.1, 0.9]])
    res = evve_map(scores, ["a", "a", "b"], ["a", "a", "b"], np.array([1, 0, 1]))
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
    err = localization_errors(3, pairs, pair_max, pair_off, gt_idx, gt_off)
    assert err[0] == pytest.approx(0.05)
    assert np.isinf(err[1]) and np.isinf(err[2])  # item 1's best pair is (1, 2)
    # the reversed GT order flips the sign of the target
    err = localization_errors(2, np.array([[1, 0]]), [1.0], [1.95], gt_idx, gt_off)
    assert err[0] == pytest.approx(0.05)
    acc = accuracy_below(np.array([0.05, 0.5, 5.0, np.inf]))
    assert acc == {0.1: 0.25, 1.0: 0.5, 10.0: 0.75}


def test_map_localization_divides_by_hits_found():
    pairs = np.array([[0, 1], [0, 2], [1, 2]])
    m, ap = map_localization(3, pairs, np.array([0.5, 0.9, 0.1]), np.array([[0, 1]]))
    # item 0: ranked (0,2) miss, (0,1) hit at position 1: p0 = 0/1, p1 = 1/2
    assert ap[0] == pytest.approx(0.25)
    assert ap[1] == pytest.approx(1.0)
    assert ap[2] == 0.0
    assert m == pytest.approx(1.25 / 3)


def test_spans_overlap_on_the_centisecond_grid():
    assert not spans_overlap(0.0, 1.0, 1.0, 2.0)  # half-open
    assert spans_overlap(0.0, 1.001, 1.0, 2.0)  # arange reaches 1.00
    assert spans_overlap(5.0, 25.0, 24.99, 30.0)
    assert not spans_overlap(3.0, 3.0, 0.0, 10.0)  # empty span


def test_vcdb_judging_and_both_emission_readings():
    segs = [Segment("t/a", 0, 10), Segment("t/b", 20, 30)]
    gt = np.array([[0, 1]])
    videos = ["t/a", "t/b"]
    rq, rv = vcdb_query_pairs(segs, videos)
    assert rq.tolist() == [0, 1] and rv.tolist() == [1, 0]
    ok, qside = vcdb_judge(segs, gt, videos, rq, rv, np.array([25.0, 40.0]))
    assert ok.tolist() == [True, False] and qside.tolist() == [True, True]
    p, lab = vcdb_decisions(np.array([0.8, 0.6]), ok, qside, "reference")
    assert p.tolist() == [0.8, 0.6, 0.0] and lab.tolist() == [1, 1, 0]
    p, lab = vcdb_decisions(np.array([0.8, 0.6]), ok, qside, "corrected")
    assert lab.tolist() == [1, 0, 1]
    ref = segment_pr(np.array([0.8, 0.6]), ok, qside, "reference")
    fixed = segment_pr(np.array([0.8, 0.6]), ok, qside, "corrected")
    assert ref.max_f1 > fixed.max_f1  # the emission bug inflates F1
    # corrected list (0.8, 1), (0.6, 0), (0, 1): best at threshold 0, P = 2/3, R = 1
    assert fixed.max_f1 == pytest.approx(0.8, abs=1e-6)
    assert ref.max_f1 == pytest.approx(1.0, abs=1e-6)


def test_precision_recall_curve_matches_sklearn_semantics():
    labels = np.array([1, 0, 1, 1, 0])
    probas = np.array([0.9, 0.8, 0.8, 0.3, 0.1])
    p, r, thr = precision_recall_curve(labels, probas)
    assert thr.tolist() == [0.1, 0.3, 0.8, 0.9]
    assert p.tolist() == pytest.approx([3 / 5, 3 / 4, 2 / 3, 1.0, 1.0])
    assert r.tolist() == pytest.approx([1.0, 1.0, 2 / 3, 1 / 3, 0.0])
    assert max_f1(p, r) == pytest.approx(2 * 0.75 / 1.75, abs=1e-6)
    area = pr_auc(p, r)
    expected = (1 / 3) * (1 + 1) / 2 + (1 / 3) * (1 + 2 / 3) / 2 + (1 / 3) * (2 / 3 + 3 / 4) / 2
    assert area == pytest.approx(expected)


def test_pair_level_ap_counts_every_unordered_pair():
    f = frozenset
    true = {f(("a", "b")), f(("c", "d"))}
    # perfect: both true pairs on top
    perfect = pair_level({f(("a", "b")): 0.9, f(("c", "d")): 0.8, f(("a", "c")): 0.1}, true, 4)
    assert perfect.ap == 1.0 and perfect.best_f1 == 1.0 and perfect.recall_reported == 1.0 and perfect.n_pairs == 6
    assert perfect.best_f1_threshold == 0.8  # the two true pairs are detected, (a, c) is not
    # one true pair never reported: it ranks after every other pair (6th of 6): (1/1 + 2/6) / 2
    missed = pair_level({f(("a", "b")): 0.9, f(("a", "c")): 0.5}, true, 4)
    assert missed.ap == pytest.approx((1 + 2 / 6) / 2) and missed.recall_reported == 0.5
    assert missed.best_f1 == pytest.approx(2 * 1 * 0.5 / 1.5) and missed.best_f1_threshold == 0.9
    # a constant score earns nothing over chance (ties: negatives first)
    flat = pair_level({k: 1.0 for k in map(f, [("a", "b"), ("a", "c"), ("b", "c")])}, {f(("a", "b"))}, 3)
    assert flat.ap == pytest.approx(1 / 3)


def test_ranked_ap_breaks_ties_pessimistically():
    # positives 0.9 and 0.5 among negatives 0.7, 0.5, 0.1: ranks 1 and 4 (the tied negative goes first)
    assert ranked_ap(np.array([0.5, 0.9]), np.array([0.1, 0.7, 0.5])) == pytest.approx((1 + 2 / 4) / 2)
    assert ranked_ap(np.array([1.0]), np.array([])) == 1.0
    assert np.isnan(ranked_ap(np.array([]), np.array([0.3])))


def test_sign_test_is_the_exact_binomial():
    assert sign_test(0, 0) == 1.0
    assert sign_test(2, 0) == pytest.approx(0.5)  # two wins of two: 2 * (1/4)
    assert sign_test(9, 1) == pytest.approx(2 * 11 / 1024)
    assert sign_test(1, 9) == sign_test(9, 1)


def test_paired_bootstrap_accuracy_sees_a_consistent_gain_and_not_a_coin_flip():
    rng = np.random.default_rng(1)
    a = rng.random(60) < 0.5
    better = a | (rng.random(60) < 0.6)  # B right wherever A is, and on about 60 % of the rest
    d = paired_bootstrap_accuracy([(a[:30], better[:30]), (a[30:], better[30:])], [30, 30])
    assert d.difference == pytest.approx(better.mean() - a.mean())
    assert 0 < d.low <= d.difference <= d.high and d.losses == 0 and d.p_sign < 0.001
    # the same model against itself with the outcomes shuffled: the interval straddles zero
    same = paired_bootstrap_accuracy([(a, rng.permutation(a))], [1])
    assert same.low < 0 < same.high and same.p_sign > 0.05
    # fold weights: a fold of weight 0 does not count
    w = paired_bootstrap_accuracy([(a[:30], better[:30]), (a[30:], a[30:])], [1, 0])
    assert w.difference == pytest.approx(better[:30].mean() - a[:30].mean())


def test_paired_bootstrap_ap_pairs_the_models_on_the_same_pairs():
    rng = np.random.default_rng(2)
    y = np.r_[np.ones(20, bool), np.zeros(200, bool)]
    noise = rng.normal(size=220)
    a = noise + 1.0 * y
    b = noise + 3.0 * y  # the same noise, a clearer separation: always at least as good
    d = paired_bootstrap_ap([(a, b, y)], [1])
    assert d.difference == pytest.approx(ranked_ap(b[y], b[~y]) - ranked_ap(a[y], a[~y]))
    assert d.difference > 0 and d.low > 0
    tie = paired_bootstrap_ap([(a, a.copy(), y)], [1])
    assert tie.difference == 0 and tie.low == 0 and tie.high == 0


def test_offsets_are_judged_on_every_found_pair_and_on_the_detected_ones():
    from index.rerank import Match
    from pipeline.datasets.ground_truth import GroundTruth
    from pipeline.datasets.readers import CopyPair
    from pipeline.steps.protocols import pair_level_metrics

    # a copy of s with two excerpts (offsets 10 s and -5 s), and a weak true pair (c2, s) with a wrong offset
    gt = GroundTruth(kind="vcdb", pairs=[CopyPair("c1", "s", 12, 20, 2, 10), CopyPair("c1", "s", 30, 40, 35, 45),
                                         CopyPair("c2", "s", 0, 5, 0, 5)])
    rows = [Match("c1", "s", 0.9, -5.3, 1), Match("s", "c2", 0.2, 3.0, 1), Match("c1", "x", 0.5, 0.0, 1),
            Match("c2", "x", 0.4, 0.0, 1), Match("s", "x", 0.3, 0.0, 1)]
    m, _ = pair_level_metrics(gt, rows, n_videos=4)
    assert m["found_pairs_offset_within_1s"] == 0.5  # c1: within 0.3 s of its second excerpt; c2: 3 s off
    # the best F1 is at 0.9: only c1 is detected
    assert m["detected_pairs"] == 1 and m["detected_pairs_offset_within_1s"] == 1.0
    assert m["detected_pairs_offset_within_0.1s"] == 0.0


def test_the_report_keeps_the_ranking_behind_pair_ap():
    """The scores of every reported pair, the true pairs never reported and the pair count reproduce the
    report's pair AP (the benchmarks' paired bootstrap reads them)."""
    from index.rerank import Match
    from pipeline.datasets.ground_truth import GroundTruth
    from pipeline.datasets.readers import CopyPair
    from pipeline.steps.protocols import evaluate_pairs

    gt = GroundTruth(kind="vcdb", pairs=[CopyPair("c1", "s", 12, 20, 2, 10), CopyPair("c2", "s", 0, 5, 0, 5),
                                         CopyPair("c3", "s", 0, 5, 0, 5)])
    rows = [Match("c1", "s", 0.9, 10.0, 1), Match("s", "c1", 0.95, -10.0, 1), Match("c1", "x", 0.5, 0.0, 2),
            Match("c2", "s", 0.4, 0.0, 1), Match("c2", "x", 0.45, 0.0, 1)]
    out = evaluate_pairs(gt, rows, {}, n_videos=5)
    rec = out["curves"]["pair_scores"]
    assert rec["pairs"] == [["c1", "s"], ["c1", "x"], ["c2", "s"], ["c2", "x"]]
    assert rec["scores"] == [0.95, 0.5, 0.4, 0.45] and rec["true"] == [True, False, True, False]
    assert rec["true_unreported"] == [["c3", "s"]] and rec["n_pairs"] == 10
    s, y = np.array(rec["scores"]), np.array(rec["true"])
    unreported_false = rec["n_pairs"] - len(s) - len(rec["true_unreported"])
    ap = ranked_ap(np.r_[s[y], np.zeros(len(rec["true_unreported"]))], np.r_[s[~y], np.zeros(unreported_false)])
    assert ap == pytest.approx(out["metrics"]["pair_AP"]) and ap == pytest.approx((1 + 2 / 4 + 3 / 10) / 3)
