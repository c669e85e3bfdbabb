"""Incremental refresh cost against a full build, measured in the same run and process.

    python benchmarks/bench_refresh.py                       # 2000 generated clips, +5 %, 3 repeats
    python benchmarks/bench_refresh.py --videos 500 --repeats 2

At a corpus of thousands of videos the per-run fixed costs (building the CNN,
starting decode workers) no longer dominate, so the ratio measures what a
refresh does: extract and describe only the new videos, update the index by
id, publish a version.

1. full build, ``--full-repeats`` times: ``run_refresh`` on an empty work
   directory (every video added);
2. no-op refresh: nothing changed (must take seconds and touch nothing);
3. ``--repeats`` times: move a new batch of ``--added`` (5 %) videos into the
   corpus and refresh.

Prints every wall time, the median and spread of each kind of run, and the
ratio median(refresh) / median(full build) (target <= 0.10).  Random CNN
weights (the speed is that of the ImageNet weights); PCA none.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from pipeline.config.load import load_config
from pipeline.datasets.synthetic import Segment, render, write_video
from pipeline.steps.operations.refresh import run_refresh
from pipeline.store.layout import Layout


def spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} (min {min(xs):.2f}, max {max(xs):.2f}, n={len(xs)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--added", type=float, default=0.05, help="fraction of new videos per refresh")
    ap.add_argument("--repeats", type=int, default=3, help="incremental refreshes")
    ap.add_argument("--full-repeats", type=int, default=2, help="full builds")
    ap.add_argument("--dir", type=Path, default=None, help="keep generated clips here (reused)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    tmp = args.dir or Path(tempfile.mkdtemp(prefix="bench_refresh_"))
    vdir, pool = tmp / "data" / "videos", tmp / "incoming"
    n_new = max(1, round(args.videos * args.added))
    t0 = time.perf_counter()
    for i in range(args.videos + n_new * args.repeats):
        p = (pool if i >= args.videos else vdir) / f"clip{i:05d}.mp4"
        if not p.exists() and not (vdir / p.name).exists():
            write_video(p, render([Segment(1000 + i, 0.0, args.seconds)], 15.0, 96, 64), 15.0)
    for p in sorted(vdir.glob("*.mp4"))[args.videos:]:  # back to the pool after an earlier run
        p.rename(pool / p.name)
    t_gen = time.perf_counter() - t0
    base = (f"dataset.root={tmp / 'data'};reports_dir={tmp / 'reports'};dataset.kind=folder;dataset.name=bench;"
            f"features.weights=random;features.pca=none;shards.size=500;dataset.max_length_s=60")

    fulls: list[float] = []
    for r in range(args.full_repeats):
        work = tmp / f"work{r}"
        shutil.rmtree(work, ignore_errors=True)
        cfg = load_config("folder", f"{base};work_dir={work}")
        t0 = time.perf_counter()
        full = run_refresh(Layout(cfg), progress=False)
        fulls.append(time.perf_counter() - t0)
        assert full.published and len(full.added) == args.videos, full.summary()
    noops: list[float] = []
    for _ in range(3):
        t0 = time.perf_counter()
        noop = run_refresh(Layout(cfg), progress=False)
        noops.append(time.perf_counter() - t0)
        assert not noop.published
    incs: list[float] = []
    batches = sorted(pool.glob("*.mp4"))
    for r in range(args.repeats):
        for p in batches[r * n_new:(r + 1) * n_new]:
            p.rename(vdir / p.name)
        t0 = time.perf_counter()
        inc = run_refresh(Layout(cfg), progress=False)
        incs.append(time.perf_counter() - t0)
        assert len(inc.added) == n_new and inc.published, inc.summary()

    ratio = statistics.median(incs) / statistics.median(fulls)
    print(f"\nRefresh benchmark: {args.videos} clips of {args.seconds:g} s (96x64, 15 fps), then "
          f"{args.repeats} x +{n_new} ({args.added:.0%}); clips generated in {t_gen:.0f} s; work dirs under {tmp}\n")
    print("| run | wall s: median (min, max, n) | videos processed | ratio to median full build |")
    print("|---|---|---:|---:|")
    print(f"| full build | {spread(fulls)} | {args.videos} | 1.000 |")
    print(f"| refresh, nothing new | {spread(noops)} | 0 | {statistics.median(noops) / statistics.median(fulls):.4f} |")
    print(f"| refresh, +{args.added:.0%} | {spread(incs)} | {n_new} | {ratio:.3f} "
          f"(range {min(incs) / max(fulls):.3f}-{max(incs) / min(fulls):.3f}) |")
    print(f"\nrefresh / full build = {ratio:.3f} (target <= 0.10); last index update: {inc.index_update}")


if __name__ == "__main__":
    main()
