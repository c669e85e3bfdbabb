"""Meta-compatible TMK+PDQF hashes: ``python -m pipeline tmk hash | score``.

``hash_video`` makes the hash ``tmk-hash-video`` makes (ffmpeg frames at 64x64 and 15 fps, PDQ's
float feature, Meta's four periods and 32 harmonics) and writes it as a ``.tmk`` file Meta's tools
read; ``score_files`` gives ``tmk-two-level-score``'s two levels for two files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from extractors.decode.ffmpeg_frames import find_ffmpeg, iter_ffmpeg_frames
from extractors.frame.pdq import pdq_float256
from index.meta_tmk import IncompatibleHashError, MetaTMKHash, level1, level2, meta_hash
from pipeline.store.tmk_files import TMKFileError, read_tmk, write_tmk


def hash_video(video: Path, ffmpeg: str | None = None) -> MetaTMKHash:
    """The Meta TMK+PDQF hash of ``video``."""
    exe = find_ffmpeg(ffmpeg)
    blocks = [pdq_float256(frames) for frames in iter_ffmpeg_frames(video, exe)]
    feats = np.concatenate(blocks) if blocks else np.zeros((0, 256), np.float32)
    return meta_hash(feats)


def hash_to_file(video: Path, out: Path, ffmpeg: str | None = None) -> dict:
    h = hash_video(video, ffmpeg)
    write_tmk(out, h)
    return {"video": str(video), "tmk": str(out), "frames": h.frame_count, "fps": h.fps,
            "periods": h.periods.tolist(), "harmonics": len(h.coefficients), "dimension": h.dimension}


def score_files(a: Path, b: Path) -> dict:
    """``{"level1", "level2"}`` of two ``.tmk`` files, as ``tmk-two-level-score`` computes them."""
    ha, hb = read_tmk(a), read_tmk(b)
    try:
        return {"level1": level1(ha, hb), "level2": level2(ha, hb)}
    except IncompatibleHashError as exc:
        raise TMKFileError(f"{a} and {b} cannot be compared: {exc}") from None
