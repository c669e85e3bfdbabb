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
fixed ones were calibrated: every other row is a corpus or a feature space they were not set on.
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
from pipeline.config.load import load_config
from pipeline.steps.build import build
from pipeline.store.layout import Layout

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
    return {**report["metrics"], "frame_threshold": (report.get("calibration") or {}).get(
        "frame_threshold", cfg.segments.frame_threshold), "model": cfg.search.model}


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
                "copy_decision_F1", "VSC_segment_uAP", "VCSL_F1", "copy_threshold_best_F1", "segment_score_pair_AP")}})
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
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
