"""Copy-detection benchmark on real footage under realistic, combined copy attacks.

    python benchmarks/copy_benchmark.py                      # clips of ../shared/videos
    python benchmarks/copy_benchmark.py --videos DIR --copies 24 --out bench_copy

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

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from pipeline.synthetic import hms, write_video  # noqa: E402

log = logging.getLogger("copy_benchmark")

GEOMETRIC = ["crop", "pad", "pip", "rescale", "fps", "overlay"]
PHOTOMETRIC = ["colour", "gamma", "blur", "noise", "overlay", "lowbitrate", "reencode"]
"""Every copy gets one geometric attack combined with one or two photometric ones (an overlay,
in either list, is drawn by :func:`geometric`)."""


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


def even(x: float) -> int:
    return max(2, int(x) // 2 * 2)


def geometric(kind: str, frames: list[np.ndarray], fps: float, other: Clip, rng) -> list[np.ndarray]:
    h, w = frames[0].shape[:2]
    if kind == "rescale":
        return [resize(f, even(w / 2), even(h / 2)) for f in frames]
    if kind == "crop":
        fy, fx = rng.uniform(0.08, 0.2, 2)
        y0, x0 = int(h * fy), int(w * fx)
        return [resize(f[y0:h - y0, x0:w - x0], w, h) for f in frames]
    if kind == "pad":  # letterbox or pillarbox bars
        if rng.random() < 0.5:
            nh, nw = even(h * rng.uniform(0.6, 0.8)), w
        else:
            nh, nw = h, even(w * rng.uniform(0.6, 0.8))
        y0, x0 = (h - nh) // 2, (w - nw) // 2
        out = []
        for f in frames:
            g = np.zeros_like(f)
            g[y0:y0 + nh, x0:x0 + nw] = resize(f, nw, nh)
            out.append(g)
        return out
    if kind == "pip":  # the copy shrunk into unrelated footage
        scale = rng.uniform(0.4, 0.6)
        sw, sh = even(w * scale), even(h * scale)
        y0, x0 = int(rng.integers(0, h - sh + 1)), int(rng.integers(0, w - sw + 1))
        out = []
        for i, f in enumerate(frames):
            bg = resize(at_time(other, (i / fps) % other.duration), w, h)
            bg[y0:y0 + sh, x0:x0 + sw] = resize(f, sw, sh)
            out.append(bg)
        return out
    if kind == "overlay":
        out = []
        for i, f in enumerate(frames):
            g = f.copy()
            g[h // 20:h // 20 + h // 8, w - w // 4:w - w // 20] = (255, 255, 255)  # a logo box
            x = int((i * 3) % w)
            g[h - h // 10:h - h // 20, max(0, x - w // 6):x] = (20, 20, 200)  # a moving ticker
            out.append(g)
        return out
    return frames  # fps: the frame times already changed


def photometric(kind: str, frames: list[np.ndarray], rng) -> list[np.ndarray]:
    if kind == "colour":
        gain, bias = rng.uniform(0.7, 1.3, 3), rng.uniform(-30, 30)
        return [np.clip(f.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8) for f in frames]
    if kind == "gamma":
        lut = (255 * (np.arange(256) / 255) ** rng.choice([0.5, 0.65, 1.6, 2.0])).astype(np.uint8)
        return [lut[f] for f in frames]
    if kind == "blur":  # box blur of k x k pixels (cumulative sums)
        k = int(rng.choice([3, 5]))

        def box(a: np.ndarray, axis: int) -> np.ndarray:
            pad = [(0, 0)] * a.ndim
            pad[axis] = (k // 2 + 1, k // 2)
            c = np.cumsum(np.pad(a, pad, mode="edge"), axis=axis)
            n = a.shape[axis]
            return (np.take(c, np.arange(k, k + n), axis=axis) - np.take(c, np.arange(n), axis=axis)) / k

        return [np.clip(box(box(f.astype(np.float32), 0), 1), 0, 255).astype(np.uint8) for f in frames]
    if kind == "noise":
        sd = rng.uniform(8, 20)
        return [np.clip(f + rng.normal(0, sd, f.shape), 0, 255).astype(np.uint8) for f in frames]
    return frames  # lowbitrate, reencode: applied by the encoder (overlay is drawn by geometric())


def excerpt(src: Clip, start: float, length: float, fps: float) -> list[np.ndarray]:
    return [at_time(src, t) for t in np.arange(round(length * fps)) / fps + start]


def filler(clip: Clip, seconds: int, fps: float, shape: tuple[int, int], rng) -> list[np.ndarray]:
    if seconds <= 0:
        return []
    t0 = rng.uniform(0, max(0.0, clip.duration - seconds))
    return [resize(at_time(clip, t0 + i / fps), shape[1], shape[0]) for i in range(round(seconds * fps))]


def build_dataset(clips: list[Path], fillers: list[Path], out: Path, n_copies: int, n_hard: int,
                  seed: int) -> list[dict]:
    """Sources (in the corpus); copies embedding one or two excerpts (6-40 s, as the source allows) of a
    source under one geometric attack combined with one or two photometric ones, among material from
    ``fillers`` (clips *not* in the corpus, so the only shared content is the annotated one); hard
    negatives: other moments of a copied source (a true copy of the source, not of its other copies)."""
    rng = np.random.default_rng(seed)
    vdir = out / "videos" / "bench"
    vdir.mkdir(parents=True, exist_ok=True)
    loaded = [load_clip(p) for p in clips]
    pool = [load_clip(p) for p in fillers] or loaded
    for i, c in enumerate(loaded):
        link = vdir / f"src{i:02d}{c.path.suffix}"
        if not link.exists():
            link.symlink_to(c.path.resolve())
    truth: list[dict] = []

    def make(name: str, si: int, spans: list[tuple[int, int]], attacks: list[str]) -> None:
        """A copy video: filler, excerpt, filler[, excerpt, filler] under ``attacks``."""
        src = loaded[si]
        fps = (12.5 if src.fps >= 20 else 30.0) if "fps" in attacks else src.fps
        other = pool[int(rng.integers(len(pool)))]
        shape = src.frames[0].shape[:2]
        if "rescale" in attacks:
            shape = (even(shape[0] / 2), even(shape[1] / 2))
        frames: list[np.ndarray] = []
        t = 0
        for k, (start, length) in enumerate(spans):
            lead = int(rng.integers(1, 6)) if k == 0 else int(rng.integers(2, 8))
            frames += filler(pool[int(rng.integers(len(pool)))], lead, fps, shape, rng)
            body = excerpt(src, start, length, fps)
            for a in attacks:
                body = geometric(a, body, fps, other, rng) if a in GEOMETRIC else photometric(a, body, rng)
            frames += [f if f.shape[:2] == shape else resize(f, shape[1], shape[0]) for f in body]
            truth.append({"copy": name, "source": f"src{si:02d}{src.path.suffix}", "attack": "+".join(attacks),
                          "copy_start": t + lead, "source_start": start, "length": length})
            t += lead + length
        frames += filler(pool[int(rng.integers(len(pool)))], int(rng.integers(0, 4)), fps, shape, rng)
        codec = "mpeg4" if "reencode" in attacks else "libx264"
        opts = {"crf": "42"} if "lowbitrate" in attacks else None
        write_video(vdir / f"{name}.mp4", frames, fps, codec, opts)

    for k in range(n_copies):
        si = int(rng.integers(len(loaded)))
        dur = int(loaded[si].duration)
        attacks = [GEOMETRIC[k % len(GEOMETRIC)]]
        attacks += [a for a in rng.choice(PHOTOMETRIC, int(rng.integers(1, 3)), replace=False) if a not in attacks]
        two = dur >= 16 and rng.random() < 0.4
        if two:  # two non-overlapping excerpts of the source, in source order or not
            half = dur // 2
            l1, l2 = (int(rng.integers(6, min(40, half - 1) + 1)) for _ in range(2))
            s1 = int(rng.integers(0, half - l1 + 1))
            s2 = int(rng.integers(half, dur - l2 + 1))
            spans = [(s1, l1), (s2, l2)] if rng.random() < 0.5 else [(s2, l2), (s1, l1)]
        else:
            length = int(min(rng.integers(6, 41), dur - 1))
            spans = [(int(rng.integers(0, max(1, dur - length))), length)]
        make(f"copy{k:02d}", si, spans, attacks)
    made = 0
    for si in (int(i) for i in rng.permutation(len(loaded))):  # sources with a free moment, until n_hard
        if made == n_hard:
            break
        used = [t for t in truth if t["source"].startswith(f"src{si:02d}")]
        length = 5
        free = [s0 for s0 in range(0, int(loaded[si].duration) - length)
                if all(s0 + length <= t["source_start"] or s0 >= t["source_start"] + t["length"] for t in used)]
        if free:
            make(f"hard{made:02d}", si, [(int(free[len(free) // 2]), length)], ["reencode"])
            made += 1
    lines = [f"{t['copy']}.mp4,{t['source']},{hms(t['copy_start'])},{hms(t['copy_start'] + t['length'])},"
             f"{hms(t['source_start'])},{hms(t['source_start'] + t['length'])}\n" for t in truth]
    # two copies of overlapping moments of one source are copies of each other
    for i, a in enumerate(truth):
        for b in truth[i + 1:]:
            o0 = max(a["source_start"], b["source_start"])
            o1 = min(a["source_start"] + a["length"], b["source_start"] + b["length"])
            if a["source"] == b["source"] and a["copy"] != b["copy"] and o1 > o0:
                a0, b0 = a["copy_start"] + o0 - a["source_start"], b["copy_start"] + o0 - b["source_start"]
                lines.append(f"{a['copy']}.mp4,{b['copy']}.mp4,{hms(a0)},{hms(a0 + o1 - o0)},"
                             f"{hms(b0)},{hms(b0 + o1 - o0)}\n")
    ann = out / "annotation"
    ann.mkdir(exist_ok=True)
    (ann / "bench.txt").write_text("".join(lines))
    (out / "truth.json").write_text(json.dumps(truth, indent=2))
    return truth


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
    ap.add_argument("--overrides", default="", help="extra config overrides 'key=value;...' for every run")
    ap.add_argument("--extractors", default="resnet34_rmac,selfsup,pdqf,mvlad,mvlad+bars",
                    help="comma-separated; '+bars' removes letterbox/pillarbox bars first")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    from extractors.resnet import WeightsNotFoundError, resolve_weights
    from pipeline import steps
    from pipeline.artifacts import read_pack
    from pipeline.config import load_config
    from pipeline.layout import Layout

    clips = sorted(p for p in args.videos.glob("*") if p.suffix.lower() in (".mp4", ".avi", ".mkv", ".mov"))
    if len(clips) < 2:
        raise SystemExit(f"need at least 2 clips in {args.videos}")
    clips = sorted(clips, key=lambda p: p.stat().st_size)
    sources, fillers = clips[: args.max_sources], clips[args.max_sources:]
    if not (args.out / "truth.json").is_file():
        log.warning("building the benchmark dataset in %s from %d clips (+%d filler clips, not in the corpus)",
                    args.out, len(sources), len(fillers))
        build_dataset(sources, fillers, args.out, args.copies, args.hard, args.seed)
    truth = json.loads((args.out / "truth.json").read_text())
    try:
        resolve_weights("imagenet", download=False)
        weights = "imagenet"
    except WeightsNotFoundError:
        weights = "random"
    rows = []
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
        steps.ensure_fitted(layout, show_progress=False)
        c1, t1 = cpu_seconds(), time.perf_counter()
        steps.build(layout, until="features", show_progress=False)
        c2, t2 = cpu_seconds(), time.perf_counter()
        video_s = sum(int(read_pack(layout.feature_shard_dir(i)).frame_counts.sum())
                      for i in range(layout.n_shards)) / 15.0
        for norm in ("none", "background"):
            for verify in ("none", "diagonal"):
                lay = Layout(load_config("folder", f"{ov};search.score_normalisation={norm};search.background=10;"
                                                   f"search.verify={verify}"))
                steps.build(lay, until="evaluate", show_progress=False)
                for m in lay.cfg.evaluate.models:
                    x = json.loads((lay.report_dir(m) / "report.json").read_text())["metrics"]
                    rows.append((variant, m, norm, verify, x, (c1 - c0) / video_s, (c2 - c1) / video_s,
                                 (t2 - t1) / video_s))
                    log.warning("%s %s norm=%s verify=%s: pair AP %.3f, detected offsets < 1 s %.3f", variant, m,
                                norm, verify, x["pair_AP"], x["detected_pairs_offset_within_1s"])
    n_videos = len(layout.videos)
    attacks = sorted({t["attack"] for t in truth})
    n_two = len(truth) - len({t["copy"] for t in truth})
    print(f"\nCopy-detection benchmark: {len(sources)} real source clips, {len(truth)} copied excerpts "
          f"({n_two} videos with two), attacks: {'; '.join(attacks)}; "
          f"{sum(t['copy'].startswith('hard') for t in truth)} hard negatives; "
          f"{n_videos} videos, {n_videos * (n_videos - 1) // 2} unordered pairs, CNN weights: {weights}\n")
    print("| extractor | model | score norm. | verify | pair AP | pair best F1 | true pairs in results | "
          "offset < 1 s | < 0.1 s | detected | detected offset < 1 s | < 0.1 s | segment max-F1 | "
          "fit CPU s / video s | extract CPU s / video s | extract wall s / video s |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for ex, m, norm, verify, x, fit, ext, wall in rows:
        print(f"| {ex} | {m} | {norm} | {verify} | {x['pair_AP']:.3f} | {x['pair_best_F1']:.3f} | "
              f"{x['pair_recall_in_results']:.3f} | "
              f"{x['found_pairs_offset_within_1s']:.3f} | {x['found_pairs_offset_within_0.1s']:.3f} | "
              f"{x['detected_pairs']} | {x['detected_pairs_offset_within_1s']:.3f} | "
              f"{x['detected_pairs_offset_within_0.1s']:.3f} | {x['segment_max_F1']:.3f} | "
              f"{fit:.3f} | {ext:.3f} | {wall:.3f} |")


if __name__ == "__main__":
    main()
