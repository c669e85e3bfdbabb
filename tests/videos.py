"""Small videos generated with PyAV for the tests (no external footage needed)."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def pattern_frame(i: int, w: int, h: int, seed: int = 0, fps: float = 25.0) -> np.ndarray:
    """A moving, content-rich RGB frame at time ``i / fps`` (a video "scene" given by ``seed``)."""
    rng = np.random.default_rng(seed)
    t = i / fps
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        fx, fy = rng.uniform(0.02, 0.15), rng.uniform(0.02, 0.15)
        ph, sp = rng.uniform(0, 6), rng.uniform(1, 4)
        img[..., c] = 127 + 100 * np.sin(fx * xx + fy * yy + ph + sp * t)
    # a bright square that moves across the frame
    cx = int((0.1 + 0.8 * ((t * 0.2 + rng.uniform()) % 1.0)) * w)
    cy = int((0.2 + 0.6 * rng.uniform()) * h)
    r = max(2, min(w, h) // 8)
    img[max(0, cy - r):cy + r, max(0, cx - r):cx + r] = rng.uniform(0, 255, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_video(path: str | Path, fps: float = 25.0, n_frames: int = 50, width: int = 160,
               height: int = 90, seed: int = 0, codec: str = "libx264",
               times: np.ndarray | None = None, frames: list[np.ndarray] | None = None,
               start_pts: int = 0, faststart: bool = False) -> Path:
    """Encode a clip; ``times`` (seconds) makes a variable-frame-rate stream."""
    path = Path(path)
    out = av.open(str(path), "w", options={"movflags": "faststart"} if faststart else None)
    s = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
    s.width, s.height, s.pix_fmt = width, height, "yuv420p"
    tb = Fraction(1, 90000)
    s.time_base = tb
    if times is not None:
        s.codec_context.max_b_frames = 0  # irregular pts: keep dts == pts
        s.codec_context.time_base = tb  # do not round pts to the nominal rate
    count = len(frames) if frames is not None else (len(times) if times is not None else n_frames)
    for i in range(count):
        img = frames[i] if frames is not None else pattern_frame(i, width, height, seed, fps)
        f = av.VideoFrame.from_ndarray(img, format="rgb24")
        t = float(times[i]) if times is not None else i / fps
        f.pts = start_pts + round(t / tb)
        f.time_base = tb
        for p in s.encode(f):
            out.mux(p)
    for p in s.encode():
        out.mux(p)
    out.close()
    return path


def set_rotation(path: str | Path, degrees: int) -> None:
    """Write a display matrix rotating the picture ``degrees`` clockwise into the mp4 ``tkhd``."""
    data = bytearray(Path(path).read_bytes())
    pos = data.find(b"tkhd")
    assert pos > 0, "no tkhd box"
    version = data[pos + 4]
    off = pos + 4 + (52 if version == 1 else 40)
    one, fixed30 = 1 << 16, 1 << 30
    mats = {0: (one, 0, 0, 0, one, 0, 0, 0, fixed30),
            90: (0, one, 0, -one, 0, 0, 0, 0, fixed30),
            180: (-one, 0, 0, 0, -one, 0, 0, 0, fixed30),
            270: (0, -one, 0, one, 0, 0, 0, 0, fixed30)}
    data[off:off + 36] = struct.pack(">9i", *mats[degrees % 360])
    Path(path).write_bytes(bytes(data))


def write_audio_only(path: str | Path) -> Path:
    """An AAC-only MP4 (no video stream)."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("aac", rate=44100)
        for i in range(20):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            f.sample_rate, f.pts = 44100, i * 1024
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return Path(path)


def write_image(path: str | Path, width: int = 64, height: int = 48) -> Path:
    """A PNG picture (whatever the file name says)."""
    with av.open(str(path), "w", format="image2pipe") as out:
        s = out.add_stream("png", rate=1)
        s.width, s.height, s.pix_fmt = width, height, "rgb24"
        for p in s.encode(av.VideoFrame.from_ndarray(pattern_frame(0, width, height), format="rgb24")):
            out.mux(p)
    return Path(path)
