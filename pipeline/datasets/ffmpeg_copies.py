"""A copy corpus whose edits are made by ffmpeg filter graphs: an attack implementation independent of the
training augmentations (``extractors/frame/copy_attacks.py``) and of the numpy edits of
:func:`pipeline.datasets.generate.build_copy_dataset`.

Each copy video is one ffmpeg command: a lead-in of unrelated footage (clips *not* in the corpus, each
moment used once), one excerpt of a source under an edit, possibly a second excerpt of *another* source
(a multi-excerpt video), then a tail, at one size and rate, re-encoded.  The edits (:data:`EDITS`, one
per copy in turn) cover what real re-uploads do:

    pip          the source shrunk to 30-45 % of the width over a moving unrelated background
    inset        a small unrelated picture over the source (the source stays mostly visible)
    crop_mirror  a 65-85 % crop, mirrored
    letterbox    squeezed into bars
    overlay_ui   semi-transparent bars and boxes drawn over it (captions, logos)
    screen       a screen recording: shrunk into a grey window with a title bar, slightly keystoned,
                 at 24 fps, with sensor noise
    speed        played 25 % faster (the copy's span is 0.8 x the source's)
    framerate    resampled to 10 fps

plus one or two of (:data:`PHOTOMETRIC`): colour / contrast / gamma (``eq``), hue rotation, Gaussian blur,
noise, and a low bitrate.  Hard negatives: another moment of a copied source, only re-encoded (a copy of
the source, not of its other copies).  Ground truth in the VCDB format (``annotation/bench.txt``,
``truth.json``), as :func:`~pipeline.datasets.generate.build_copy_dataset` writes it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from pipeline.core.atomic import atomic_path
from pipeline.datasets.generate import write_copy_truth

EDITS = ("pip", "inset", "crop_mirror", "letterbox", "overlay_ui", "screen", "speed", "framerate")
PHOTOMETRIC = ("eq", "hue", "blur", "noise", "lowbitrate")
SIZE = (480, 272)  # output width, height
OUTPUT_RATE = 25  # frames per second of the copy videos
SPEED = 1.25


@dataclass(frozen=True)
class Clip:
    path: Path
    duration_s: float


def probe(path: Path) -> Clip:
    """A clip and its duration (container, else stream)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        dur = c.duration / 1e6 if c.duration else float(s.duration * s.time_base)
    return Clip(path, float(dur))


class Footage:
    """Unrelated material: every second of the filler clips used by one video only."""

    def __init__(self, clips: list[Clip]) -> None:
        self.clips, self.cursor, self.turn = clips, [0.0] * len(clips), 0

    def take(self, seconds: float) -> tuple[Path, float] | None:
        """An unused moment of ``seconds`` (clip, start), or None when none is left."""
        for _ in range(len(self.clips)):
            i = self.turn % len(self.clips)
            self.turn += 1
            if self.cursor[i] + seconds <= self.clips[i].duration_s - 0.2:
                start = self.cursor[i]
                self.cursor[i] += seconds
                return self.clips[i].path, start
        return None

    def need(self, seconds: float) -> tuple[Path, float]:
        got = self.take(seconds)
        if got is None:
            raise ValueError(f"the filler clips hold no {seconds:.0f} unused seconds any more (add filler clips)")
        return got


