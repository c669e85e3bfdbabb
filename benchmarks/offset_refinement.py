"""Detected copies' offsets: the temporal model's offset against a frame-level refinement inside a band.

    python benchmarks/offset_refinement.py --copy-root bench_copy --copy-root bench_copy_s11 --demo-root demo

Issue 27 item 2 asks to resolve offsets at frame level inside the kept band.  For every candidate the
search decided a copy (both query directions; the plain settings of ``benchmarks/copy_benchmark.py``: no
score normalisation, no verification; the demo's defaults), searched with ``search.refine_offsets=none``,
the 15-fps frame features of the query and the candidate give, for each offset within ``+-band`` seconds
of the model's offset, the similarity above the corpus's calibrated frame threshold summed along that
diagonal (:func:`index.offset_refinement.band_mass`); a refined offset is the best one.  Compared: the
model's offset, every band, the band applied only where the model's own score-vs-offset peak is wider
than a gate (``search.refine_offsets: wide_peaks`` is this rule at ``refine_peak_s: 1``, ``refine_band_s:
2``), the offset the copy segment implies, and the pipeline's own run with ``wide_peaks`` (it must equal
the gated rule's 1-s column).  Printed per corpus and model: the share of detected copies within 1 s and
0.1 s of the annotation, and the pairs detected both ways whose two offsets disagree.  Labels are read
only to score.
"""

# ruff: noqa: E402  (the repository root goes on sys.path first: run as a script)
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from copy_decisions import copy_benchmark_overrides

from extractors.runtime.timebase import FPS
from index.offset_refinement import PEAK_WINDOW_S, band_mass, model_peak_halfwidths
from pipeline.config.load import load_config
from pipeline.datasets.kinds import load_ground_truth
from pipeline.steps.build import build
from pipeline.steps.describe import configured_model, descriptor_store
from pipeline.steps.frames import FeatureLookup
from pipeline.store.layout import Layout
from pipeline.store.results.search import read_search_results

PLAIN = ("search.score_normalisation=none;search.background=10;search.verify=none;"
         "stores.descriptors=float32;stores.segment_frames=none")
GATES_S = (0.8, 1.0, 1.2)  # peak half-widths above which the gated rule refines (the product: search.refine_peak_s)


def within(masses: np.ndarray, centres: np.ndarray, widest: int, band: int) -> np.ndarray:
    """The refined offsets (s): the best diagonal within +-``band`` frames of ``masses (rows, 2 widest + 1)``."""
    inner = masses[:, widest - band: widest + band + 1]
    return (centres + inner.argmax(axis=1) - band) / FPS


