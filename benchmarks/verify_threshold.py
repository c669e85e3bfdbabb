"""The verification's frame threshold on the corpus's background scale against the fixed one.

    python benchmarks/verify_threshold.py --root bench_copy:mvlad --root bench_ffmpeg:mvlad --root bench_ffmpeg:selfsup

``search.verify: diagonal`` re-scores the kept candidates by the best diagonal of their frame similarity,
each frame pair voting with its cosine above a threshold.  That threshold was a fixed cosine (0.2, set on
the ``selfsup`` features); under ``calibration.mode: background`` it is now the corpus's background median
plus ``calibration.verify_units`` spreads.  For each corpus built by ``benchmarks/copy_benchmark.py`` (its
settings, ``root:extractor``), the search model (``tmk_lamv``) without the verification, with it at the
fixed 0.2 (expressed in that corpus's units) and at several ``verify_units``; pair AP, best F1 and the
detected copies' offsets within 1 s, from the pipeline's own reports.  Labels are read only to score.
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
sys.path.insert(0, str(ROOT / "benchmarks"))
from copy_decisions import copy_benchmark_overrides

from pipeline.config.load import load_config
from pipeline.steps.build import build
from pipeline.store.fitted.thresholds import read_thresholds
from pipeline.store.layout import Layout

MODEL = "tmk_lamv"
FIXED = 0.2  # the verification threshold before it followed the background


def report(overrides: str, reports: Path) -> dict:
    layout = Layout(load_config("folder", f"{overrides};reports_dir={reports}"))
    build(layout, until="evaluate", models=[MODEL], show_progress=False)
    return json.loads((layout.report_dir(MODEL) / "report.json").read_text())["metrics"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", action="append", required=True, help="CORPUS_DIR:EXTRACTOR, repeatable")
    ap.add_argument("--units", default="-1,0,0.5,1", help="calibration.verify_units tried")
    ap.add_argument("--reports", type=Path, default=Path("verify_threshold_reports"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print("\n| corpus | extractor | background median / spread | verification | threshold | pair AP | best F1 | "
          "detected copies within 1 s |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for spec in args.root:
        root, extractor = spec.rsplit(":", 1)
        root = Path(root).resolve()
        ov = f"{copy_benchmark_overrides(root, extractor)};search.score_normalisation=none"
        base = Layout(load_config("folder", ov))
        build(base, until="search", models=[MODEL], show_progress=False)  # writes the thresholds
        bg = read_thresholds(base.thresholds_path).background
        runs = [("none", float("nan"), f"{ov};search.verify=none")]
        fixed_units = (FIXED - bg.median) / bg.spread
        runs.append((f"fixed {FIXED:g} (= {fixed_units:.2f} units)", FIXED,
                     f"{ov};search.verify=diagonal;calibration.verify_units={fixed_units:.6f}"))
        for u in (float(x) for x in args.units.split(",")):
            runs.append((f"verify_units {u:g}", bg.median + u * bg.spread,
                         f"{ov};search.verify=diagonal;calibration.verify_units={u:g}"))
        for name, threshold, overrides in runs:
            x = report(overrides, args.reports.resolve() / f"{root.name}-{extractor}-{len(name)}-{threshold:.4f}")
            print(f"| {root.name} | {extractor} | {bg.median:.3f} / {bg.spread:.3f} | {name} | {threshold:.3f} | "
                  f"{x['pair_AP']:.3f} | {x['pair_best_F1']:.3f} | {x['detected_pairs_offset_within_1s']:.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
