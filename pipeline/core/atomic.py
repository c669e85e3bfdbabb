"""Atomic writes: a temporary sibling, fsync, rename; stale temporaries of killed writers.

A crash never leaves a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from extractors.runtime import failpoints
from extractors.runtime.errors import VideoAlignError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(VideoAlignError, OSError):
    """A write that found no space left: the message names the file, its folder and the space free."""

    def __str__(self) -> str:
        return str(self.args[-1])


def no_space(exc: BaseException) -> bool:
    """Whether ``exc`` says the device (or the user's quota) is full (HDF5 reports it in its message)."""
    text = str(exc)
    return isinstance(exc, OSError) and (exc.errno in NO_SPACE or "No space left" in text or "errno = 28" in text
                                         or "Disk quota exceeded" in text)


def disk_full(path: Path) -> DiskFullError:
    """The error for a write of ``path`` that ran out of space."""
    try:
        free = f"{shutil.disk_usage(path.parent).free / 1e6:.1f} MB free"
    except OSError:
        free = "free space unknown"
    return DiskFullError(errno.ENOSPC, f"{path}: no space left on the device holding {path.parent} ({free}); "
                                       f"free some space and run again (nothing half-written was kept)")


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
    except OSError as exc:
        if no_space(exc) and not isinstance(exc, DiskFullError):
            raise disk_full(path) from None
        raise
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