def measure(label: str, dataset: str, overrides: str, bands_s: list[float]) -> list[dict]:
    """The offsets of every decided copy of the corpus, the model's (``search.refine_offsets=none``) and
    refined each way, against the annotation; the pipeline's own refined run beside them."""
    layout = Layout(load_config(dataset, f"{overrides};search.refine_offsets=none;search.agree_directions=false"))
    refined_layout = Layout(load_config(dataset, f"{overrides};search.refine_offsets=wide_peaks;"
                                                 f"search.agree_directions=false"))
    default_layout = Layout(load_config(dataset, f"{overrides};search.refine_offsets=wide_peaks;"
                                                 f"search.agree_directions=true"))
    cfg = layout.cfg
    for lay in (layout, refined_layout, default_layout):
        build(lay, until="search", models=cfg.evaluate.models, show_progress=False)
    threshold = json.loads(layout.thresholds_path.read_text())["frame_threshold"]
    truth: dict[tuple[str, str], list[float]] = {}
    for p in load_ground_truth(cfg.dataset, [v.id for v in layout.videos]).pairs:
        truth.setdefault((p.video_a, p.video_b), []).append(p.a_begin_s - p.b_begin_s)
        truth.setdefault((p.video_b, p.video_a), []).append(p.b_begin_s - p.a_begin_s)
    features = FeatureLookup.of_layout(layout)
    widest = round(max(bands_s) * FPS)
    out = []
    for model_name in cfg.evaluate.models:
        rows = [r for r in read_search_results(layout.search_dir(model_name)) if r.copy and (r.query, r.match) in truth]
        if not rows:
            continue
        product = {(r.query, r.match): r.offset_s for r in read_search_results(refined_layout.search_dir(model_name))}
        feats = {v: features.get(v).features for v in {r.query for r in rows} | {r.match for r in rows}}
        true = [np.asarray(truth[(r.query, r.match)]) for r in rows]
        model_s = np.array([r.offset_s for r in rows])
        centres = np.round(model_s * FPS).astype(np.int64)
        # per row: the mass of every diagonal within the widest band (index/offset_refinement.py)
        masses = np.concatenate([band_mass(feats[r.query], [feats[r.match]], c[None], widest, threshold)
                                 for r, c in zip(rows, centres, strict=True)])
        model = configured_model(layout, model_name)
        store = descriptor_store(layout, model_name)
        halfwidths = np.concatenate([model_peak_halfwidths(model, store.get([r.query]), store.get([r.match]),
                                                           c[None], round(PEAK_WINDOW_S * FPS))
                                     for r, c in zip(rows, centres, strict=True)])

        methods: dict[str, np.ndarray] = {"model": model_s}
        for b in bands_s:
            methods[f"+-{b:g} s"] = within(masses, centres, widest, round(b * FPS))
        for gate in GATES_S:
            methods[f"+-{max(bands_s):g} s where peak > {gate:g} s"] = np.where(halfwidths > gate * FPS,
                                                                              within(masses, centres, widest, widest),
                                                                              model_s)
        seg_s = np.array([r.query_start_s - r.match_start_s for r in rows])
        seg_s = np.where(np.isfinite(seg_s), seg_s, model_s)  # no segment: the model's offset
        step = round(FPS / cfg.segments.fps)
        methods["segment"] = seg_s
        seg_centres = np.round(seg_s * FPS).astype(np.int64)
        seg_fine = np.array([(c + band_mass(feats[r.query], [feats[r.match]], c[None], step, threshold)[0].argmax()
                              - step) / FPS for r, c in zip(rows, seg_centres, strict=True)])
        methods["model where it agrees with the segment, else segment +-step"] = np.where(
            np.abs(model_s - seg_s) <= step / FPS, model_s, seg_fine)
        methods["pipeline (refine_offsets: wide_peaks)"] = np.array([product.get((r.query, r.match), np.nan)
                                                                     for r in rows])
        # the two query directions: pairs detected both ways whose offsets do not mirror each other
        where = {(r.query, r.match): k for k, r in enumerate(rows)}
        both = [(k, where[(r.match, r.query)]) for k, r in enumerate(rows)
                if (r.match, r.query) in where and r.query < r.match]
        piped = methods["pipeline (refine_offsets: wide_peaks)"]
        agreed = piped.copy()
        for a, b in both:  # a handful of pairs: the direction whose diagonal holds more similarity wins
            if abs(piped[a] + piped[b]) >= 1:
                q, m = rows[a].query, rows[a].match
                cand = np.round(np.array([piped[a], -piped[b]]) * FPS).astype(np.int64)
                mass = band_mass(feats[q], [feats[m], feats[m]], cand, 0, threshold)[:, 0]
                agreed[a] = cand[int(mass.argmax())] / FPS
                agreed[b] = -agreed[a]
        methods["pipeline, directions agreeing (more frame mass)"] = agreed
        product = {(r.query, r.match): r.offset_s for r in read_search_results(default_layout.search_dir(model_name))}
        methods["pipeline (defaults: wide_peaks, agree_directions)"] = np.array(
            [product.get((r.query, r.match), np.nan) for r in rows])
        row = {"corpus": label, "model": model_name, "detected": len(rows), "methods": list(methods),
               "peak_halfwidth_s": float(np.median(halfwidths)) / FPS,
               "wide": float((halfwidths > GATES_S[1] * FPS).mean())}
        for name, offs in methods.items():
            err = np.array([np.abs(o - t).min() for o, t in zip(offs, true, strict=True)])
            row[f"{name}_1s"], row[f"{name}_0.1s"] = float((err < 1).mean()), float((err < 0.1).mean())
        row["both_ways"] = len(both)
        for name, offs in methods.items():
            row[f"{name}_disagree"] = sum(abs(offs[a] + offs[b]) >= 1 for a, b in both)
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--copy-root", type=Path, action="append", default=[])
    ap.add_argument("--extractor", default="mvlad")
    ap.add_argument("--demo-root", type=Path, help="where 'python -m pipeline demo' ran (demo_data/, work/)")
    ap.add_argument("--bands", default="1,2", help="half-widths of the band, seconds")
    args = ap.parse_args()
    bands = [float(b) for b in args.bands.split(",")]
    rows = []
    for root in args.copy_root:
        root = root.resolve()
        rows += measure(f"{root.name} / {args.extractor}", "folder",
                        f"{copy_benchmark_overrides(root, args.extractor)};{PLAIN}", bands)
    if args.demo_root is not None:
        d = args.demo_root.resolve()
        rows += measure("demo / selfsup", "demo", f"dataset.root={d / 'demo_data'};work_dir={d / 'work'}", bands)
    methods = rows[0]["methods"] if rows else []
    print("\n| corpus | model | detected copies (rows) | " + " | ".join(methods) + " |")
    print("|---|---|---:|" + "---:|" * len(methods))
    for r in rows:
        cells = " | ".join(f"{r[f'{m}_1s']:.3f} / {r[f'{m}_0.1s']:.3f}" for m in methods)
        print(f"| {r['corpus']} | {r['model']} | {r['detected']} | {cells} |")
    print("\n| corpus | model | model's peak half-width, median (s) | share wider than 1 s | pairs detected both ways "
          "| directions disagree by >= 1 s: " + " | ".join(methods) + " |")
    print("|---|---|---:|---:|---:|" + "---:|" * len(methods))
    for r in rows:
        cells = " | ".join(str(r[f"{m}_disagree"]) for m in methods)
        print(f"| {r['corpus']} | {r['model']} | {r['peak_halfwidth_s']:.2f} | {r['wide']:.2f} | {r['both_ways']} | "
              f"{cells} |")


if __name__ == "__main__":
    main()
