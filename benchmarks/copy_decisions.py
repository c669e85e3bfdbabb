"""Copy decisions at the default settings: fixed thresholds against thresholds calibrated per corpus.

    python benchmarks/copy_decisions.py --copy-root bench_copy --copy-root bench_copy_s11 --extractors selfsup,mvlad \
        --demo-root demo_run

For every corpus (a copy benchmark built by ``benchmarks/copy_benchmark.py``, with each extractor; the
demo built by ``python -m pipeline demo`` in ``--demo-root``), the pipeline's search and evaluation run
twice on the same features: with ``calibration.mode: none`` (the fixed ``segments.frame_threshold`` 0.2
and ``copy_threshold`` 0.75: the baseline) and with ``calibration.mode: background`` (the default:
thresholds from the corpus's own background, no label read).  Printed per corpus: the copy / no-copy
decision's precision, recall and F1 over unordered video pairs, the VSC 2022 segment micro-AP and the
VCSL F1 of the copies, the thresholds applied, and the best-F1 threshold the labels would have chosen
(not used by anything).  Features, networks and indexes are reused from the corpora's work directories.

The calibration's constants (``calibration.frame_units`` 0.5 and ``copy_units`` 4.75) are the fixed
thresholds re-expressed in the background units of the copy benchmark's ``selfsup`` features, where the
fixed ones were calibrated: every other row is a corpus or a feature space they were not set on.  A last
table puts the calibrated copy threshold in background spreads beside the highest non-copy and the weakest
copy of the candidate pairs (best segment score per pair; labels read only to print it), and another
compares alternative rules that set the threshold from the candidate pairs' own segment scores, each rule's
constant fitted on the first corpus and applied unchanged to the others.
"""

# ruff: noqa: E402  (the repository root goes on sys.path first: run as a script)
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import numpy as np

from pipeline.config.load import load_config
from pipeline.datasets.kinds import load_ground_truth
from pipeline.steps.build import build
from pipeline.store.layout import Layout
from pipeline.store.results.search import read_search_results

log = logging.getLogger("copy_decisions")
MODES = ("none", "background")


def copy_benchmark_overrides(root: Path, extractor: str) -> str:
    """The settings ``benchmarks/copy_benchmark.py`` runs the pipeline with (its float32 run)."""
    return (f"dataset.root={root};dataset.kind=vcdb;dataset.name=copybench-{extractor};"
            f"features.remove_black_bars=false;dataset.max_length_s=240;features.extractor={extractor};"
            f"features.weights=random;features.pca=auto;shards.size=16;search.top_k=20;search.keep=20;"
            f"work_dir={root / 'work'};stores.descriptors=float32;stores.segment_frames=none")


def judged(dataset: str, overrides: str, reports: Path, mode: str) -> dict:
    """Search and evaluate with ``calibration.mode`` ``mode``; the search model's report."""
    cfg = load_config(dataset, f"{overrides};calibration.mode={mode};reports_dir={reports / mode}")
    layout = Layout(cfg)
    build(layout, until="evaluate", models=[cfg.search.model], show_progress=False)
    report = json.loads((layout.report_dir(cfg.search.model) / "report.json").read_text())
    calibration = report.get("calibration") or {}
    rows = read_search_results(Path(report["search_results"]))
    gt = load_ground_truth(cfg.dataset, [v.id for v in layout.videos])
    truth = {frozenset((p.video_a, p.video_b)) for p in gt.pairs}
    return {**report["metrics"], "frame_threshold": calibration.get("frame_threshold", cfg.segments.frame_threshold),
            "model": cfg.search.model, "spread": (calibration.get("background") or {}).get("spread"),
            "segment_scores": report["curves"].get("segment_scores") or {},
            "candidates": Candidates([r.query for r in rows], [r.match for r in rows],
                                     np.array([r.segment_score for r in rows], float),
                                     np.array([frozenset((r.query, r.match)) in truth for r in rows]),
                                     len(truth), float(report["metrics"]["copy_threshold"]))}


