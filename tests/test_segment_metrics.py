"""VSC 2022 and VCSL segment metrics against hand-computed cases; their file formats."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pipeline.datasets.readers import AnnotationError, parse_vcdb_json
from pipeline.metrics.segments import Box, union_length, vcsl_metrics, vcsl_pair, vsc_micro_ap
from pipeline.store.results.segments import read_vsc_csv, vsc_copy_pairs, write_vcsl_json, write_vsc_csv


def test_union_length_merges_overlaps():
    assert union_length(np.array([0.0, 2, 10]), np.array([3.0, 5, 11])) == 6.0
    assert union_length(np.array([]), np.array([])) == 0.0


GT = [Box("q", "r", 4, 14, 10, 18)]


def test_vsc_perfect_prediction_scores_one():
    assert vsc_micro_ap(GT, [Box("q", "r", 4, 14, 10, 18, 1.0)]).ap == pytest.approx(1.0)


def test_vsc_half_the_copy_found():
    # query axis: 5 of 10 s, reference axis: 4 of 8 s, all of it correct -> R = sqrt(0.5 * 0.5), P = 1
    assert vsc_micro_ap(GT, [Box("q", "r", 4, 9, 10, 14, 1.0)]).ap == pytest.approx(0.5)


def test_vsc_a_wrong_prediction_ranked_first_costs_precision():
    preds = [Box("q", "r", 20, 30, 20, 30, 2.0), Box("q", "r", 4, 14, 10, 18, 1.0)]
    # after both: intersections 10 (q) and 8 (r); predicted lengths 20 and 18
    assert vsc_micro_ap(GT, preds).ap == pytest.approx(math.sqrt(10 / 20 * 8 / 18))
    # ranked last instead, it costs nothing
    preds[0] = Box("q", "r", 20, 30, 20, 30, 0.5)
    assert vsc_micro_ap(GT, preds).ap == pytest.approx(1.0)


def test_vsc_predictions_on_other_pairs_are_false_positives():
    preds = [Box("q", "x", 4, 14, 10, 18, 2.0), Box("q", "r", 4, 14, 10, 18, 1.0)]
    assert vsc_micro_ap(GT, preds).ap == pytest.approx(math.sqrt(10 / 20 * 8 / 16))


def test_vcsl_pair_precision_and_recall():
    pr = vcsl_pair(np.array([[0, 10, 0, 10]]), np.array([[5, 15, 5, 15]]))
    assert (pr.precision, pr.recall) == (pytest.approx(0.25), pytest.approx(0.25))
    # two predictions covering one ground truth box: precision 1, recall 1 on the covered parts
    pr = vcsl_pair(np.array([[0, 5, 0, 5], [5, 10, 5, 10]]), np.array([[0, 10, 0, 10]]))
    assert (pr.precision, pr.recall) == (pytest.approx(1.0), pytest.approx(1.0))
    # boxes that overlap on one axis only do not count
    pr = vcsl_pair(np.array([[0, 10, 50, 60]]), np.array([[0, 10, 0, 10]]))
    assert (pr.precision, pr.recall) == (0.0, 0.0)


def test_vcsl_averages_over_pairs_and_counts_misses_and_false_alarms():
    gt = [Box("a", "b", 0, 10, 0, 10), Box("c", "d", 0, 10, 0, 10)]
    preds = [Box("a", "b", 0, 10, 0, 10), Box("e", "f", 0, 5, 0, 5)]
    r = vcsl_metrics(gt, preds)
    # precision over the 2 predicted pairs (1 and 0), recall over the 2 annotated pairs (1 and 0)
    assert (r.precision, r.recall, r.f1) == (0.5, 0.5, 0.5)
    assert (r.false_rejection, r.false_alarm, r.pairs) == (0.5, 0.5, 3)


def test_vsc_csv_round_trip_and_errors(tmp_path):
    boxes = [Box("Q1", "R7", 1.5, 9.25, 0.0, 7.75, 0.9), Box("Q2", "R1", 0, 1, 2, 3, 0.1)]
    path = write_vsc_csv(tmp_path / "matches.csv", boxes)
    assert path.read_text().splitlines()[0] == "query_id,ref_id,query_start,query_end,ref_start,ref_end,score"
    assert read_vsc_csv(path) == boxes
    gt = tmp_path / "gt.csv"
    gt.write_text("query_id,ref_id,query_start,query_end,ref_start,ref_end\nQ1,R7,1,9,0,8\n")
    pairs = vsc_copy_pairs(gt)
    assert (pairs[0].video_a, pairs[0].video_b, pairs[0].a_end_s, pairs[0].b_end_s) == ("Q1", "R7", 9.0, 8.0)
    bad = tmp_path / "bad.csv"
    bad.write_text("query_id,ref_id,query_start,query_end,ref_start,ref_end,score\nQ1,R7,5,2,0,8,1\n")
    with pytest.raises(AnnotationError, match=r"bad.csv:2: spans must be"):
        read_vsc_csv(bad)
    with pytest.raises(AnnotationError, match=r"gt.csv:1: missing column\(s\) score"):
        read_vsc_csv(gt)
    for absurd in ("1e7", "1e300"):  # the 10^6 s bound of every annotation applies to VSC files too
        gt.write_text(f"query_id,ref_id,query_start,query_end,ref_start,ref_end\nQ1,R7,1,{absurd},0,8\n")
        with pytest.raises(AnnotationError, match=r"gt.csv:2: query span end .* is outside \[0, 1e\+06\] s"):
            vsc_copy_pairs(gt)


def test_vcsl_prediction_json_reads_back_as_ground_truth(tmp_path):
    path = write_vcsl_json(tmp_path / "pred.json", [Box("q1", "r2", 1.0, 4.0, 11.0, 14.0, 0.7)])
    assert json.loads(path.read_text()) == {"q1-r2": [[1.0, 11.0, 4.0, 14.0]]}
    (p,) = parse_vcdb_json(path)
    assert (p.video_a, p.video_b, p.a_begin_s, p.a_end_s, p.b_begin_s, p.b_end_s) == ("q1", "r2", 1, 4, 11, 14)


def test_a_vsc_dataset_reads_its_ground_truth_onto_corpus_ids(tmp_path):
    from pipeline.config.load import load_config
    from pipeline.config.schema import ConfigError
    from pipeline.datasets.kinds import load_ground_truth

    (tmp_path / "gt.csv").write_text("query_id,ref_id,query_start,query_end,ref_start,ref_end\n"
                                     "Q100,R200,1.5,9,0,7.5\nQ100,R999,0,1,0,1\n")
    cfg = load_config("folder", f"dataset.root={tmp_path};dataset.kind=vsc;dataset.gt_file=gt.csv")
    gt = load_ground_truth(cfg.dataset, ["queries/Q100", "refs/R200"])
    assert [(p.video_a, p.video_b, p.a_begin_s, p.b_end_s) for p in gt.pairs] == [("queries/Q100", "refs/R200",
                                                                                   1.5, 7.5)]
    with pytest.raises(ConfigError, match="gt_file must name the VSC 2022"):
        load_ground_truth(load_config("folder", f"dataset.root={tmp_path};dataset.kind=vsc").dataset, [])
