"""A corpus on disk: its videos and its shards.

Videos are found under ``<root>/<videos_dir>/`` (recursively) with any of the
configured container extensions; a video's id is its path below that
directory without the extension (``e1_wedding/e1q1``, ``topic/3504e360...``).
"""

from __future__ import annotations

import errno
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pipeline.config.schema import ConfigError, DatasetConfig
from pipeline.datasets.kinds import kind_of


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


def videos_dir(ds: DatasetConfig) -> Path:
    return Path(str(ds.root)) / ds.videos_dir


def list_videos(ds: DatasetConfig) -> list[Video]:
    """Every video under ``<root>/<videos_dir>`` with its size and mtime, sorted by id."""
    vdir = videos_dir(ds)
    if not vdir.is_dir():
        hint = kind_of(ds).missing_root_hint
        raise ConfigError(f"dataset {ds.name}: video directory {vdir} does not exist{hint}")
    exts = {".tmk"} if kind_of(ds).hashes else {"." + e.lower().lstrip(".") for e in ds.extensions}
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
