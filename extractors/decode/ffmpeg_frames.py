"""Frames exactly as Meta's ``tmk-hash-video`` reads them: an ``ffmpeg`` process scaling every frame
straight to 64x64 (ffmpeg's default bicubic) and resampling to 15 fps with ``-r 15`` (ffmpeg's
constant-frame-rate output: it duplicates and drops frames by its own rules and may add one or two
at the end), raw RGB on a pipe. Only this makes hashes that agree with Meta's: PyAV's frame choice
and scaler differ in details that move the features.

The ffmpeg program is the one named, else ``ffmpeg`` on ``PATH``, else the one shipped by the
``imageio-ffmpeg`` package (``pip install imageio-ffmpeg``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from extractors.decode.reader import DecodeError
from extractors.runtime.errors import VideoAlignError


class FFmpegMissingError(VideoAlignError):
    """No ffmpeg program to decode with."""


def find_ffmpeg(named: str | None = None) -> str:
    """The ffmpeg program to run (module docstring), or :class:`FFmpegMissingError`."""
    if named:
        found = shutil.which(named)
        if found is None:
            raise FFmpegMissingError(f"ffmpeg program {named!r} not found or not executable")
        return found
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg  # optional: ships an ffmpeg binary

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        raise FFmpegMissingError("the Meta-compatible TMK hash needs ffmpeg: install it (e.g. 'pip install "
                                 "imageio-ffmpeg', or the system's ffmpeg package) or name it with --ffmpeg") from None


def iter_ffmpeg_frames(path: str | os.PathLike, ffmpeg: str, size: int = 64, fps: int = 15,
                       chunk: int = 1024) -> Iterator[np.ndarray]:
    """Blocks of at most ``chunk`` ``(n, size, size, 3) uint8`` RGB frames of ``path`` at ``fps``, as
    ``ffmpeg -s size:size -r fps`` gives them (streamed: a long video is never held whole). A file
    ffmpeg cannot decode raises :class:`DecodeError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise DecodeError(path, "file not found")
    cmd = [ffmpeg, "-loglevel", "error", "-nostdin", "-i", str(path), "-s", f"{size}:{size}", "-an",
           "-f", "rawvideo", "-c:v", "rawvideo", "-pix_fmt", "rgb24", "-r", str(fps), "pipe:1"]
    frame = size * size * 3
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        try:
            assert proc.stdout is not None
            while True:
                data = proc.stdout.read(frame * chunk)
                if len(data) % frame:
                    proc.wait()
                    raise DecodeError(path, f"ffmpeg wrote {len(data) % frame} bytes of an incomplete frame")
                if data:
                    yield np.frombuffer(data, np.uint8).reshape(-1, size, size, 3)
                if len(data) < frame * chunk:
                    break
            rc = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if rc != 0:
            err.seek(0)
            lines = err.read().decode("utf-8", "replace").strip().splitlines()
            raise DecodeError(path, f"ffmpeg: {lines[-1] if lines else f'exit code {rc}'}")
