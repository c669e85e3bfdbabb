"""Copy-detection benchmark on real footage under realistic, combined copy attacks.

    python benchmarks/copy_benchmark.py                      # clips of ../shared/videos
    python benchmarks/copy_benchmark.py --videos DIR --copies 24 --out bench_copy
    python benchmarks/copy_benchmark.py --extractors mvlad --stores float32,int8   # compact stores' cost

Builds a dataset from real clips: copy videos embedding one or two excerpts of
a source (6-40 s) under one geometric attack (crop, letterbox/pillarbox,
picture-in-picture, rescale, frame-rate change, overlay) combined with one or
two photometric ones (colour, gamma, blur, noise, overlay, low bitrate,
re-encode), among material from clips that are *not* in the corpus, plus hard
negatives (other moments of a copied source). Ground truth in the VCDB
annotation format (``annotation/bench.txt``). Then, for every frame extractor,
the pipeline's steps run on it and every temporal model is scored, with and
without score normalisation and frame-level verification, by pair-level AP
over all unordered video pairs (a pair's score: the best score reported in
either direction, 0 when never reported), best F1, the share of true pairs
among the candidates, the share of found and of detected copies whose offset
is within 1 s / 0.1 s, and the CPU seconds per second of video of fitting
(vocabulary, network, PCA) and of extraction. Artifacts are reused between
runs: delete ``<out>/work/copybench-<extractor>`` to measure its costs again.

Without the ImageNet ResNet-34 weights in torch's hub cache ``resnet34_rmac``
runs with random weights and a PCA trained on the benchmark corpus (the only
offline option before the weight-free extractors); the table says so.
"""

# ruff: noqa: E402  (the repository root goes on sys.path first: run as a script)
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from extractors.decode.ffmpeg_frames import find_ffmpeg
from extractors.frame.resnet import WeightsNotFoundError, resolve_weights
from extractors.runtime.timebase import FPS
from pipeline.config.load import load_config
from pipeline.datasets.ffmpeg_copies import build_ffmpeg_copy_dataset
from pipeline.datasets.generate import build_copy_dataset
from pipeline.metrics.pair_level import ranked_ap
from pipeline.steps.build import build
from pipeline.steps.features.fitting import ensure_fitted
from pipeline.store.features import read_pack
from pipeline.store.layout import Layout

log = logging.getLogger("copy_benchmark")

