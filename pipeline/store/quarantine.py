"""Quarantine: corpus entries that failed, not retried by a refresh until the file changes.

A permanently broken file would otherwise be decoded again by every refresh,
publish a new identical version and fail the run every time. ``quarantine.json``
(in the dataset's work directory, written atomically) records each failed entry
with the size and mtime it had; a refresh skips an entry whose size and mtime
are unchanged, retries it when they change, and forgets it when it is gone.
``python -m pipeline verify <dataset>`` and the refresh summary list it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.core.atomic import atomic_path, utc_now


@dataclass(frozen=True)
class QuarantineEntry:
    """A corpus entry that failed: path (the entry as listed), size/mtime when it failed (-1 / 0
    when it could not be stat'ed), the stage and cause of the failure, and since when."""

    path: str
    size: int
    mtime: float
    stage: str
    cause: str
    since: str

    def same_file(self, size: int, mtime: float) -> bool:
        return self.size == size and self.mtime == mtime


def load_quarantine(path: str | os.PathLike) -> dict[str, QuarantineEntry]:
    """Entries by path; an unreadable or foreign file reads as empty (everything is retried)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        return {e["path"]: QuarantineEntry(**e) for e in doc["entries"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def save_quarantine(path: str | os.PathLike, entries: dict[str, QuarantineEntry]) -> None:
    doc = {"schema": "videoalign/quarantine", "entries": [asdict(entries[k]) for k in sorted(entries)]}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")


def key(path: str | os.PathLike) -> str:
    """How an entry is known: its absolute corpus path (never a symlink's target)."""
    return str(Path(path).absolute())


def entry(path: str | os.PathLike, size: int, mtime: float, stage: str, cause: str) -> QuarantineEntry:
    return QuarantineEntry(key(path), int(size), float(mtime), stage, cause, utc_now())


def holds(entries: dict[str, QuarantineEntry], path: str | os.PathLike, size: int, mtime: float) -> bool:
    """True when ``path`` failed before and has not changed since (not to be retried)."""
    e = entries.get(key(path))
    return e is not None and e.same_file(size, mtime)


def describe(entries: dict[str, QuarantineEntry]) -> list[str]:
    """One line per entry, for operators."""
    return [f"quarantined: {e.path}: {e.stage}: {e.cause} (since {e.since}; retried when the file changes)"
            for e in entries.values()]
