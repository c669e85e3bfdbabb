"""Copy-detection benchmark on real footage under realistic copy attacks.

    python benchmarks/copy_benchmark.py                      # clips of ../shared/videos
    python benchmarks/copy_benchmark.py --videos DIR --copies 24 --out bench_copy

Builds a dataset from real clips: excerpts (integer seconds) transformed by
copy attacks -- re-encode, rescale, crop, pad (letterbox), colour change,
overlay, frame-rate change, picture-in-picture -- with unrelated material
from another clip before and after.  Ground truth is written in the VCDB
annotation format (``annotation/bench.txt``) and in the ``.align`` format
(``gt_bench.align``).  Then the whole pipeline runs on it (Luigi, local
scheduler) and the segment max-F1, localisation accuracy and mAP of every
temporal model are printed side by side.

Without the ImageNet ResNet-34 weights in torch's hub cache the CNN runs with
random weights and a PCA trained on the benchmark corpus; the table says so,
and such figures only compare the temporal models with each other.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from pipeline.synthetic import hms, write_video  # noqa: E402

log = logging.getLogger("copy_benchmark")

ATTACKS = ["reencode", "rescale", "crop", "pad", "colour", "overlay", "fps", "pip"]


@dataclass
class Clip:
    path: Path
    frames: list[np.ndarray]
    fps: float

    @property
    def duration(self) -> float:
        return len(self.frames) / self.fps


def load_clip(path: Path, max_s: float = 60.0, width: int = 320) -> Clip:
    """Decode up to ``max_s`` seconds, resized to ``width`` (even sizes)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        fps = float(s.average_rate or 25)
        frames = []
        for f in c.decode(s):
            h = round(f.height * width / f.width / 2) * 2
            frames.append(f.reformat(width=width, height=h, format="rgb24").to_ndarray())
            if len(frames) >= max_s * fps:
                break
    return Clip(path, frames, fps)


def resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    return av.VideoFrame.from_ndarray(img, format="rgb24").reformat(width=w, height=h,
                                                                     format="rgb24").to_ndarray()


def at_time(clip: Clip, t: float) -> np.ndarray:
    return clip.frames[min(len(clip.frames) - 1, int(t * clip.fps))]


