"""Which TMK normalisation holds on the pipeline's own frame features (issue 27, item 2).

    python benchmarks/tmk_normalisations.py --features bench_copy/work/copybench-mvlad \
        --annotation bench_copy/annotation/bench.txt
    python benchmarks/tmk_normalisations.py --features work/demo --annotation demo_data/annotation/demo.txt

Reads the 15-fps frame features of a work directory (every ``features-*/shard-*/*.h5``), and ranks every
unordered pair of videos by the best TMK score over all offsets, for the Poullot and LAMV period sets
under each normalisation (``freq``: each feature dimension over the frequencies, Poullot's; ``feat``:
each frequency over the dimensions; ``feat_freq``: both; ``matrix``: the whole descriptor), against the
baseline of the mean frames' cosine, measured in the same run. Prints the pair AP of each (the copies of
the VCDB-format annotation are the positives). Nothing is fitted: no fold is needed. This is the models
alone, outside the pipeline's search (no FAISS candidates, one score per pair).
"""

# ruff: noqa: E402  (the repository root goes on sys.path first: run as a script)
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import numpy as np
import torch

from extractors.runtime.timebase import FPS
from extractors.temporal.tmk import TMK
from pipeline.datasets.readers import parse_vcdb_annotation
from pipeline.metrics.pair_level import ranked_ap
from pipeline.store.features import read_video_features


def stem(name: str) -> str:
    return Path(name).stem


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", required=True, type=Path, help="a work directory holding features-*/shard-*")
    ap.add_argument("--annotation", required=True, type=Path, help="VCDB-format copy annotation (.txt)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    videos: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for p in sorted(args.features.glob("features-*/shard-*/*.h5")):
        if p.name == "_pack.h5":
            continue
        f = read_video_features(p)
        videos[stem(f.video_id)] = (np.asarray(f.features, np.float32), np.asarray(f.timestamps_s) * FPS)
    names = sorted(videos)
    true = {frozenset((stem(c.video_a), stem(c.video_b))) for c in parse_vcdb_annotation(args.annotation)}
    true = {k for k in true if len(k) == 2 and k <= set(names)}
    pairs = [frozenset(p) for p in itertools.combinations(names, 2)]
    print(f"{len(names)} videos, {len(pairs)} pairs, {len(true)} copies ({args.features})\n")

    def pair_ap(scores: dict[frozenset, float]) -> float:
        return ranked_ap(np.array([s for k, s in scores.items() if k in true]),
                         np.array([s for k, s in scores.items() if k not in true]))

    mean = {n: videos[n][0].mean(0) / max(np.linalg.norm(videos[n][0].mean(0)), 1e-12) for n in names}
    base = pair_ap({k: float(np.dot(*(mean[n] for n in k))) for k in pairs})
    print("| periods | normalisation | pair AP | vs the mean frame |\n|---|---|---:|---:|")
    print(f"| - | mean-frame cosine (baseline) | {base:.3f} | 1.00 |")
    for preset in ("poullot", "lamv"):
        for norm in ("freq", "feat", "feat_freq", "matrix"):
            model = TMK.preset(preset, norm=norm)
            desc = {n: model.normalize(model.descriptor(torch.from_numpy(x), torch.from_numpy(t))[None])
                    for n, (x, t) in videos.items()}
            scores = {}
            for k in pairs:
                a, b = sorted(k)
                offsets = torch.arange(-len(videos[b][0]) + 1, len(videos[a][0]), dtype=torch.float64)
                best, _ = model.score_max(desc[a], desc[b], offsets, normalized=True)
                scores[k] = float(best[0])
            value = pair_ap(scores)
            print(f"| {preset} | {norm} | {value:.3f} | {value / base:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
