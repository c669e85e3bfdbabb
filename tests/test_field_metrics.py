"""The field's own metrics (VSC 2022 both tracks, the VCSL protocol) through ``python -m pipeline metrics``.

The expected values were computed with the peers' own code on exactly these files when the tests were
written (``facebookresearch/vsc2022`` at its main branch: ``vsc.metrics.evaluate_matching_track`` and
``average_precision`` over ``CandidatePair.read_csv``; ``alipay/VCSL``: ``vcsl.metric.precision_recall``
per split pair as ``run_video_eval.py`` feeds it, then ``evaluate_micro`` and ``evaluate_macro``);
nothing of theirs is vendored. The cases cover ties, overlapping and split segments, pairs with no
prediction, predicted pairs outside the ground truth, integer ids, negatives and an unbalanced split.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.datasets.readers import AnnotationError
from pipeline.metrics.vsc2022 import CandidatePair, VSCInputError, format_video_id, pairwise_micro_ap
from pipeline.store.results.vsc import (
    VideoDescriptors,
    read_candidates_csv,
    read_vsc_descriptors,
    write_candidates_csv,
    write_vsc_descriptors,
)

ROOT = Path(__file__).resolve().parents[1]

VSC_GT = """query_id,ref_id,query_start,query_end,ref_start,ref_end
Q000001,R000001,0,10,5,15
Q000001,R000001,20,30,40,50
Q000002,R000002,0,20,0,20
Q000003,R000003,5,15,5,15
Q000005,R000005,0,30,60,90
"""
# integer ids (as a CSV of numbers); ties at 0.9 and 0.7; overlapping and split segments; Q3 never
# predicted; Q4-R4 and Q2-R1 are not copies
VSC_PRED = """query_id,ref_id,query_start,query_end,ref_start,ref_end,score
1,1,0,8,5,13,0.9
1,1,22,35,42,55,0.9
1,1,5,12,8,16,0.5
2,2,0,10,0,10,0.7
2,2,10,25,10,25,0.3
4,4,0,5,0,5,0.8
2,1,0,5,0,5,0.7
5,5,0,10,60,70,0.6
5,5,12,30,72,90,0.2
5,5,40,50,0,10,0.95
"""
VSC_EXPECTED = {"segment_ap": 0.48323379907562425, "pairwise_micro_ap": 0.65}

CANDIDATES = """query_id,ref_id,score
Q000001,R000001,0.9
Q000004,R000004,0.9
Q000002,R000002,0.8
Q000002,R000001,0.8
Q000006,R000006,0.8
Q000005,R000005,0.5
Q000007,R000003,0.4
Q000003,R000009,0.1
"""
DESCRIPTOR_EXPECTED = 0.35

# VCSL: positives have boxes in the label file ([q_start, r_start, q_end, r_end]); the split adds
# negatives (n1-m1, n2-m2, n3-m3); predictions: a false alarm on n1-m1, a missed positive (c-d),
# split and overlapping boxes, a box touching no ground truth
VCSL_LABELS = {
    "a-b": [[0, 0, 10, 10], [20, 30, 30, 40]],
    "c-d": [[5, 5, 25, 25]],
    "e-f": [[0, 10, 40, 50]],
    "g-h": [[10, 0, 20, 10]],
    "x-y": [[0, 0, 5, 5]],  # not in the split: ignored
}
VCSL_SPLIT = "query_id,reference_id\na,b\nc,d\ne,f\ng,h\nn1,m1\nn2,m2\nn3,m3\n"
VCSL_PRED = {
    "a-b": [[0, 0, 8, 8], [5, 5, 12, 12], [22, 32, 35, 45]],
    "e-f": [[0, 10, 20, 30], [25, 35, 45, 55]],
    "g-h": [[30, 30, 40, 40]],
    "n1-m1": [[0, 0, 10, 10]],
    "x-y": [[0, 0, 5, 5]],
}
VCSL_META = {"test": {"set1": ["a-b", "c-d"], "set2": ["e-f", "g-h"]},
             "train": {"other": ["p-q"]}}
VCSL_EXPECTED = {  # ratio_pos_neg 1 and 0.25 (four positives, three negatives)
    1.0: {"precision": 0.33203123038504556, "recall": 0.3939062201796894, "far": 0.2857142857142857,
          "frr": 0.2857142857142857},
    0.25: {"far": 0.17857142857142858, "frr": 0.7142857142857143},
    "macro": {"precision": 0.5820312303850456, "recall": 0.3939062201796894},
}


def run_metrics(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "pipeline", "metrics", *args], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))


def ap(value: float | dict) -> float:
    return value["ap"] if isinstance(value, dict) else value


def test_vsc_matching_track_reproduces_vsc2022(tmp_path):
    (tmp_path / "gt.csv").write_text(VSC_GT)
    (tmp_path / "pred.csv").write_text(VSC_PRED)
    res = run_metrics("vsc-matching", "--gt", str(tmp_path / "gt.csv"), "--pred", str(tmp_path / "pred.csv"))
    assert ap(res["segment_ap"]) == pytest.approx(VSC_EXPECTED["segment_ap"], abs=1e-9)
    assert ap(res["pairwise_micro_ap"]) == pytest.approx(VSC_EXPECTED["pairwise_micro_ap"], abs=1e-9)


def test_vsc_descriptor_track_reproduces_vsc2022(tmp_path):
    (tmp_path / "gt.csv").write_text(VSC_GT)
    (tmp_path / "candidates.csv").write_text(CANDIDATES)
    res = run_metrics("vsc-descriptor", "--gt", str(tmp_path / "gt.csv"), "--candidates",
                      str(tmp_path / "candidates.csv"))
    assert ap(res) == pytest.approx(DESCRIPTOR_EXPECTED, abs=1e-9)


def test_pairwise_micro_ap_is_not_the_all_pairs_ap():
    """Unreported pairs are misses, not pairs scored 0 among all pairs: one of two true pairs found
    first gives 0.5 (the all-pairs ranking would credit the second one too)."""
    gt = [CandidatePair("Q000001", "R000001"), CandidatePair("Q000002", "R000002")]
    assert pairwise_micro_ap(gt, [CandidatePair("Q000001", "R000001", 0.9)]).ap == pytest.approx(0.5)
    # ties enter together: a false pair tied with the true one halves its precision
    tied = [CandidatePair("Q000001", "R000001", 0.9), CandidatePair("Q000009", "R000009", 0.9)]
    assert pairwise_micro_ap(gt, tied).ap == pytest.approx(0.25)
    with pytest.raises(VSCInputError, match="twice"):
        pairwise_micro_ap(gt, tied + tied[:1])


def test_vsc_ids_are_normalised_and_the_side_checked(tmp_path):
    assert format_video_id(1, "Q") == format_video_id("1", "Q") == format_video_id("Q000001", "Q") == "Q000001"
    with pytest.raises(VSCInputError, match="does not start with 'Q'"):
        format_video_id("R000001", "Q")
    bad = tmp_path / "candidates.csv"
    bad.write_text("query_id,ref_id,score\nR000001,R000002,0.5\n")
    with pytest.raises(AnnotationError, match=r"candidates\.csv:2: query id 'R000001'"):
        read_candidates_csv(bad)
    (tmp_path / "gt.csv").write_text(VSC_GT)
    out = subprocess.run([sys.executable, "-m", "pipeline", "metrics", "vsc-descriptor", "--gt",
                          str(tmp_path / "gt.csv"), "--candidates", str(bad)], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and "candidates.csv:2" in out.stderr


def test_candidates_and_descriptor_files_round_trip(tmp_path):
    pairs = [CandidatePair("Q000002", "R000007", 0.25), CandidatePair("1", "3", 0.75)]
    got = read_candidates_csv(write_candidates_csv(tmp_path / "c.csv", pairs))
    assert got == [CandidatePair("Q000001", "R000003", 0.75), CandidatePair("Q000002", "R000007", 0.25)]
    rng = np.random.default_rng(0)
    vids = [VideoDescriptors("Q000001", np.arange(3.0), rng.normal(size=(3, 8)).astype(np.float32)),
            VideoDescriptors("2", np.c_[np.arange(2.0), np.arange(2.0) + 1], rng.normal(size=(2, 8)))]
    back = read_vsc_descriptors(write_vsc_descriptors(tmp_path / "q.npz", vids[:1], "Q"), "Q")
    assert back[0].video_id == "Q000001" and np.array_equal(back[0].features, vids[0].features)
    np.savez(tmp_path / "spans.npz", video_ids=np.array([2, 2]), timestamps=vids[1].timestamps,
             features=vids[1].features)
    (v,) = read_vsc_descriptors(tmp_path / "spans.npz", "R")
    assert v.video_id == "R000002" and v.timestamps.shape == (2, 2)
    # a pickled object array is refused, never loaded; split rows of one video are refused
    np.savez(tmp_path / "obj.npz", video_ids=np.array([object()], dtype=object), timestamps=np.zeros(1),
             features=np.zeros((1, 2)))
    with pytest.raises(AnnotationError, match=r"obj\.npz: not a plain \.npz"):
        read_vsc_descriptors(tmp_path / "obj.npz", "Q")
    np.savez(tmp_path / "split.npz", video_ids=np.array(["Q1", "Q2", "Q1"]), timestamps=np.zeros(3),
             features=np.zeros((3, 2)))
    with pytest.raises(AnnotationError, match="rows of video Q1 are not consecutive"):
        read_vsc_descriptors(tmp_path / "split.npz", "Q")
    (tmp_path / "short.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(AnnotationError, match=r"short\.npz: not a readable"):
        read_vsc_descriptors(tmp_path / "short.npz", "Q")


def test_vcsl_protocol_reproduces_vcsl_with_negatives_and_the_pos_neg_ratio(tmp_path):
    (tmp_path / "label_file.json").write_text(json.dumps(VCSL_LABELS))
    (tmp_path / "pair_file_test.csv").write_text(VCSL_SPLIT)
    (tmp_path / "pred.json").write_text(json.dumps(VCSL_PRED))
    (tmp_path / "meta_pairs.json").write_text(json.dumps(VCSL_META))
    args = ["vcsl", "--labels", str(tmp_path / "label_file.json"), "--split", str(tmp_path / "pair_file_test.csv"),
            "--pred", str(tmp_path / "pred.json")]
    res = run_metrics(*args, "--meta", str(tmp_path / "meta_pairs.json"))
    exp = VCSL_EXPECTED[1.0]
    for k in ("precision", "recall"):  # VCSL adds 1e-6 to its denominators and sums in float32
        assert res["micro"][k] == pytest.approx(exp[k], abs=1e-6)
    p, r = res["micro"]["precision"], res["micro"]["recall"]
    assert res["micro"]["f1"] == pytest.approx(2 * p * r / (p + r))
    assert res["micro"]["far"] == pytest.approx(exp["far"]) and res["micro"]["frr"] == pytest.approx(exp["frr"])
    for k in ("precision", "recall"):
        assert res["macro"][k] == pytest.approx(VCSL_EXPECTED["macro"][k], abs=1e-6)
    assert res["macro"]["query_sets"] == 2
    unbalanced = run_metrics(*args, "--ratio-pos-neg", "0.25")
    assert unbalanced["micro"]["far"] == pytest.approx(VCSL_EXPECTED[0.25]["far"])
    assert unbalanced["micro"]["frr"] == pytest.approx(VCSL_EXPECTED[0.25]["frr"])
    assert "macro" not in unbalanced


def test_vcsl_files_refuse_what_the_peer_scores_silently(tmp_path):
    from pipeline.store.results.vcsl import read_vcsl_boxes

    f = tmp_path / "pred.json"
    f.write_text(json.dumps({"a-b": [[10, 0, 5, 10]]}))  # reversed query span
    with pytest.raises(AnnotationError, match=r"pred\.json: a-b: box"):
        read_vcsl_boxes(f)
    f.write_text(json.dumps({"ab": [[0, 0, 5, 5]]}))
    with pytest.raises(AnnotationError, match="is not '<query>-<reference>'"):
        read_vcsl_boxes(f)
