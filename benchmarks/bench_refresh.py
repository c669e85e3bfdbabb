"""Incremental refresh cost against a full build, measured in the same run.

    python benchmarks/bench_refresh.py                 # 100 generated clips, +5 %
    python benchmarks/bench_refresh.py --videos 200 --seconds 4

1. full build: ``run_refresh`` on an empty work directory (every video added);
2. no-op refresh: nothing changed (must take seconds and touch nothing);
3. add 5 % new videos, refresh: only they are extracted and described, the
   index is updated by id and a new version published.

Prints the wall times and the ratio refresh / full build (target <= 0.10).
Random CNN weights (the speed is that of the ImageNet weights).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from pipeline.config import load_config
from pipeline.refresh import run_refresh
from pipeline.synthetic import Segment, render, write_video


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--added", type=float, default=0.05, help="fraction of new videos")
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    tmp = args.dir or Path(tempfile.mkdtemp(prefix="bench_refresh_"))
    vdir = tmp / "data" / "videos"
    n_new = max(1, round(args.videos * args.added))
    for i in range(args.videos + n_new):
        p = (tmp / "incoming" if i >= args.videos else vdir) / f"clip{i:04d}.mp4"
        if not p.exists():
            write_video(p, render([Segment(1000 + i, 0.0, args.seconds)], 25.0, 320, 180), 25.0)
    ov = (f"dataset.root={tmp / 'data'};work_dir={tmp / 'work'};reports_dir={tmp / 'reports'};dataset.kind=folder;"
          f"dataset.name=bench;features.weights=random;features.pca=none;shards.size=50;dataset.max_length_s=60")
    cfg = load_config("folder", ov)

    t0 = time.perf_counter()
    full = run_refresh(cfg, progress=False)
    t_full = time.perf_counter() - t0
    t0 = time.perf_counter()
    noop = run_refresh(cfg, progress=False)
    t_noop = time.perf_counter() - t0
    for p in sorted((tmp / "incoming").glob("*.mp4")):
        p.rename(vdir / p.name)
    t0 = time.perf_counter()
    inc = run_refresh(cfg, progress=False)
    t_inc = time.perf_counter() - t0

    print(f"\nRefresh benchmark: {args.videos} clips of {args.seconds:g} s, then +{n_new} "
          f"({args.added:.0%}); work dir {tmp}\n")
    print("| run | wall s | videos processed | index | ratio to full build |")
    print("|---|---:|---:|---|---:|")
    print(f"| full build | {t_full:.1f} | {len(full.added)} | {full.index_update} | 1.00 |")
    print(f"| refresh, nothing new | {t_noop:.2f} | 0 | untouched | {t_noop / t_full:.3f} |")
    print(f"| refresh, +{args.added:.0%} | {t_inc:.1f} | {len(inc.added)} | {inc.index_update} | "
          f"{t_inc / t_full:.3f} |")
    print(f"\nrefresh / full build = {t_inc / t_full:.3f} (target <= 0.10); no-op published: {noop.published}")


if __name__ == "__main__":
    main()
