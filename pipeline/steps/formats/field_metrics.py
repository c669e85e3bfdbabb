"""Score result files with the field's own protocols (VSC 2022, VCSL): one function per verb of
``python -m pipeline metrics``, each reading the files and returning a JSON-ready dict."""

from __future__ import annotations

import math
from pathlib import Path

from pipeline.datasets.readers import AnnotationError
from pipeline.metrics.vcsl import macro, micro, score_split
from pipeline.metrics.vsc2022 import candidate_pairs, matching_track, pairwise_micro_ap
from pipeline.store.results.segments import read_vsc_csv
from pipeline.store.results.vcsl import read_meta_pairs, read_vcsl_boxes, read_vcsl_split
from pipeline.store.results.vsc import normalised_boxes, read_candidates_csv


def finite_or_none(value: object) -> object:
    """JSON has no NaN: a value that is not a finite number becomes ``null`` (recursively)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value


def vsc_matching(gt: Path, pred: Path) -> dict:
    """The VSC 2022 matching track: segment micro-AP and pairwise micro-AP of ``pred`` (matches CSV)."""
    truth = normalised_boxes(read_vsc_csv(gt, ground_truth=True), str(gt))
    found = normalised_boxes(read_vsc_csv(pred), str(pred))
    res = matching_track(truth, found)
    return {"segment_ap": {"ap": res.segment_ap, "precision": res.segment_precision.tolist(),
                           "recall": res.segment_recall.tolist()},
            "pairwise_micro_ap": res.pairwise_micro_ap.as_json()}


def vsc_descriptor(gt: Path, candidates: Path) -> dict:
    """The VSC 2022 descriptor track's micro-AP of a ``candidates.csv`` against the ground truth."""
    truth = candidate_pairs(normalised_boxes(read_vsc_csv(gt, ground_truth=True), str(gt)))
    return pairwise_micro_ap(truth, read_candidates_csv(candidates)).as_json()


def vcsl(labels: Path, split: Path, pred: Path, meta: Path | None = None, ratio_pos_neg: float = 1.0) -> dict:
    """VCSL's micro (and, with ``meta``, macro) precision / recall / F1 and FAR / FRR of ``pred`` over the
    pairs of ``split``."""
    pairs = read_vcsl_split(split)
    scores = score_split(pairs, read_vcsl_boxes(labels), read_vcsl_boxes(pred))
    mi = micro(scores, ratio_pos_neg)
    out: dict = {"micro": {"precision": mi.precision, "recall": mi.recall, "f1": mi.f1, "far": mi.far,
                           "frr": mi.frr, "pairs": mi.pairs}}
    if meta is not None:
        in_split = set(pairs)
        sets = {n: ks for n, ks in read_meta_pairs(meta).items() if any(k in in_split for k in ks)}
        try:
            ma = macro(scores, sets)
        except KeyError as exc:
            raise AnnotationError(f"{meta}: {exc.args[0]} ({split.name})") from None
        out["macro"] = {"precision": ma.precision, "recall": ma.recall, "f1": ma.f1, "query_sets": ma.sets}
    return out