def cpu_seconds() -> float:
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "videos")
    ap.add_argument("--out", type=Path, default=Path("bench_copy"))
    ap.add_argument("--max-sources", type=int, default=12)
    ap.add_argument("--copies", type=int, default=24)
    ap.add_argument("--hard", type=int, default=4, help="hard negatives: other moments of copied sources")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--edits", choices=("generator", "ffmpeg"), default="generator",
                    help="how copies are made: the numpy generator (pipeline/datasets/generate.py) or ffmpeg filter "
                         "graphs, independent of the training augmentations (pipeline/datasets/ffmpeg_copies.py: "
                         "picture-in-picture, screen recordings, speed changes, two-source videos...)")
    ap.add_argument("--overrides", default="", help="extra config overrides 'key=value;...' for every run")
    ap.add_argument("--extractors", default="resnet34_rmac,selfsup,pdqf,mvlad,mvlad+bars",
                    help="comma-separated; '+bars' removes letterbox/pillarbox bars first")
    ap.add_argument("--stores", default="float32",
                    help="comma-separated store precisions, each scored on the same features: float32 (descriptors "
                         "float32, copy segments from the 15-fps features), float16, int8 (descriptors and "
                         "segment frames in that precision)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)

    clips = sorted(p for p in args.videos.glob("*") if p.suffix.lower() in (".mp4", ".avi", ".mkv", ".mov"))
    if len(clips) < 2:
        raise SystemExit(f"need at least 2 clips in {args.videos}")
    clips = sorted(clips, key=lambda p: p.stat().st_size)
    sources, fillers = clips[: args.max_sources], clips[args.max_sources:]
    if not (args.out / "truth.json").is_file():
        log.warning("building the benchmark dataset in %s from %d clips (+%d filler clips, not in the corpus), "
                    "%s edits", args.out, len(sources), len(fillers), args.edits)
        if args.edits == "ffmpeg":
            build_ffmpeg_copy_dataset(sources, fillers, args.out, args.copies, args.hard, args.seed, find_ffmpeg())
        else:
            build_copy_dataset(sources, fillers, args.out, args.copies, args.hard, args.seed)
    truth = json.loads((args.out / "truth.json").read_text())
    try:
        resolve_weights("imagenet", download=False)
        weights = "imagenet"
    except WeightsNotFoundError:
        weights = "random"
    rows = []
    plain: dict[tuple[str, str], tuple[Path, Path]] = {}  # (extractor, model) -> search, report dirs
    for variant in args.extractors.split(","):
        ex, bars = variant.removesuffix("+bars"), variant.endswith("+bars")
        pca = "trained" if ex == "resnet34_rmac" else "auto"  # the old offline option: random weights + PCA
        ov = (f"dataset.root={args.out.resolve()};dataset.kind=vcdb;dataset.name=copybench-{ex};"
              f"features.remove_black_bars={str(bars).lower()};"
              f"dataset.max_length_s=240;features.extractor={ex};features.weights={weights};features.pca={pca};"
              f"shards.size=16;search.top_k=20;search.keep=20;work_dir={args.out.resolve() / 'work'};"
              f"reports_dir={args.out.resolve() / 'reports'}" + (f";{args.overrides}" if args.overrides else ""))
        layout = Layout(load_config("folder", ov))
        c0 = cpu_seconds()
        ensure_fitted(layout, show_progress=False)
        c1, t1 = cpu_seconds(), time.perf_counter()
        build(layout, until="features", show_progress=False)
        c2, t2 = cpu_seconds(), time.perf_counter()
        video_s = sum(int(read_pack(layout.feature_shard_dir(i)).frame_counts.sum())
                      for i in range(layout.n_shards)) / FPS
        for norm in ("none", "background"):
            for verify in ("none", "diagonal"):
                for stores in args.stores.split(","):
                    frames = "none" if stores == "float32" else stores
                    lay = Layout(load_config("folder", f"{ov};search.score_normalisation={norm};"
                                                       f"search.background=10;search.verify={verify};"
                                                       f"stores.descriptors={stores};stores.segment_frames={frames};"
                                                       f"reports_dir={args.out.resolve() / 'reports' / stores}"))
                    build(lay, until="evaluate", show_progress=False)
                    for m in lay.cfg.evaluate.models:
                        if (norm, verify, stores) == ("none", "none", "float32"):
                            plain[(variant, m)] = (lay.search_dir(m), lay.report_dir(m))
                        x = json.loads((lay.report_dir(m) / "report.json").read_text())["metrics"]
                        rows.append((variant, m, norm, verify, stores, x, (c1 - c0) / video_s,
                                     (c2 - c1) / video_s, (t2 - t1) / video_s))
                        log.warning("%s %s norm=%s verify=%s stores=%s: pair AP %.3f, detected offsets < 1 s %.3f",
                                    variant, m, norm, verify, stores, x["pair_AP"],
                                    x["detected_pairs_offset_within_1s"])
    n_videos = len(layout.videos)
    attacks = sorted({t["attack"] for t in truth})
    n_two = len(truth) - len({t["copy"] for t in truth})
    print(f"\nCopy-detection benchmark: {len(sources)} real source clips, {len(truth)} copied excerpts "
          f"({n_two} videos with two), attacks: {'; '.join(attacks)}; "
          f"{sum(t['copy'].startswith('hard') for t in truth)} hard negatives; "
          f"{n_videos} videos, {n_videos * (n_videos - 1) // 2} unordered pairs, CNN weights: {weights}\n")
    print("| extractor | model | score norm. | verify | stores | pair AP | pair best F1 | true pairs in results | "
          "offset < 1 s | < 0.1 s | detected | detected offset < 1 s | < 0.1 s | segment max-F1 | "
          "fit CPU s / video s | extract CPU s / video s | extract wall s / video s |")
    print("|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for ex, m, norm, verify, stores, x, fit, ext, wall in rows:
        print(f"| {ex} | {m} | {norm} | {verify} | {stores} | {x['pair_AP']:.3f} | {x['pair_best_F1']:.3f} | "
              f"{x['pair_recall_in_results']:.3f} | "
              f"{x['found_pairs_offset_within_1s']:.3f} | {x['found_pairs_offset_within_0.1s']:.3f} | "
              f"{x['detected_pairs']} | {x['detected_pairs_offset_within_1s']:.3f} | "
              f"{x['detected_pairs_offset_within_0.1s']:.3f} | {x['segment_max_F1']:.3f} | "
              f"{fit:.3f} | {ext:.3f} | {wall:.3f} |")
    print_per_edit(truth, plain, n_videos)
    base = {r[:4]: r[5]["pair_AP"] for r in rows if r[4] == "float32"}
    if len(args.stores.split(",")) > 1 and base:
        print("\n| stores | largest pair-AP loss against float32 | mean change | largest change of offsets < 1 s |")
        print("|---|---:|---:|---:|")
        off = {r[:4]: r[5]["found_pairs_offset_within_1s"] for r in rows if r[4] == "float32"}
        for stores in args.stores.split(","):
            if stores == "float32":
                continue
            d = [r[5]["pair_AP"] - base[r[:4]] for r in rows if r[4] == stores]
            o = [r[5]["found_pairs_offset_within_1s"] - off[r[:4]] for r in rows if r[4] == stores]
            print(f"| {stores} | {-min(d):.4f} | {sum(d) / len(d):+.4f} | {max(o, key=abs):+.4f} |")


def edit_families(truth: list[dict]) -> dict[str, set[frozenset]]:
    """Copy pairs (video ids) by edit (the first of a copy's attacks), plus ``two sources``: the pairs of
    the videos holding excerpts of two different sources."""
    out: dict[str, set[frozenset]] = {}
    sources_of: dict[str, set[str]] = {}
    for t in truth:
        pair = frozenset((f"bench/{Path(t['copy']).stem}", f"bench/{Path(t['source']).stem}"))
        out.setdefault(t["attack"].split("+")[0], set()).add(pair)
        sources_of.setdefault(t["copy"], set()).add(t["source"])
    two = {p for t in truth if len(sources_of[t["copy"]]) > 1
           for p in [frozenset((f"bench/{Path(t['copy']).stem}", f"bench/{Path(t['source']).stem}"))]}
    if two:
        out["two sources"] = two
    return out


def print_per_edit(truth: list[dict], plain: dict[tuple[str, str], tuple[Path, Path]], n_videos: int) -> None:
    """Pair AP of each edit's copy pairs ranked among every non-copy pair, by the plain run's scores (no
    score normalisation, no verification, float32: its ``results.csv``, a pair's score the best of both
    directions), and the share of them decided copies: picture-in-picture and the rest reported apart.
    Which pairs are copies comes from ``pair_scores.csv`` (the ground truth; its scores are the last run's)."""
    import csv

    families = edit_families(truth)
    n_pairs = n_videos * (n_videos - 1) // 2
    print("\n| extractor | model | edit | copy pairs | pair AP among all non-copies | decided copies |")
    print("|---|---|---|---:|---:|---:|")
    for (ex, m), (search_dir, report_dir) in plain.items():
        true = {frozenset(line.split(",")[:2]) for line in (report_dir / "pair_scores.csv").read_text().splitlines()[1:]
                if line.endswith(",1")}
        true |= set().union(*families.values())
        scores: dict[frozenset, float] = {}
        decided: set[frozenset] = set()
        with open(search_dir / "results.csv", newline="") as f:
            for r in csv.DictReader(f):
                k = frozenset((r["query"], r["match"]))
                scores[k] = max(scores.get(k, -np.inf), float(r["score"]))
                if r["copy"] == "1":
                    decided.add(k)
        negatives = [v for k, v in scores.items() if k not in true]
        negatives += [0.0] * (n_pairs - len(true) - len(negatives))
        for family, pairs in sorted(families.items()):
            pos = np.array([scores.get(p, 0.0) for p in pairs])
            print(f"| {ex} | {m} | {family} | {len(pairs)} | {ranked_ap(pos, np.array(negatives)):.3f} | "
                  f"{len(pairs & decided) / len(pairs):.2f} |")


if __name__ == "__main__":
    main()
