"""Detected copies' offsets: the temporal model's offset against a frame-level refinement inside a band.

    python benchmarks/offset_refinement.py --copy-root bench_copy --copy-root bench_copy_s11 --demo-root demo

Issue 27 item 2 asks to resolve offsets at frame level inside the kept band.  For every candidate the
search decided a copy (both query directions, the plain run of ``benchmarks/copy_benchmark.py``: no score
normalisation, no verification; the demo's default run), the 15-fps frame features of the query and the
candidate give, for each offset within ``+-band`` seconds of the model's offset, the similarity above the
corpus's calibrated frame threshold summed along that diagonal; the refined offset is the best one.
Printed per corpus and model: the share of detected copies whose offset is within 1 s and 0.1 s of the
annotation, the model's and the refined one's, for each band.  Labels are read only to score.  Nothing
here is used by the pipeline (an experiment, recorded in ``benchmarks/RESULTS.md``).
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
from pipeline.config.load import load_config
from pipeline.datasets.kinds import load_ground_truth
from pipeline.steps.frames import FeatureLookup
from pipeline.store.layout import Layout
from pipeline.store.results.search import read_search_results

PLAIN = ("search.score_normalisation=none;search.background=10;search.verify=none;"
         "stores.descriptors=float32;stores.segment_frames=none")


def diagonal_mass(query: np.ndarray, ref: np.ndarray, centre: int, band: int, threshold: float) -> np.ndarray:
    """``(2 band + 1,)``: for each offset ``t_query - t_ref`` in ``centre - band .. centre + band`` (frames),
    the similarity above ``threshold`` of ``query (n, d)`` and ``ref (m, d)`` frames summed along its diagonal."""
    sim = query @ ref.T
    offsets = centre + np.arange(-band, band + 1)
    i = np.arange(len(query))[None, :]
    j = i - offsets[:, None]  # (offsets, n): the ref frame facing query frame i at each offset
    inside = (j >= 0) & (j < len(ref))
    above = np.clip(sim[np.broadcast_to(i, j.shape), np.clip(j, 0, len(ref) - 1)] - threshold, 0.0, None)
    return (above * inside).sum(axis=1)


def refined_offset(mass: np.ndarray, widest: int, band: int) -> int:
    """The offset (frames, relative to the band's centre) of the most mass within ``+- band`` of the
    ``+- widest`` band's :func:`diagonal_mass`."""
    inner = mass[widest - band: widest + band + 1]
    return int(np.argmax(inner)) - band


def measure(label: str, layout: Layout, bands_s: list[float]) -> list[dict]:
    cfg = layout.cfg
    threshold = json.loads(layout.thresholds_path.read_text())["frame_threshold"]
    truth: dict[tuple[str, str], list[float]] = {}
    for p in load_ground_truth(cfg.dataset, [v.id for v in layout.videos]).pairs:
        truth.setdefault((p.video_a, p.video_b), []).append(p.a_begin_s - p.b_begin_s)
        truth.setdefault((p.video_b, p.video_a), []).append(p.b_begin_s - p.a_begin_s)
    features = FeatureLookup.of_layout(layout)
    out = []
    for model in cfg.evaluate.models:
        rows = [r for r in read_search_results(layout.search_dir(model)) if r.copy and (r.query, r.match) in truth]
        if not rows:
            continue
        feats = {v: features.get(v).features for v in {r.query for r in rows} | {r.match for r in rows}}
        true = [np.asarray(truth[(r.query, r.match)]) for r in rows]
        err_model = np.array([np.abs(r.offset_s - t).min() for r, t in zip(rows, true, strict=True)])
        row = {"corpus": label, "model": model, "detected": len(rows),
               "model_1s": float((err_model < 1).mean()), "model_0.1s": float((err_model < 0.1).mean())}
        widest = round(max(bands_s) * FPS)
        centres = [round(r.offset_s * FPS) for r in rows]
        masses = [diagonal_mass(feats[r.query], feats[r.match], c, widest, threshold)
                  for r, c in zip(rows, centres, strict=True)]
        for b in bands_s:
            refined = [(c + refined_offset(m, widest, round(b * FPS))) / FPS
                       for c, m in zip(centres, masses, strict=True)]
            err = np.array([np.abs(o - t).min() for o, t in zip(refined, true, strict=True)])
            row[f"{b:g}_1s"], row[f"{b:g}_0.1s"] = float((err < 1).mean()), float((err < 0.1).mean())
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--copy-root", type=Path, action="append", default=[])
    ap.add_argument("--extractor", default="mvlad")
    ap.add_argument("--demo-root", type=Path, help="where 'python -m pipeline demo' ran (demo_data/, work/)")
    ap.add_argument("--bands", default="0.5,1,1.5,2", help="half-widths of the band, seconds")
    args = ap.parse_args()
    bands = [float(b) for b in args.bands.split(",")]
    rows = []
    for root in args.copy_root:
        root = root.resolve()
        cfg = load_config("folder", f"{copy_benchmark_overrides(root, args.extractor)};{PLAIN}")
        rows += measure(f"{root.name} / {args.extractor}", Layout(cfg), bands)
    if args.demo_root is not None:
        d = args.demo_root.resolve()
        rows += measure("demo / selfsup", Layout(load_config("demo", f"dataset.root={d / 'demo_data'};"
                                                                     f"work_dir={d / 'work'}")), bands)
    head = " | ".join(f"+-{b:g} s" for b in bands)
    print(f"\n| corpus | model | detected copies (rows) | model's offset: < 1 s / < 0.1 s | refined {head} |")
    print("|---|---|---:|---:|" + "---:|" * len(bands))
    for r in rows:
        cells = " | ".join(f"{r[f'{b:g}_1s']:.3f} / {r[f'{b:g}_0.1s']:.3f}" for b in bands)
        print(f"| {r['corpus']} | {r['model']} | {r['detected']} | {r['model_1s']:.3f} / {r['model_0.1s']:.3f} | "
              f"{cells} |")


if __name__ == "__main__":
    main()
