"""Synthetic video material: scenes with shot changes and moving shapes, copy attacks.

Used by the bundled demo (``python -m pipeline demo``) and by the tests; no
external footage is needed.  A "scene" is a deterministic function of
``(seed, time)``, so a copy can be rendered at any size or frame rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from pipeline.core.atomic import atomic_path, atomic_write_text


def scene_frame(t: float, width: int, height: int, seed: int, shot_s: float = 2.5) -> np.ndarray:
    """RGB ``(height, width, 3) uint8`` picture of scene ``seed`` at time ``t`` seconds.

    Every ``shot_s`` seconds the scene cuts to a new shot (new colours and
    shapes); within a shot, gratings drift and a square moves.
    """
    shot = int(t // shot_s)
    rng = np.random.default_rng([seed, shot])
    u = (t % shot_s) / shot_s
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    xx /= width
    yy /= height
    img = np.empty((height, width, 3), np.float32)
    base = rng.uniform(30, 220, 3)
    for c in range(3):
        fx, fy = rng.uniform(2, 12, 2)
        ph = rng.uniform(0, 2 * np.pi) + 2 * np.pi * u * rng.uniform(0.5, 2)
        img[..., c] = base[c] + 70 * np.sin(2 * np.pi * (fx * xx + fy * yy) + ph)
    for _ in range(3):
        cx = (rng.uniform(0.1, 0.9) + u * rng.uniform(-0.4, 0.4)) % 1.0
        cy = rng.uniform(0.15, 0.85)
        r = rng.uniform(0.08, 0.2)
        mask = (np.abs(xx - cx) < r * height / width) & (np.abs(yy - cy) < r)
        img[mask] = rng.uniform(0, 255, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Segment:
    """``duration`` seconds of scene ``seed`` starting at scene time ``start``."""

    seed: int
    start: float
    duration: float


def render(segments: list[Segment], fps: float, width: int, height: int,
           brightness: float = 0.0, contrast: float = 1.0) -> list[np.ndarray]:
    """Concatenate scene segments into frames at ``fps`` (optionally with a colour change)."""
    frames = []
    for seg in segments:
        n = round(seg.duration * fps)
        for i in range(n):
            img = scene_frame(seg.start + i / fps, width, height, seg.seed)
            if brightness or contrast != 1.0:
                img = np.clip((img.astype(np.float32) - 128) * contrast + 128 + brightness, 0, 255
                              ).astype(np.uint8)
            frames.append(img)
    return frames


CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi",
              ".flv": "flv"}
"""FFmpeg container of each video suffix :func:`write_video` writes."""


def reproducible_x264_params() -> str:
    """``x264-params`` that make libx264 give the same bitstream for the same frames on this CPU.

    The libx264 bundled with PyAV's wheels writes a different bitstream on each run on AVX-512 CPUs
    (measured: 6 distinct files out of 10 encodes of the same frames, with one thread too), while its AVX2
    kernels give one file every time.  On a CPU with AVX-512 the encoder is held to its AVX2 kernels, so
    that the videos :func:`write_video` generates (the demo, the tests' and the generator-made benchmarks'
    videos) are the same bytes on every run; elsewhere nothing is changed (``""``).  (``imageio-ffmpeg``'s
    ffmpeg, which makes the ffmpeg-edited copies, was measured deterministic as it is.)"""
    import torch

    return "asm=avx2" if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else ""


def write_video(path: str | Path, frames: list[np.ndarray], fps: float, codec: str = "libx264",
                options: dict[str, str] | None = None) -> Path:
    """Encode RGB frames (even width/height) to ``path`` (``options``: encoder options, e.g. ``crf``).

    Written to a temporary sibling and renamed: a killed writer never leaves a half-written video that a
    later index would pick up.  The container comes from the suffix (``.mp4``, ``.mkv``, ``.avi``, ...).
    The same frames give the same file on every run (libx264: :func:`reproducible_x264_params`)."""
    path = Path(path)
    fmt = CONTAINERS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown video suffix {path.suffix!r} (known: {', '.join(sorted(CONTAINERS))})")
    h, w = frames[0].shape[:2]
    opts = dict(options or {})
    params = reproducible_x264_params() if codec == "libx264" else ""
    if params:
        opts.setdefault("x264-params", params)
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format=fmt) as out:
        s = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if opts:
            s.options = opts
        for img in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def hms(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


@dataclass(frozen=True)
class PlantedCopy:
    """Query ``query`` shows ``source[source_start_s : +duration_s]`` from ``query_start_s`` on."""

    query: str
    source: str
    query_start_s: int
    source_start_s: int
    duration_s: int
    attack: str

    @property
    def offset_s(self) -> float:
        """Ground-truth ``t_query - t_source`` for corresponding content."""
        return float(self.query_start_s - self.source_start_s)


def make_demo_corpus(root: str | Path, n_sources: int = 5, n_copies: int = 4, n_distractors: int = 2,
                     source_s: int = 20, copy_s: int = 8, seed: int = 7) -> list[PlantedCopy]:
    """Write ``<root>/videos/demo/*.mp4`` and ``<root>/annotation/demo.txt`` (VCDB format)."""
    root = Path(root)
    vdir = root / "videos" / "demo"
    rng = np.random.default_rng(seed)
    rates = [25.0, 30.0, 24.0, 29.97, 15.0]
    for i in range(n_sources):
        fps = rates[i % len(rates)]
        write_video(vdir / f"src{i:02d}.mp4", render([Segment(100 + i, 0.0, source_s)], fps, 320, 180), fps)
    for i in range(n_distractors):
        write_video(vdir / f"other{i:02d}.mp4", render([Segment(500 + i, 0.0, 12)], 25.0, 320, 180), 25.0)
    attacks = [("rescaled 0.5x, 30 fps, MPEG-4", 160, 90, 30.0, "mpeg4", 0.0, 1.0),
               ("brighter and contrasted, 25 fps", 320, 180, 25.0, "libx264", 30.0, 1.2),
               ("upscaled 1.5x, 24 fps", 480, 270, 24.0, "libx264", 0.0, 1.0),
               ("darker, 15 fps, MPEG-4", 320, 180, 15.0, "mpeg4", -25.0, 0.9)]
    copies = []
    for i in range(n_copies):
        src = i % n_sources
        name, w, h, fps, codec, br, ct = attacks[i % len(attacks)]
        lead = int(rng.integers(1, 5))
        start = int(rng.integers(0, source_s - copy_s))
        tail = int(rng.integers(0, 3))
        segs = [Segment(900 + i, 0.0, lead), Segment(100 + src, float(start), copy_s)]
        if tail:
            segs.append(Segment(950 + i, 0.0, tail))
        write_video(vdir / f"copy{i:02d}.mp4", render(segs, fps, w, h, br, ct), fps, codec)
        copies.append(PlantedCopy(f"demo/copy{i:02d}", f"demo/src{src:02d}", lead, start, copy_s, name))
    ann = root / "annotation"
    ann.mkdir(parents=True, exist_ok=True)
    lines = [f"{c.query.split('/')[1]}.mp4,{c.source.split('/')[1]}.mp4,{hms(c.query_start_s)},"
             f"{hms(c.query_start_s + c.duration_s)},{hms(c.source_start_s)},"
             f"{hms(c.source_start_s + c.duration_s)}" for c in copies]
    atomic_write_text(ann / "demo.txt", "\n".join(lines) + "\n")
    return copies


DEMO_MARKER = "annotation/demo.txt"
"""Written last by :func:`make_demo_corpus`: the demo corpus is complete when it exists."""


def ensure_demo_corpus(root: str | Path, regenerate: bool = False) -> bool:
    """Generate the demo corpus under ``root`` unless it is complete; True when it was generated."""
    import logging
    import shutil

    root = Path(root)
    if regenerate and root.exists():
        shutil.rmtree(root)
    if (root / DEMO_MARKER).is_file():
        return False
    logging.getLogger(__name__).info("generating the demo corpus in %s", root)
    make_demo_corpus(root)
    return True