def attack_frames(kind: str, src: Clip, other: Clip, start: int, length: int, rng) -> tuple[list, float, str]:
    """Frames of the copied excerpt after the attack; returns (frames, fps, codec)."""
    fps, codec = src.fps, "libx264"
    if kind == "fps":
        fps = 12.5 if src.fps >= 20 else 30.0
    times = np.arange(round(length * fps)) / fps + start
    frames = [at_time(src, t) for t in times]
    h, w = frames[0].shape[:2]
    if kind == "reencode":
        codec = "mpeg4"
    elif kind == "rescale":
        frames = [resize(f, w // 2 // 2 * 2, h // 2 // 2 * 2) for f in frames]
    elif kind == "crop":
        y0, x0 = h // 8, w // 8
        frames = [resize(f[y0:h - y0, x0:w - x0], w, h) for f in frames]
    elif kind == "pad":
        frames = [np.pad(resize(f, w // 4 * 3 // 2 * 2, h // 4 * 3 // 2 * 2),
                         ((h // 8, h - h // 8 - h // 4 * 3 // 2 * 2), (w // 8, w - w // 8 - w // 4 * 3 // 2 * 2),
                          (0, 0))) for f in frames]
    elif kind == "colour":
        gain, bias = rng.uniform(0.7, 1.3), rng.uniform(-30, 30)
        frames = [np.clip(f.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8) for f in frames]
    elif kind == "overlay":
        out = []
        for i, f in enumerate(frames):
            g = f.copy()
            g[h // 20:h // 20 + h // 8, w - w // 4:w - w // 20] = (255, 255, 255)  # a logo box
            x = int((i * 3) % w)
            g[h - h // 10:h - h // 20, max(0, x - w // 6):x] = (20, 20, 200)  # a moving ticker
            out.append(g)
        frames = out
    elif kind == "pip":
        out = []
        for i, f in enumerate(frames):
            bg = at_time(other, (i / fps) % other.duration).copy()
            bg = resize(bg, w, h)
            small = resize(f, w // 2 // 2 * 2, h // 2 // 2 * 2)
            bg[h // 4:h // 4 + small.shape[0], w // 4:w // 4 + small.shape[1]] = small
            out.append(bg)
        frames = out
    return frames, fps, codec


def filler(clip: Clip, seconds: int, fps: float, shape: tuple[int, int], rng) -> list[np.ndarray]:
    if seconds <= 0:
        return []
    t0 = rng.uniform(0, max(0.0, clip.duration - seconds))
    return [resize(at_time(clip, t0 + i / fps), shape[1], shape[0]) for i in range(round(seconds * fps))]


def build_dataset(clips: list[Path], out: Path, n_copies: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    vdir = out / "videos" / "bench"
    vdir.mkdir(parents=True, exist_ok=True)
    loaded = [load_clip(p) for p in clips]
    for i, c in enumerate(loaded):
        link = vdir / f"src{i:02d}{c.path.suffix}"
        if not link.exists():
            link.symlink_to(c.path.resolve())
    truth = []
    for k in range(n_copies):
        si = int(rng.integers(len(loaded)))
        oi = (si + 1 + int(rng.integers(len(loaded) - 1))) % len(loaded)
        src, other = loaded[si], loaded[oi]
        length = int(min(rng.integers(5, 13), src.duration - 1))
        start = int(rng.integers(0, max(1, int(src.duration) - length)))
        kind = ATTACKS[k % len(ATTACKS)]
        body, fps, codec = attack_frames(kind, src, other, start, length, rng)
        shape = body[0].shape[:2]
        lead, tail = int(rng.integers(1, 6)), int(rng.integers(0, 4))
        frames = filler(other, lead, fps, shape, rng) + body + filler(other, tail, fps, shape, rng)
        name = f"copy{k:02d}"
        write_video(vdir / f"{name}.mp4", frames, fps, codec)
        truth.append({"copy": name, "source": f"src{si:02d}{src.path.suffix}", "attack": kind,
                      "copy_start": lead, "source_start": start, "length": length})
    ann = out / "annotation"
    ann.mkdir(exist_ok=True)
    (ann / "bench.txt").write_text("".join(
        f"{t['copy']}.mp4,{t['source']},{hms(t['copy_start'])},{hms(t['copy_start'] + t['length'])},"
        f"{hms(t['source_start'])},{hms(t['source_start'] + t['length'])}\n" for t in truth))
    # .align: one global timeline per copy (10,000 s apart)
    lines = []
    for k, t in enumerate(truth):
        g = 10_000.0 * (k + 1)
        lines.append(f"bench/{t['source']} {t['source_start']} {t['source_start'] + t['length']} {g}")
        lines.append(f"bench/{t['copy']}.mp4 {t['copy_start']} {t['copy_start'] + t['length']} "
                     f"{g + t['source_start'] - t['copy_start']}")
    (out / "gt_bench.align").write_text("\n".join(lines) + "\n")
    (out / "truth.json").write_text(json.dumps(truth, indent=2))
    return truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "videos")
    ap.add_argument("--out", type=Path, default=Path("bench_copy"))
    ap.add_argument("--max-sources", type=int, default=12)
    ap.add_argument("--copies", type=int, default=16)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    sys.path.insert(0, str(ROOT))
    import luigi

    from extractors.resnet import WeightsNotFoundError, resolve_weights
    from pipeline.config import load_config
    from pipeline.layout import Layout
    from tasks import Evaluate

    clips = sorted(p for p in args.videos.glob("*") if p.suffix.lower() in (".mp4", ".avi", ".mkv", ".mov"))
    if len(clips) < 2:
        raise SystemExit(f"need at least 2 clips in {args.videos}")
    clips = sorted(clips, key=lambda p: p.stat().st_size)[: args.max_sources]
    if not (args.out / "truth.json").is_file():
        log.info("building the benchmark dataset in %s from %d clips", args.out, len(clips))
        build_dataset(clips, args.out, args.copies, args.seed)
    try:
        resolve_weights("imagenet", download=False)
        weights = "imagenet"
    except WeightsNotFoundError:
        weights = "random"
        log.warning("ImageNet weights not found: using RANDOM weights + a PCA trained on the corpus")
    ov = (f"dataset.root={args.out.resolve()};dataset.kind=vcdb;dataset.name=copybench;"
          f"dataset.max_length_s=240;features.weights={weights};features.pca=trained;"
          f"shards.size=16;search.top_k=20;search.keep=20")
    assert luigi.build([Evaluate(dataset="folder", overrides=ov)], local_scheduler=True,
                       workers=args.workers, log_level="WARNING")
    cfg = load_config("folder", ov)
    truth = json.loads((args.out / "truth.json").read_text())
    print(f"\nCopy-detection benchmark: {len(clips)} real source clips, {len(truth)} copies "
          f"({', '.join(sorted({t['attack'] for t in truth}))}), weights: {weights}\n")
    print("| model | segment max-F1 | PR-AUC | loc. acc. < 0.1 s | < 1 s | < 10 s | mAP | copies found |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for m in cfg.get("evaluate.models"):
        doc = json.loads((Layout(cfg).report_dir(m) / "report.json").read_text())
        x = doc["metrics"]
        print(f"| {m} | {x['segment_max_F1']:.3f} | {x['segment_PR_AUC']:.3f} | "
              f"{x['localisation_accuracy_below_0.1s']:.3f} | {x['localisation_accuracy_below_1s']:.3f} | "
              f"{x['localisation_accuracy_below_10s']:.3f} | {x['mAP']:.3f} | "
              f"{x['pairs_found']}/{x['ground_truth_pairs']} |")


if __name__ == "__main__":
    main()
