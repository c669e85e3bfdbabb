"""Generated datasets from any folder of videos: copies and multi-camera alignments with exact truth.

Two kinds, both ordinary datasets of this pipeline (videos + a ground-truth file), so they are
indexed, searched, evaluated and used for training like any other:

* **copies** (:func:`build_copy_dataset`, VCDB annotation format ``annotation/bench.txt``): copy
  videos embedding one or two excerpts of a source under one geometric attack combined with one or
  two photometric ones, among unrelated material, plus hard negatives.  Config: ``dataset.kind: vcdb``.
* **align** (:func:`build_align_dataset`, ``.align`` format ``gt_align.align``): for every source,
  several "cameras" recording overlapping excerpts of it, each with its own crop / letterbox /
  picture-in-picture / rescale, colours, noise and frame rate; every video's place on a global
  timeline gives every overlapping pair and its exact offset (the LAMV paper's synthetic training
  data, and an alignment benchmark like Climbing/Madonna).  Config: ``dataset.kind: align``,
  ``dataset.gt_file: gt_align.align``.

CLI: ``python -m pipeline generate {copies,align} --source DIR --out DIR``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from pipeline.core.atomic import atomic_write_text
from pipeline.core.errors import StepError
from pipeline.datasets.synthetic import Segment, hms, render, write_video

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv", ".m4v")

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


def geometric(kind: str, frames: list[np.ndarray], fps: float, other: Clip | None, rng) -> list[np.ndarray]:
    """``frames`` under the geometric attack ``kind``; ``other`` is the background of ``pip``."""
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
        if other is None:
            raise StepError("picture-in-picture needs background footage")
        scale = rng.uniform(0.4, 0.6)
        sw, sh = even(w * scale), even(h * scale)
        y0, x0 = int(rng.integers(0, h - sh + 1)), int(rng.integers(0, w - sw + 1))
        out = []
        for i, f in enumerate(frames):
            bg = resize(at_time_looped(other, i / fps), w, h)
            bg[y0:y0 + sh, x0:x0 + sw] = resize(f, sw, sh)
            out.append(bg)
        return out
    if kind == "view":  # a camera's own viewpoint: a window of 40-65 % of each side, panning across the scene
        scale = rng.uniform(0.4, 0.65)
        sw, sh = max(2, int(w * scale)), max(2, int(h * scale))
        (x_a, x_b), (y_a, y_b) = rng.uniform(0, w - sw, 2), rng.uniform(0, h - sh, 2)
        t = np.linspace(0.0, 1.0, len(frames))
        xs, ys = np.rint(x_a + (x_b - x_a) * t).astype(int), np.rint(y_a + (y_b - y_a) * t).astype(int)
        return [resize(f[y:y + sh, x:x + sw], w, h) for f, x, y in zip(frames, xs, ys, strict=True)]
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


class UnrelatedFootage:
    """Footage of clips outside a generated dataset's sources, each moment handed out once.

    Two generated videos showing the same moment of a filler (around copies, behind a picture-in-picture
    inset) would be an unannotated copy of each other, and a source's footage one of its copies: so
    :meth:`take` gives a span of a clip that no earlier call gave (of ``seconds`` when one is free, else
    the longest free span of at least :attr:`MIN_S`, looped by :func:`at_time_looped`), and rendered
    synthetic scenes, one per call, once the clips are used up."""

    MIN_S = 1.0

    def __init__(self, clips: list[Clip], seed: int) -> None:
        self.clips = list(clips)
        self.used: list[list[tuple[float, float]]] = [[] for _ in self.clips]
        self.rendered = 0
        self.seed = seed

    def _gaps(self, k: int) -> list[tuple[float, float]]:
        """Free spans of clip ``k``."""
        gaps, t = [], 0.0
        for a, b in sorted(self.used[k]):
            if a > t:
                gaps.append((t, a))
            t = max(t, b)
        if self.clips[k].duration > t:
            gaps.append((t, self.clips[k].duration))
        return gaps

    def take(self, seconds: float, rng) -> Clip:
        gaps = [(k, a, b) for k in range(len(self.clips)) for a, b in self._gaps(k) if b - a >= self.MIN_S]
        whole = [g for g in gaps if g[2] - g[1] >= seconds]
        if whole:
            k, a, b = whole[int(rng.integers(len(whole)))]
            t0 = float(rng.uniform(a, b - seconds))
            t1 = t0 + seconds
        elif gaps:
            k, t0, t1 = max(gaps, key=lambda g: g[2] - g[1])
        else:
            self.rendered += 1
            if self.rendered == 1:
                log.warning("unrelated footage used up: rendering synthetic scenes")
            scene = 10_000 * (self.seed + 1) + self.rendered
            frames = render([Segment(scene, 0.0, max(seconds, self.MIN_S))], 10.0, 320, 240)
            return Clip(Path(f"synthetic-scene-{scene}"), frames, 10.0)
        self.used[k].append((t0, t1))
        c = self.clips[k]
        first, last = int(t0 * c.fps), max(int(t0 * c.fps) + 1, int(t1 * c.fps))
        return Clip(c.path, c.frames[first:last], c.fps)


def at_time_looped(clip: Clip, t: float) -> np.ndarray:
    return at_time(clip, t % clip.duration)


def filler(footage: UnrelatedFootage, seconds: int, fps: float, shape: tuple[int, int], rng) -> list[np.ndarray]:
    """``seconds`` of unrelated footage at ``fps``, resized to ``shape``."""
    if seconds <= 0:
        return []
    clip = footage.take(seconds, rng)
    return [resize(at_time_looped(clip, i / fps), shape[1], shape[0]) for i in range(round(seconds * fps))]


def build_copy_dataset(clips: list[Path], fillers: list[Path], out: Path, n_copies: int, n_hard: int,
                  seed: int) -> list[dict]:
    """Sources (in the corpus); copies embedding one or two excerpts (6-40 s, as the source allows) of a
    source under one geometric attack combined with one or two photometric ones, among material from
    ``fillers`` (clips *not* in the corpus, each moment used by one video only: ``UnrelatedFootage``, so
    the only shared content is the annotated one); hard negatives: other moments of a copied source (a
    true copy of the source, not of its other copies)."""
    rng = np.random.default_rng(seed)
    vdir = out / "videos" / "bench"
    vdir.mkdir(parents=True, exist_ok=True)
    loaded = [load_clip(p) for p in clips]
    footage = UnrelatedFootage([load_clip(p) for p in fillers], seed)
    for i, c in enumerate(loaded):
        link = vdir / f"src{i:02d}{c.path.suffix}"
        if not link.exists():
            link.symlink_to(c.path.resolve())
    truth: list[dict] = []

    def make(name: str, si: int, spans: list[tuple[int, int]], attacks: list[str]) -> None:
        """A copy video: filler, excerpt, filler[, excerpt, filler] under ``attacks``."""
        src = loaded[si]
        fps = (12.5 if src.fps >= 20 else 30.0) if "fps" in attacks else src.fps
        shape = src.frames[0].shape[:2]
        if "rescale" in attacks:
            shape = (even(shape[0] / 2), even(shape[1] / 2))
        frames: list[np.ndarray] = []
        t = 0
        for k, (start, length) in enumerate(spans):
            lead = int(rng.integers(1, 6)) if k == 0 else int(rng.integers(2, 8))
            frames += filler(footage, lead, fps, shape, rng)
            body = excerpt(src, start, length, fps)
            for a in attacks:
                if a in GEOMETRIC:
                    host = footage.take(len(body) / fps, rng) if a == "pip" else None
                    body = geometric(a, body, fps, host, rng)
                else:
                    body = photometric(a, body, rng)
            frames += [f if f.shape[:2] == shape else resize(f, shape[1], shape[0]) for f in body]
            truth.append({"copy": name, "source": f"src{si:02d}{src.path.suffix}", "attack": "+".join(attacks),
                          "copy_start": t + lead, "source_start": start, "length": length})
            t += lead + length
        frames += filler(footage, int(rng.integers(0, 4)), fps, shape, rng)
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
    write_copy_truth(out, truth)
    return truth


def write_copy_truth(out: Path, truth: list[dict]) -> None:
    """A copy corpus's ground truth: ``truth.json`` and the VCDB-format ``annotation/bench.txt`` (each
    copied excerpt against its source, and two copies of overlapping moments of one source against each
    other).  An entry spans ``copy_length`` seconds of the copy for ``source_length`` of the source (both
    ``length`` when it has no speed change)."""
    def spans(t: dict) -> tuple[float, float]:
        return t.get("copy_length", t["length"]), t.get("source_length", t["length"])

    lines = []
    for t in truth:
        c, s = spans(t)
        lines.append(f"{t['copy']}.mp4,{t['source']},{hms(t['copy_start'])},{hms(t['copy_start'] + c)},"
                     f"{hms(t['source_start'])},{hms(t['source_start'] + s)}\n")
    for i, a in enumerate(truth):
        for b in truth[i + 1:]:
            (ca, sa), (cb, sb) = spans(a), spans(b)
            o0 = max(a["source_start"], b["source_start"])
            o1 = min(a["source_start"] + sa, b["source_start"] + sb)
            if a["source"] == b["source"] and a["copy"] != b["copy"] and o1 > o0:
                ra, rb = ca / sa, cb / sb
                a0 = a["copy_start"] + (o0 - a["source_start"]) * ra
                b0 = b["copy_start"] + (o0 - b["source_start"]) * rb
                lines.append(f"{a['copy']}.mp4,{b['copy']}.mp4,{hms(a0)},{hms(a0 + (o1 - o0) * ra)},"
                             f"{hms(b0)},{hms(b0 + (o1 - o0) * rb)}\n")
    ann = out / "annotation"
    ann.mkdir(exist_ok=True)
    atomic_write_text(ann / "bench.txt", "".join(lines))
    atomic_write_text(out / "truth.json", json.dumps(truth, indent=2))


ALIGN_GEOMETRIC = ["none", "crop", "pad", "pip", "rescale", "overlay"]
ALIGN_PHOTOMETRIC = ["colour", "gamma", "blur", "noise", "lowbitrate", "reencode"]
ALIGN_FPS = (12.5, 15.0, 24.0, 25.0, 30.0)
ALIGN_GT_FILE = "gt_align.align"
SOURCE_SPACING_S = 10_000.0
"""Global-timeline distance between two sources' recordings (they never overlap)."""