def edit_chain(edit: str, rng: np.random.Generator) -> str:
    """The ffmpeg filters of ``edit`` on the excerpt (``[src]``); ``pip`` / ``inset`` also read ``[other]``."""
    w, h = SIZE
    if edit == "pip":
        side = rng.uniform(0.30, 0.45)
        x, y = rng.uniform(0.05, 0.95 - side), rng.uniform(0.05, 0.95 - side)
        return (f"[src]scale={int(w * side) // 2 * 2}:{int(h * side) // 2 * 2}[small];"
                f"[other]scale={w}:{h}[bg];[bg][small]overlay={int(x * w)}:{int(y * h)}")
    if edit == "inset":
        side = rng.uniform(0.2, 0.3)
        return (f"[src]scale={w}:{h}[main];[other]scale={int(w * side) // 2 * 2}:{int(h * side) // 2 * 2}[small];"
                f"[main][small]overlay={int(w * (0.95 - side))}:{int(h * 0.05)}")
    pre = "[src]"
    if edit == "crop_mirror":
        k = rng.uniform(0.65, 0.85)
        return f"{pre}crop=iw*{k:.3f}:ih*{k:.3f}:iw*{rng.uniform(0, 1 - k):.3f}:ih*{rng.uniform(0, 1 - k):.3f},hflip"
    if edit == "letterbox":
        k = rng.uniform(0.55, 0.75)
        return f"{pre}scale={w}:{int(h * k) // 2 * 2},pad={w}:{h}:0:(oh-ih)/2:black"
    if edit == "overlay_ui":
        c1, c2 = (f"0x{rng.integers(0, 1 << 24):06x}" for _ in range(2))
        return (f"{pre}scale={w}:{h},drawbox=x=0:y=ih*0.82:w=iw:h=ih*0.18:color={c1}@0.75:t=fill,"
                f"drawbox=x=iw*0.04:y=iw*0.04:w=iw*0.16:h=ih*0.12:color={c2}@0.9:t=fill,"
                f"drawbox=x=iw*0.1:y=ih*0.86:w=iw*0.6:h=ih*0.04:color=white@0.8:t=fill")
    if edit == "screen":
        k = rng.uniform(0.6, 0.75)
        d = int(w * 0.03)
        return (f"{pre}scale={int(w * k) // 2 * 2}:{int(h * k) // 2 * 2},pad={w}:{h}:(ow-iw)/2:(oh-ih)/2+{d}:gray,"
                f"drawbox=x=0:y=0:w=iw:h={2 * d}:color=0x202020:t=fill,"
                f"perspective=x0={d}:y0=0:x1=W-{d // 2}:y1={d // 2}:x2=0:y2=H:x3=W:y3=H,fps=24,"
                f"noise=alls=8:allf=t")
    if edit == "speed":
        return f"{pre}setpts=PTS/{SPEED}"
    if edit == "framerate":
        return f"{pre}fps=10"
    raise ValueError(f"unknown edit {edit!r}")


def photometric_chain(kinds: list[str], rng: np.random.Generator) -> str:
    out = []
    for k in kinds:
        if k == "eq":
            out.append(f"eq=brightness={rng.uniform(-0.15, 0.15):.3f}:contrast={rng.uniform(0.7, 1.4):.3f}:"
                       f"saturation={rng.uniform(0.4, 1.6):.3f}:gamma={rng.uniform(0.7, 1.4):.3f}")
        elif k == "hue":
            out.append(f"hue=h={rng.uniform(30, 120):.1f}")
        elif k == "blur":
            out.append(f"gblur=sigma={rng.uniform(1.0, 2.5):.2f}")
        elif k == "noise":
            out.append(f"noise=alls={int(rng.integers(10, 25))}:allf=t")
    return ",".join(out)


