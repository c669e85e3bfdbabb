"""A dataset on disk: its videos, its shards, its ground truth (spec section 6).

Videos are found under ``<root>/<videos_dir>/`` (recursively) with any of the
configured container extensions; a video's id is its path below that
directory without the extension (``e1_wedding/e1q1``, ``topic/3504e360...``).
"""

from __future__ import annotations

import csv
import errno
import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.config import Config, ConfigError
from pipeline.datasets import (
    AlignItem,
    AnnotationError,
    CopyPair,
    EvveEntry,
    align_ground_truth,
    check_span,
)


@dataclass(frozen=True)
class Video:
    """One video of the corpus: id, path (the corpus entry, never a symlink's target), and the
    size/mtime seen when the corpus was listed; ``size == -1`` and ``problem`` saying why when
    the entry is not a readable regular file (symlink loop, dangling link, device, FIFO ...)."""

    id: str
    path: Path
    size: int = -1
    mtime: float = 0.0
    problem: str = ""


_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"))


def entry_problem(p: Path) -> tuple[str, os.stat_result | None]:
    """Why the corpus entry ``p`` cannot be read as a video file ("" when it can), and its stat."""
    try:
        st = p.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop", None
        if exc.errno == errno.ENOENT and p.is_symlink():
            return "dangling symbolic link (its target does not exist)", None
        if exc.errno == errno.ENOENT:
            return "file not found (deleted while listing?)", None
        return f"cannot stat: {exc.strerror or exc}", None
    if stat.S_ISREG(st.st_mode):
        return "", st
    what = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
    via = " (through a symbolic link)" if p.is_symlink() else ""
    return f"not a regular file: {what}{via}", None


def videos_dir(cfg: Config) -> Path:
    return cfg.root / cfg.dataset.videos_dir


def list_videos(cfg: Config) -> list[Video]:
    """Every video under ``<root>/<videos_dir>`` with its size and mtime, sorted by id."""
    vdir = videos_dir(cfg)
    if not vdir.is_dir():
        from pipeline.dataset_kinds import kind_of

        hint = kind_of(cfg).missing_root_hint
        raise ConfigError(f"dataset {cfg.name}: video directory {vdir} does not exist{hint}")
    exts = {"." + e.lower().lstrip(".") for e in cfg.dataset.extensions}
    found: dict[str, Path] = {}
    for p in sorted(vdir.rglob("*")):  # rglob does not follow symlinked directories (no loops)
        if p.suffix.lower() in exts and not (p.is_dir() and not p.is_symlink()):
            vid = p.relative_to(vdir).with_suffix("").as_posix()
            found.setdefault(vid, p)  # first extension wins for duplicate stems
    out = []
    for k, p in sorted(found.items()):
        problem, st = entry_problem(p)
        out.append(Video(k, p, st.st_size, st.st_mtime) if st is not None else Video(k, p, problem=problem))
    return out


def shard_videos(videos: list[Video], size: int) -> list[list[Video]]:
    """Consecutive shards of at most ``size`` videos (in id order)."""
    if size < 1:
        raise ConfigError(f"shards.size must be >= 1, got {size}")
    n = max(1, math.ceil(len(videos) / size))
    return [videos[i * size:(i + 1) * size] for i in range(n)]


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


# --------------------------------------------------------------------------- ground truth


@dataclass
class GroundTruth:
    """What a dataset knows about its videos.

    * ``queries``: video ids used as queries (all videos when empty);
    * ``database``: ids searched (all videos when empty);
    * ``pairs``: partial copies (VCDB-like; ids are corpus video ids);
    * ``evve``: EVVE entries (event, label, split);
    * ``align``: Climbing/Madonna items.
    """

    kind: str
    queries: list[str] = field(default_factory=list)
    database: list[str] = field(default_factory=list)
    pairs: list[CopyPair] = field(default_factory=list)
    evve: list[EvveEntry] = field(default_factory=list)
    align: list[AlignItem] = field(default_factory=list)

    def align_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        return align_ground_truth(self.align)


def parse_vcdb_json(label_file: str | Path, pair_file: str | Path | None = None) -> list[CopyPair]:
    """The converted VCDB format: ``{"<A>-<B>": [[a_start, b_start, a_end, b_end], ...]}``
    (integer seconds).  Self-pairs are dropped (copies inside one video are never searched).
    If ``pair_file`` (``query_id,reference_id`` CSV) is given, every pair it lists must exist."""
    path = Path(label_file)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AnnotationError(f"{path}: annotation file not found") from None
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected an object of '<A>-<B>': [boxes]")
    pairs = []
    for key, boxes in data.items():
        a, sep, b = key.partition("-")
        if not sep or not a or not b:
            raise AnnotationError(f"{path}: key {key!r} is not '<videoA>-<videoB>'")
        if not isinstance(boxes, list):
            raise AnnotationError(f"{path}: {key}: expected a list of boxes")
        for box in boxes:
            if not (isinstance(box, list) and len(box) == 4
                    and all(isinstance(v, int | float) for v in box)):
                raise AnnotationError(f"{path}: {key}: box {box!r} is not [a_start, b_start, a_end, b_end]")
            a0, b0, a1, b1 = (float(v) for v in box)
            check_span(f"{path}: {key}", "A", a0, a1)
            check_span(f"{path}: {key}", "B", b0, b1)
            if a == b:
                continue
            pairs.append(CopyPair(a, b, a0, a1, b0, b1))
    if pair_file is not None:
        pf = Path(pair_file)
        with pf.open(newline="", encoding="utf-8") as f:
            for no, row in enumerate(csv.reader(f), 1):
                if no == 1 or not row:
                    continue
                if len(row) != 2:
                    raise AnnotationError(f"{pf}:{no}: expected 'query_id,reference_id'")
                if f"{row[0]}-{row[1]}" not in data:
                    raise AnnotationError(f"{pf}:{no}: pair {row[0]}-{row[1]} has no boxes in {path.name}")
    return pairs


def _map_ids(pairs: list[CopyPair], ids: list[str]) -> list[CopyPair]:
    """Map annotation video names (stems, or topic/stem) onto corpus ids."""
    by_stem: dict[str, str] = {}
    for vid in ids:
        by_stem.setdefault(vid.rsplit("/", 1)[-1], vid)
    known = set(ids)

    def m(v: str) -> str | None:
        return v if v in known else by_stem.get(v.rsplit("/", 1)[-1])

    out = []
    for p in pairs:
        a, b = m(p.video_a), m(p.video_b)
        if a and b:
            out.append(CopyPair(a, b, p.a_begin_s, p.a_end_s, p.b_begin_s, p.b_end_s))
    return out