@dataclass(frozen=True)
class CameraRecording:
    """One generated video: ``source[start_s : start_s + length_s]`` seen by one "camera"."""

    name: str
    source: str
    start_s: float
    length_s: float
    fps: float
    attacks: str
    global_s: float

    def align_line(self) -> str:
        return f"align/{self.name}.mp4 0 {self.length_s:.4f} {self.global_s:.4f}\n"


def build_align_dataset(clips: list[Path], out: Path, cameras: int = 5, seed: int = 0,
                        min_source_s: float = 20.0, max_length_s: float = 45.0,
                        views: bool = False) -> list[CameraRecording]:
    """Multi-camera-like recordings of every clip at least ``min_source_s`` long: ``cameras`` overlapping
    excerpts (45-80 % of the clip, at most ``max_length_s``), each under its own geometric attack (or
    none), one photometric attack and frame rate.  With ``views`` every camera instead sees its own
    viewpoint: a window of 40-65 % of each side of the picture, at its own place and panning (``view``),
    so two cameras share only part of the scene, as real cameras at one event do.  Picture-in-picture
    backgrounds come from the shorter
    clips or rendered scenes, never from a source nor shared by two recordings (``UnrelatedFootage``), so the
    only footage two recordings share is the annotated overlap.
    Writes ``videos/align/*.mp4``, ``gt_align.align`` (source ``k`` on the global timeline from
    ``k * 10000 s``) and ``truth.json``."""
    rng = np.random.default_rng(seed)
    vdir = out / "videos" / "align"
    vdir.mkdir(parents=True, exist_ok=True)
    every = [load_clip(p) for p in clips]
    loaded = [c for c in every if c.duration >= min_source_s]
    if not loaded:
        raise StepError(f"no clip of at least {min_source_s:g} s among {len(clips)}")
    hosts = UnrelatedFootage([c for c in every if c.duration < min_source_s], seed)
    recordings: list[CameraRecording] = []
    for si, src in enumerate(loaded):
        for ci in range(cameras):
            length = float(min(max_length_s, rng.uniform(0.45, 0.8) * src.duration))
            start = float(rng.uniform(0.0, src.duration - length))
            fps = float(rng.choice(ALIGN_FPS))
            geo = "view" if views else str(rng.choice(ALIGN_GEOMETRIC))
            photo = str(rng.choice(ALIGN_PHOTOMETRIC))
            body = excerpt(src, start, length, fps)
            if geo != "none":
                body = geometric(geo, body, fps, hosts.take(length, rng) if geo == "pip" else None, rng)
            body = photometric(photo, body, rng)
            name = f"s{si:02d}_cam{ci}"
            codec = "mpeg4" if photo == "reencode" else "libx264"
            write_video(vdir / f"{name}.mp4", body, fps, codec, {"crf": "42"} if photo == "lowbitrate" else None)
            recordings.append(CameraRecording(name, src.path.name, start, len(body) / fps, fps,
                                              f"{geo}+{photo}", SOURCE_SPACING_S * (si + 1) + start))
    atomic_write_text(out / ALIGN_GT_FILE, "".join(r.align_line() for r in recordings))
    atomic_write_text(out / "truth.json", json.dumps([r.__dict__ for r in recordings], indent=2))
    log.info("%s: %d recordings of %d sources", out, len(recordings), len(loaded))
    return recordings


def video_clips(folder: Path) -> list[Path]:
    """The videos directly in ``folder`` (sorted by size, smallest first), refused when fewer than two."""
    clips = sorted((p for p in Path(folder).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES),
                   key=lambda p: (p.stat().st_size, p.name))
    if len(clips) < 2:
        raise StepError(f"{folder}: need at least 2 videos to generate a dataset, found {len(clips)}")
    return clips
