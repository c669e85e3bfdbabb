"""An exclusive, non-blocking lock file for cron jobs (``fcntl.flock``).

The holder writes its PID and start time into the file; a second process
fails at once with :class:`LockHeldError` naming that PID.  The kernel releases the
lock when the holder exits, even after ``kill -9``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from extractors.runtime.errors import VideoAlignError
from pipeline.core.atomic import utc_now


class LockHeldError(VideoAlignError, RuntimeError):
    """Another process holds the lock (message names its PID)."""

    exit_code = 75  # EX_TEMPFAIL: cron tries again later


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown process"
            raise LockHeldError(f"{path}: another run holds the lock ({holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {utc_now()}\n".encode(), 0)
        os.fsync(fd)
        yield
    finally:
        os.close(fd)
