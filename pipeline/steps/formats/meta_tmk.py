"""Meta-compatible TMK+PDQF hashes: ``python -m pipeline tmk hash | score``.

``hash_video`` makes the hash ``tmk-hash-video`` makes (ffmpeg frames at 64x64 and 15 fps, PDQ's
float feature, Meta's four periods and 32 harmonics) and writes it as a ``.tmk`` file Meta's tools
read; ``score_files`` gives ``tmk-two-level-score``'s two levels for two files.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import numpy as np

from extractors.decode.ffmpeg_frames import find_ffmpeg, iter_ffmpeg_frames
from extractors.frame.pdq import pdq_float256
from index.faiss_index import VideoIndex
from index.meta_tmk import IncompatibleHashError, MetaTMKHash, level1, level2, meta_hash
from pipeline.core.atomic import atomic_write_text
from pipeline.steps.index import make_index, search_params
from pipeline.store.layout import Layout
from pipeline.store.tmk_files import TMKFileError, read_tmk, read_tmk_average, write_tmk

log = logging.getLogger("pipeline")


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


def average_or_skip(path: Path, skipped: list[str], problem: str = "") -> MetaTMKHash | None:
    """``path``'s header and mean frame (:func:`read_tmk_average`); a file that is not a valid hash (or
    whose listing found a ``problem``) is logged, added to ``skipped`` in one line, and gives ``None``."""
    try:
        if problem:
            raise TMKFileError(f"{path}: {problem}")
        return read_tmk_average(path)
    except TMKFileError as exc:
        log.warning("%s", exc)
        skipped.append(str(exc))
        return None


LEVEL1_THRESHOLD = 0.7
LEVEL2_THRESHOLD = 0.7
"""Meta's defaults (``tmk_default_thresholds.h``)."""


def query_folder(query: Path, corpus: Path, c1: float = LEVEL1_THRESHOLD, c2: float = LEVEL2_THRESHOLD,
                 ffmpeg: str | None = None) -> dict:
    """Search a folder of ``.tmk`` files (hashes made here or received from elsewhere) for copies of
    ``query`` (a ``.tmk`` file or a video, hashed first), as Meta's ``tmk-query`` does: every hash whose
    level-1 score reaches ``c1`` is scored at level 2 and kept when that reaches ``c2``; best first.
    Files of the folder that are not valid hashes are reported (``skipped``) and the rest searched."""
    q = read_tmk(query) if query.suffix == ".tmk" else hash_video(query, ffmpeg)
    if not corpus.is_dir():
        raise TMKFileError(f"{corpus}: not a folder of .tmk files")
    files = sorted(p for p in corpus.rglob("*.tmk") if p.is_file())
    skipped: list[str] = []
    heads = [(p, h) for p in files if (h := average_or_skip(p, skipped)) is not None]
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


MATCH_FIELDS = ["hash_a", "hash_b", "level1", "level2"]


def search_hash_corpus(layout: Layout) -> Path:
    """``dataset.kind: tmk``: every pair of the corpus's Meta TMK hashes that Meta's ``tmk-query`` would
    report (level 1 >= ``hashes.level1``, then level 2 >= ``hashes.level2``), found through a FAISS index
    (``index.factory``) over the unit-norm mean frames (their inner product is level 1), each unordered
    pair once, best first. Writes ``matches.csv`` (``hash_a,hash_b,level1,level2``; ids are the files'
    paths under the corpus folder without ``.tmk``) and ``summary.json`` (counts, the factory, the
    files that are not valid hashes) into ``layout.hash_search_dir()``; returns that folder."""

    cfg = layout.cfg
    hs = cfg.hashes
    heads: dict[str, MetaTMKHash] = {}
    paths: dict[str, Path] = {}
    skipped: list[str] = []
    for v in layout.videos:
        h = average_or_skip(Path(v.path), skipped, v.problem)
        if h is not None:
            heads[v.id], paths[v.id] = h, Path(v.path)
    groups: dict[tuple, list[str]] = {}
    for vid, h in heads.items():  # only hashes of one kind are compared (Meta refuses the others)
        groups.setdefault((h.algorithm, h.fps, h.dimension, tuple(h.periods.tolist())), []).append(vid)
    rows: list[tuple[str, str, float, float]] = []
    factories = []
    full: dict[str, MetaTMKHash] = {}

    def hash_of(vid: str) -> MetaTMKHash:
        if vid not in full:
            full[vid] = read_tmk(paths[vid])
        return full[vid]

    for ids in groups.values():
        x = np.stack([heads[v].pure_average for v in ids]).astype(np.float32)
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
        index, factory = make_index(cfg.index, x)
        factories.append(factory)
        scores, names = VideoIndex(index, ids).search(x, hs.top_k + 1, search_params(cfg.index))
        for a, row_scores, row_names in zip(ids, scores, names, strict=True):
            for s1, b in zip(row_scores.tolist(), row_names, strict=False):
                if b <= a or s1 < hs.level1:  # each unordered pair once (from its first hash), above c1
                    continue
                try:
                    s2 = level2(hash_of(a), hash_of(b))
                except (TMKFileError, IncompatibleHashError) as exc:
                    log.warning("%s / %s: %s", a, b, exc)
                    continue
                if s2 >= hs.level2:
                    rows.append((a, b, float(s1), s2))
    rows.sort(key=lambda r: (-r[3], -r[2], r[0], r[1]))
    out = layout.hash_search_dir()
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(MATCH_FIELDS)
    w.writerows([a, b, f"{s1:.6f}", f"{s2:.6f}"] for a, b, s1, s2 in rows)
    atomic_write_text(out / "matches.csv", buf.getvalue())
    summary = {"hashes": len(heads), "kinds_of_hash": len(groups), "factories": sorted(set(factories)),
               "level1": hs.level1, "level2": hs.level2, "top_k": hs.top_k, "pairs": len(rows),
               "skipped": skipped}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))  # written last: commits the folder
    return out