def render(ffmpeg: str, out: Path, pieces: list[dict], crf: int) -> None:
    """One copy video: ``pieces`` in order, each ``{"path", "start", "length", "chain"?, "other"?}``;
    written through a temporary path."""
    w, h = SIZE
    args: list[str] = []
    graph: list[str] = []
    labels: list[str] = []
    n_in = 0

    def add(path: Path | None, start: float, length: float) -> int:
        """An input: a moment of a file, or (``path`` None) ffmpeg's moving Mandelbrot pattern."""
        nonlocal n_in
        if path is None:
            pattern = f"mandelbrot=s={w}x{h}:r={OUTPUT_RATE}:start_x={start}"
            args.extend(["-f", "lavfi", "-t", f"{length:.3f}", "-i", pattern])
        else:
            args.extend(["-ss", f"{start:.3f}", "-t", f"{length:.3f}", "-i", str(path)])
        n_in += 1
        return n_in - 1

    for k, p in enumerate(pieces):
        i = add(p["path"], p["start"], p["length"])
        # every piece lasts exactly what the ground truth says (a short input holds its last frame)
        shown = p.get("shown", p["length"])
        exact = (f"fps={OUTPUT_RATE},tpad=stop_mode=clone:stop_duration={shown:.3f},trim=duration={shown:.3f},"
                 f"setpts=PTS-STARTPTS,format=yuv420p[p{k}]")
        if "chain" not in p:
            graph.append(f"[{i}:v]scale={w}:{h},setsar=1,{exact}")
        else:
            feeds = f"[{i}:v]setpts=PTS-STARTPTS[src];"
            if "other" in p:
                j = add(p["other"][0], p["other"][1], p["length"])
                feeds += f"[{j}:v]setpts=PTS-STARTPTS[other];"
            post = f",{p['photometric']}" if p.get("photometric") else ""
            graph.append(f"{feeds}{p['chain']},scale={w}:{h},setsar=1{post},{exact}")
        labels.append(f"[p{k}]")
    graph.append(f"{''.join(labels)}concat=n={len(labels)}:v=1:a=0[out]")
    with atomic_path(out) as tmp:
        cmd = [ffmpeg, "-nostdin", "-loglevel", "error", "-y", *args, "-filter_complex", ";".join(graph),
               "-map", "[out]", "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-f", "mp4",
               str(tmp)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{out}: ffmpeg failed: {done.stderr.strip().splitlines()[-1:]}")


def build_ffmpeg_copy_dataset(sources: list[Path], fillers: list[Path], out: Path, n_copies: int, n_hard: int,
                              seed: int, ffmpeg: str) -> list[dict]:
    """Sources (linked into the corpus), ``n_copies`` copies under the edits of :data:`EDITS` in turn (every
    third one, when two sources allow it, holds a second excerpt of another source) and ``n_hard`` hard
    negatives, with the ground truth; see the module docstring."""
    rng = np.random.default_rng(seed)
    vdir = out / "videos" / "bench"
    vdir.mkdir(parents=True, exist_ok=True)
    srcs = [probe(p) for p in sources]
    footage = Footage([probe(p) for p in fillers])
    names = []
    for i, c in enumerate(srcs):
        names.append(f"src{i:02d}{c.path.suffix}")
        link = vdir / names[-1]
        if not link.exists():
            link.symlink_to(c.path.resolve())
    truth: list[dict] = []

    def excerpt(si: int, speed: bool, avoid: list[dict], length: int | None = None) -> tuple[float, int] | None:
        """A start and a length (s; drawn when not given) in source ``si``, outside the moments in ``avoid``."""
        dur = int(srcs[si].duration_s) - 1
        for _ in range(50):
            n = length or int(rng.integers(6, min(30, dur) + 1))
            n -= n % 5 if speed else 0
            start = int(rng.integers(0, max(1, dur - n)))
            clear = all(start + n <= a["source_start"] or start >= a["source_start"] + a["source_length"]
                        for a in avoid if a["source"] == names[si])
            if n >= 5 and clear:
                return float(start), n
        return None

    def make(name: str, parts: list[tuple[int, float, int]], edit: str, photometric: list[str]) -> None:
        pieces: list[dict] = []
        t = 0.0
        for k, (si, start, length) in enumerate(parts):
            lead = float(rng.integers(1, 4)) if k == 0 else float(rng.integers(1, 3))
            fp, f0 = footage.need(lead)
            pieces.append({"path": fp, "start": f0, "length": lead})
            t += lead
            piece = {"path": srcs[si].path, "start": start, "length": float(length),
                     "chain": edit_chain(edit, rng), "photometric": photometric_chain(photometric, rng)}
            if edit in ("pip", "inset"):
                # unrelated real footage behind / inside the picture while it lasts, then a moving pattern
                piece["other"] = footage.take(float(length)) or (None, float(rng.uniform(-1.5, -0.5)))
            pieces.append(piece)
            shown = length / SPEED if edit == "speed" else float(length)
            piece["shown"] = shown
            truth.append({"copy": name, "source": names[si], "attack": "+".join([edit, *photometric]),
                          "copy_start": t, "copy_length": shown, "source_start": start, "source_length": length,
                          "length": length})
            t += shown
        tail = float(rng.integers(1, 3))
        fp, f0 = footage.need(tail)
        pieces.append({"path": fp, "start": f0, "length": tail})
        render(ffmpeg, vdir / f"{name}.mp4", pieces, 38 if "lowbitrate" in photometric else 23)

    usable = [i for i, c in enumerate(srcs) if c.duration_s >= 12]  # shorter sources stay in the corpus only
    if not usable:
        raise ValueError("no source clip lasts 12 s or more")
    for k in range(n_copies):
        edit = EDITS[k % len(EDITS)]
        photometric = [str(x) for x in rng.choice(PHOTOMETRIC, int(rng.integers(1, 3)), replace=False)]
        si = usable[int(rng.integers(len(usable)))]
        parts = [(si, *excerpt(si, edit == "speed", []))]
        if k % 3 == 2 and len(usable) > 1:  # a second excerpt, of another source
            sj = usable[int((usable.index(si) + 1 + rng.integers(len(usable) - 1)) % len(usable))]
            parts.append((sj, *excerpt(sj, edit == "speed", [])))
        make(f"copy{k:02d}", parts, edit, photometric)
    for h in range(n_hard):  # a moment no copy shows, of a source that has one
        free = [(si, got) for si in rng.permutation(usable) if (got := excerpt(int(si), False, truth, 5))]
        if not free:
            raise ValueError(f"no source moment is left for hard negative {h + 1} of {n_hard}")
        si, (start, _) = free[0]
        make(f"hard{h:02d}", [(int(si), start, 5)], "framerate", ["lowbitrate"])
    write_copy_truth(out, truth)
    return truth
