"""The ranking behind a report's pair-level AP: ``pair_scores.csv`` beside ``report.json``.

One row per unordered pair of videos that was reported or is true, names sorted:
``video_a,video_b,score,true``.  ``score`` is empty for a true pair that was never reported (it ranks
last, with score 0).  Every other pair of the evaluated videos was neither reported nor true: false,
score 0.  ``report.json`` keeps a summary under ``curves.pair_scores``: the file's name, ``n_pairs``
(all unordered pairs of the evaluated videos), ``reported`` and ``true``.  A CSV keeps ``report.json``
small on large corpora (tens of thousands of reported pairs) and opens in any spreadsheet.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from pipeline.core.atomic import atomic_write_text
from pipeline.core.hdf5 import ArtifactError

FILE = "pair_scores.csv"
HEADER = ("video_a", "video_b", "score", "true")


def write_pair_scores(directory: str | os.PathLike, record: dict) -> dict:
    """Write ``record`` (``pairs``, ``scores``, ``true``, ``true_unreported``, ``n_pairs``, as made by
    ``pipeline.steps.evaluate.pair_score_record``) to ``directory/pair_scores.csv``; returns the summary that
    ``report.json`` keeps in its place."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    for (a, b), score, true in zip(record["pairs"], record["scores"], record["true"], strict=True):
        w.writerow((a, b, repr(float(score)), int(bool(true))))
    for a, b in record["true_unreported"]:
        w.writerow((a, b, "", 1))
    atomic_write_text(Path(directory) / FILE, buf.getvalue())
    return {"file": FILE, "n_pairs": int(record["n_pairs"]), "reported": len(record["pairs"]),
            "true": int(sum(map(bool, record["true"]))) + len(record["true_unreported"])}


def read_pair_scores(directory: str | os.PathLike, summary: dict) -> dict:
    """The record :func:`write_pair_scores` wrote in ``directory``; ``summary``: what it returned (the
    report's ``curves.pair_scores``)."""
    d = Path(directory)
    with (d / FILE).open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(rows[0]) != HEADER:
        raise ArtifactError(f"{d / FILE}: not a pair-scores file (expected the header {','.join(HEADER)})")
    out: dict = {"pairs": [], "scores": [], "true": [], "true_unreported": [], "n_pairs": int(summary["n_pairs"])}
    for a, b, score, true in rows[1:]:
        if score == "":
            out["true_unreported"].append([a, b])
        else:
            out["pairs"].append([a, b])
            out["scores"].append(float(score))
            out["true"].append(true == "1")
    return out
