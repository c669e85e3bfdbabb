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
from pipeline.store.tmk_files import TMKFileError, read_tmk, read_tmk_average, write_tmk


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


LEVEL1_THRESHOLD = 0.7
LEVEL2_THRESHOLD = 0.7
"""Meta's defaults (``tmk_default_thresholds.h``)."""


def query_folder(query: Path, corpus: Path, c1: float = LEVEL1_THRESHOLD, c2: float = LEVEL2_THRESHOLD,
                 ffmpeg: str | None = None) -> dict:
    """Search a folder of ``.tmk`` files (hashes made here or received from elsewhere) for copies of
    ``query`` (a ``.tmk`` file or a video, hashed first), as Meta's ``tmk-query`` does: every hash whose
    level-1 score reaches ``c1`` is scored at level 2 and kept when that reaches ``c2``; best first.
    Files of the folder that are not valid hashes are reported (``skipped``) and the rest searched."""
    import logging

    log = logging.getLogger("pipeline")
    q = read_tmk(query) if query.suffix == ".tmk" else hash_video(query, ffmpeg)
    if not corpus.is_dir():
        raise TMKFileError(f"{corpus}: not a folder of .tmk files")
    files = sorted(p for p in corpus.rglob("*.tmk") if p.is_file())
    heads, skipped = [], []
    for p in files:
        try:
            heads.append((p, read_tmk_average(p)))
        except TMKFileError as exc:
            log.warning("%s", exc)
            skipped.append(str(exc))
    same = [(p, h) for p, h in heads if h.dimension == q.dimension and h.algorithm == q.algorithm]
    avgs = np.stack([h.pure_average for _, h in same]) if same else np.zeros((0, q.dimension), np.float32)
    norms = np.linalg.norm(avgs, axis=1) * np.linalg.norm(q.pure_average)
    l1 = np.divide(avgs @ q.pure_average, norms, out=np.zeros(len(same)), where=norms > 0)
    matches = []
    for i in np.flatnonzero(l1 >= c1):  # few: the level-2 stage reads these hashes in full
        p = same[int(i)][0]
        try:
            full = read_tmk(p)
            s2 = level2(q, full)
        except (TMKFileError, IncompatibleHashError) as exc:
            log.warning("%s: %s", p, exc)
            skipped.append(f"{p}: {exc}")
            continue
        if s2 >= c2:
            matches.append({"tmk": str(p), "level1": float(l1[i]), "level2": s2})
    matches.sort(key=lambda m: (-m["level2"], -m["level1"], m["tmk"]))
    return {"query": str(query), "corpus": str(corpus), "hashes": len(heads), "c1": c1, "c2": c2,
            "matches": matches, "skipped": skipped}
