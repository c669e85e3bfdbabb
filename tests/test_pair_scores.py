"""``pair_scores.csv``: the ranking behind a report's pair AP, written beside ``report.json``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.metrics.pair_level import ranked_ap
from pipeline.steps.report import write_report
from pipeline.store.results.pair_scores import FILE, read_pair_scores

RECORD = {"pairs": [["a,1", "s"], ["a,1", "x"], ["b", "s"], ["b", "x"]], "scores": [0.95, 0.5, 0.4, 0.45],
          "true": [True, False, True, False], "true_unreported": [["c \"3\"", "s"]], "n_pairs": 10}


def test_the_report_keeps_a_summary_and_the_csv_gives_the_ranking_back(tmp_path):
    """Names with commas and quotes survive; the ranking read back gives the report's pair AP."""
    write_report(tmp_path, "d", "m", {"metrics": {"pair_AP": 0.6}, "curves": {"pair_scores": RECORD}}, {})
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["curves"]["pair_scores"] == {"file": FILE, "n_pairs": 10, "reported": 4, "true": 3}
    assert (tmp_path / FILE).read_text().splitlines()[0] == "video_a,video_b,score,true"
    back = read_pair_scores(tmp_path, doc["curves"]["pair_scores"])
    assert back == RECORD
    s, y = np.array(back["scores"]), np.array(back["true"])
    n_true_unreported = len(back["true_unreported"])
    n_false_unreported = back["n_pairs"] - len(s) - n_true_unreported
    ap = ranked_ap(np.r_[s[y], np.zeros(n_true_unreported)], np.r_[s[~y], np.zeros(n_false_unreported)])
    assert ap == pytest.approx((1 + 2 / 4 + 3 / 10) / 3)


def test_a_file_that_is_not_a_ranking_is_refused(tmp_path):
    write_report(tmp_path, "d", "m", {"metrics": {}, "curves": {"pair_scores": RECORD}}, {})
    (tmp_path / FILE).write_text("something,else\n")
    summary = json.loads((tmp_path / "report.json").read_text())["curves"]["pair_scores"]
    with pytest.raises(ValueError, match="not a pair-scores file"):
        read_pair_scores(tmp_path, summary)