class Candidates:
    """The search's candidate rows of one corpus: query ids, the unordered pair of each row, best segment
    score, whether the pair is a true copy (labels: for printing only), the number of true copy pairs and
    the applied threshold."""

    def __init__(self, queries: list[str], matches: list[str], scores: np.ndarray, true: np.ndarray,
                 n_true: int, threshold: float) -> None:
        self.queries, self.scores, self.true = np.array(queries), scores, true
        self.n_true, self.threshold = n_true, threshold
        self.pair = np.unique([f"{min(q, m)}|{max(q, m)}" for q, m in zip(queries, matches, strict=True)],
                              return_inverse=True)[1]

    def decisions(self, decided: np.ndarray) -> tuple[float, float, float]:
        """Precision, recall, F1 over unordered pairs, a pair decided when either of its rows is."""
        pair_decided = np.bincount(self.pair, decided.astype(float)) > 0
        pair_true = np.bincount(self.pair, self.true.astype(float)) > 0
        tp, fp = int((pair_decided & pair_true).sum()), int((pair_decided & ~pair_true).sum())
        p, r = (tp / (tp + fp) if tp + fp else 1.0), (tp / self.n_true if self.n_true else 1.0)
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _spread_units(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    a, b = np.quantile(x, [lo, hi])
    return (x - a) / max(float(b - a), 1e-9)


def _per_query(c: Candidates, lo: float, hi: float) -> np.ndarray:
    out = np.zeros_like(c.scores)
    for q in np.unique(c.queries):  # a loop over queries (a few dozen), not over candidates
        rows = c.queries == q
        out[rows] = _spread_units(c.scores[rows], lo, hi)
    return out


RULES = {  # a decision rule: a normalised score compared with a constant k (fitted on the first corpus)
    "global: (s - q50) / (q90 - q50) of all candidates": lambda c: _spread_units(c.scores, 0.5, 0.9),
    "global: (s - q50) / (q75 - q50) of all candidates": lambda c: _spread_units(c.scores, 0.5, 0.75),
    "global: s / q90 of all candidates": lambda c: c.scores / max(float(np.quantile(c.scores, 0.9)), 1e-9),
    "per query: (s - q50) / (q90 - q50) of its candidates": lambda c: _per_query(c, 0.5, 0.9),
    "per query: s / q75 of its candidates": lambda c: _per_query(c, 0.0, 0.75),
}
"""Alternatives to the frame-background rule that set the copy threshold from the candidate pairs' own
segment scores (most candidate pairs are not copies), as issue 27 item 1 suggests."""


def compare_rules(rows: list[dict]) -> None:
    """Print the decisions of the background rule (as applied) and of each of :data:`RULES`, its constant
    fitted (best F1, labels) on the first corpus and applied unchanged to the others."""
    cands = [(r["corpus"], r["candidates"]) for r in rows if r["mode"] == "background"]
    head = " | ".join(name for name, _ in cands)
    print(f"\n| decision rule (precision / recall / F1) | k | {head} |")
    print("|---|---:|" + "---:|" * len(cands))
    cells = [" / ".join(f"{v:.2f}" for v in c.decisions(c.scores >= c.threshold)) for _, c in cands]
    print(f"| frame background: 4.75 b (the default) | - | {' | '.join(cells)} |")
    for name, rule in RULES.items():
        fit = rule(cands[0][1])
        k = max(np.linspace(0.1, 12.0, 120), key=lambda k: cands[0][1].decisions(fit >= k)[2])
        cells = [" / ".join(f"{v:.2f}" for v in c.decisions(rule(c) >= k)) for _, c in cands]
        print(f"| {name} | {k:.1f} | {' | '.join(cells)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--copy-root", type=Path, action="append", default=[],
                    help="a copy benchmark's --out directory (repeatable)")
    ap.add_argument("--extractors", default="selfsup,mvlad")
    ap.add_argument("--demo-root", type=Path, help="where 'python -m pipeline demo' ran (demo_data/, work/)")
    ap.add_argument("--reports", type=Path, default=Path("copy_decisions_reports"))
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    runs: list[tuple[str, str, str, Path]] = []  # (label, dataset, overrides, reports)
    for root in args.copy_root:
        root = root.resolve()
        for ex in args.extractors.split(","):
            runs.append((f"{root.name} / {ex}", "folder", copy_benchmark_overrides(root, ex),
                         args.reports.resolve() / root.name / ex))
    if args.demo_root is not None:
        d = args.demo_root.resolve()
        runs.append(("demo / selfsup (150 steps)", "demo",
                     f"dataset.root={d / 'demo_data'};work_dir={d / 'work'}", args.reports.resolve() / "demo"))
    rows = []
    for label, dataset, ov, reports in runs:
        for mode in MODES:
            x = judged(dataset, ov, reports, mode)
            rows.append({"corpus": label, "mode": mode, **{k: x[k] for k in (
                "model", "frame_threshold", "copy_threshold", "copy_decision_precision", "copy_decision_recall",
                "copy_decision_F1", "VSC_segment_uAP", "VCSL_F1", "copy_threshold_best_F1", "segment_score_pair_AP",
                "spread", "segment_scores", "candidates")}})
            log.warning("%s, thresholds %s: precision %.3f recall %.3f", label, mode,
                        x["copy_decision_precision"], x["copy_decision_recall"])
    print("\n| corpus / features | thresholds | frame thr. | copy thr. (s) | decision precision | recall | F1 | "
          "VSC uAP | VCSL F1 | best-F1 copy thr. (labels) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        mode = "fixed" if r["mode"] == "none" else "calibrated"
        print(f"| {r['corpus']} | {mode} | {r['frame_threshold']:.3f} | {r['copy_threshold']:.3f} | "
              f"{r['copy_decision_precision']:.3f} | {r['copy_decision_recall']:.3f} | {r['copy_decision_F1']:.3f} | "
              f"{r['VSC_segment_uAP']:.3f} | {r['VCSL_F1']:.3f} | {r['copy_threshold_best_F1']:.3f} |")
    print("\n| corpus / features | decision F1 calibrated / fixed |")
    print("|---|---:|")
    for fixed, cal in zip(rows[0::2], rows[1::2], strict=True):
        ratio = cal["copy_decision_F1"] / fixed["copy_decision_F1"] if fixed["copy_decision_F1"] else float("inf")
        print(f"| {cal['corpus']} | {ratio:.2f}x |")
    print("\n| corpus / features | background spread b | highest non-copy | weakest copy | best-F1 threshold "
          "(labels) | calibrated threshold |  (segment scores in b: where the calibrated threshold lands)")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows[1::2]:
        b, scores = r["spread"], r["segment_scores"]
        copies, others = scores.get("copies") or [0.0], scores.get("non_copies") or [0.0]
        print(f"| {r['corpus']} | {b:.3f} | {max(others) / b:.2f} b | {min(copies) / b:.2f} b | "
              f"{r['copy_threshold_best_F1'] / b:.2f} b | {r['copy_threshold'] / b:.2f} b |")
    compare_rules(rows)
    if args.json:
        args.json.write_text(json.dumps([{k: v for k, v in r.items() if k != "candidates"} for r in rows], indent=1))


if __name__ == "__main__":
    main()
