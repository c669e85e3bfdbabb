"""Quarantine: corpus entries that failed, and when a refresh tries them again.

A permanently broken file would otherwise be decoded again by every refresh,
publish a new identical version and fail the run every time. ``quarantine.json``
(in the dataset's work directory, written atomically) records each failed entry
with the size and mtime it had, its cause, and how often it failed:

* a **permanent** cause (undecodable, no video stream, an image, too large for
  the settings) holds the entry until the file changes;
* a **transient** cause (:data:`TRANSIENT`: the decoder killed, e.g. by the
  OOM killer, a time limit hit on a loaded host, out of memory, an I/O error,
  permission denied) is retried at later refreshes after a bounded backoff
  (:data:`BACKOFF_S`: at the next refresh, then after 1 h, then 4 h); after
  :data:`MAX_ATTEMPTS` failures in a row it is held like a permanent one.

A refresh skips a held entry whose size and mtime are unchanged, retries it when
they change, and forgets it when it is gone.  ``python -m pipeline verify
<dataset>`` and the refresh summary name every entry with its cause.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline.core.atomic import atomic_path, utc_now

MAX_ATTEMPTS = 3
"""Transient failures in a row after which an entry is held until the file changes."""

BACKOFF_S = (0.0, 3600.0, 4 * 3600.0)
"""Wait before the retry that follows the 1st, 2nd, 3rd... transient failure (the last one repeats)."""

TRANSIENT = ("decoder process crashed", "exceeded the time limit", "no progress for", "out of memory",
             "input/output error", "permission denied", "resource temporarily unavailable")
"""Causes (lower case) that say nothing about the file: the host, not the video, failed."""


def is_transient(cause: str) -> bool:
    """Whether a failure with this cause may succeed when tried again on the same file."""
    low = cause.lower()
    return any(t in low for t in TRANSIENT)


@dataclass(frozen=True)
class QuarantineEntry:
    """A corpus entry that failed: path (the entry as listed), size/mtime when it failed (-1 / 0
    when it could not be stat'ed), the stage and cause of the failure, since when, how many times in a
    row, whether the cause is transient and, if so, from when it is tried again (ISO time, UTC)."""

    path: str
    size: int
    mtime: float
    stage: str
    cause: str
    since: str
    attempts: int = 1
    transient: bool = False
    retry_after: str = ""

    def same_file(self, size: int, mtime: float) -> bool:
        return self.size == size and self.mtime == mtime

    @property
    def permanent(self) -> bool:
        """Held until the file changes: a permanent cause, or :data:`MAX_ATTEMPTS` transient failures."""
        return not self.transient or self.attempts >= MAX_ATTEMPTS

    def due(self, now: datetime) -> bool:
        """A transient entry whose backoff has passed."""
        return not self.permanent and (not self.retry_after or now >= datetime.fromisoformat(self.retry_after))


def load_quarantine(path: str | os.PathLike) -> dict[str, QuarantineEntry]:
    """Entries by path; an unreadable or foreign file reads as empty (everything is retried)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        # entries written before causes were told apart: a transient cause is due for a retry now
        return {e["path"]: QuarantineEntry(**{"transient": is_transient(e["cause"]), **e}) for e in doc["entries"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def save_quarantine(path: str | os.PathLike, entries: dict[str, QuarantineEntry]) -> None:
    doc = {"schema": "videoalign/quarantine", "entries": [asdict(entries[k]) for k in sorted(entries)]}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")


def key(path: str | os.PathLike) -> str:
    """How an entry is known: its absolute corpus path (never a symlink's target)."""
    return str(Path(path).absolute())


def now_utc() -> datetime:
    return datetime.now(UTC)


def entry(path: str | os.PathLike, size: int, mtime: float, stage: str, cause: str,
          previous: QuarantineEntry | None = None, now: datetime | None = None) -> QuarantineEntry:
    """The quarantine entry of a failure; ``previous``: the entry of the same file's last failure (a
    transient failure of an unchanged file counts one more attempt and backs off longer)."""
    now = now or now_utc()
    transient = is_transient(cause)
    again = previous is not None and previous.transient and transient and previous.same_file(size, mtime)
    attempts = previous.attempts + 1 if again else 1
    wait = BACKOFF_S[min(attempts - 1, len(BACKOFF_S) - 1)]
    retry = (now + timedelta(seconds=wait)).isoformat(timespec="seconds") if transient else ""
    since = previous.since if again else utc_now()
    return QuarantineEntry(key(path), int(size), float(mtime), stage, cause, since, attempts, transient, retry)


def holds(entries: dict[str, QuarantineEntry], path: str | os.PathLike, size: int, mtime: float,
          now: datetime | None = None) -> bool:
    """True when ``path`` failed before, has not changed since, and is not due for a retry."""
    e = entries.get(key(path))
    return e is not None and e.same_file(size, mtime) and not e.due(now or now_utc())


def state(e: QuarantineEntry) -> str:
    """What happens to an entry next, in words."""
    if not e.transient:
        return "permanent: retried when the file changes"
    if e.permanent:
        return f"transient, but failed {e.attempts} times in a row: retried when the file changes"
    return f"transient, failed {e.attempts} of {MAX_ATTEMPTS} times: retried by a refresh from {e.retry_after}"


def describe(entries: dict[str, QuarantineEntry]) -> list[str]:
    """One line per entry, for operators."""
    return [f"quarantined: {e.path}: {e.stage}: {e.cause} (since {e.since}; {state(e)})" for e in entries.values()]


def needs_operator(entries: dict[str, QuarantineEntry]) -> list[QuarantineEntry]:
    """Entries no refresh will retry by itself: replace, repair or remove their files."""
    return [e for e in entries.values() if e.permanent]
