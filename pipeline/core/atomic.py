"""Atomic writes: a temporary sibling, fsync, rename; stale temporaries of killed writers.

A crash never leaves a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

from extractors.runtime import failpoints


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


TEMP_RE = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]+$")


def stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Temporary files left in ``directory`` by writers that are no longer running (e.g. killed)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        m = TEMP_RE.match(p.name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            out.append(p)
    return out


def clean_stale_temporaries(directory: str | os.PathLike) -> int:
    """Delete :func:`stale_temporaries`; returns how many."""
    n = 0
    for p in stale_temporaries(directory):
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                import shutil

                shutil.rmtree(p)
            else:
                p.unlink()
            n += 1
    return n


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success fsync it and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        failpoints.hit("artifact.before_rename")
        os.replace(tmp, path)
        failpoints.hit("artifact.after_rename")
        fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a whole file (read in 4 MiB blocks): the checksums of published artifacts."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
