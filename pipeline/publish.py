"""Versioned publication of the index, with an atomically switched ``current`` pointer.

Layout::

    <work>/<dataset>/published/
        v000001/  index.faiss  meta.h5  manifest.json  failures.csv
        v000002/  ...
        current -> v000002        (a symbolic link, replaced atomically)

A version directory is assembled under a hidden temporary name, every file
fsynced, then renamed into place; only then is ``current`` switched (a new
link created beside it and renamed over it).  A reader resolves ``current``
once and reads every file from that version, so it sees the old or the new
version, never a mix.  The previous ``keep`` versions stay for rollback.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from extractors import failpoints
from pipeline.artifacts import clean_stale_temporaries, fsync_dir, utc_now

CURRENT = "current"
MANIFEST = "manifest.json"
_VERSION_RE = re.compile(r"^v(\d{6})$")


class PublishError(RuntimeError):
    """Nothing published yet, or no version to roll back to (message says which)."""


def versions(root: Path) -> list[Path]:
    """Published version directories, oldest first."""
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and _VERSION_RE.match(p.name)),
                  key=lambda p: p.name)


def current_version(root: Path) -> Path | None:
    """The version ``current`` points at (resolved once), or None."""
    link = root / CURRENT
    try:
        target = os.readlink(link)
    except (FileNotFoundError, OSError):
        return None
    p = root / target
    return p if p.is_dir() else None


def read_manifest(version: Path | None) -> dict:
    if version is None:
        return {"videos": {}, "next_faiss_id": 0, "version": 0}
    return json.loads((version / MANIFEST).read_text(encoding="utf-8"))


def _fsync_tree(d: Path) -> None:
    for p in d.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fsync_dir(d)


def switch_current(root: Path, version: Path) -> None:
    """Point ``current`` at ``version`` atomically (symlink + rename)."""
    # named like every other temporary (writer's pid): a kill between the two calls leaves a link
    # that the next publish or prune removes and that ``verify`` reports
    tmp = root / f".{CURRENT}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.symlink(version.name, tmp)
    failpoints.hit("publish.current_switch")
    os.replace(tmp, root / CURRENT)
    fsync_dir(root)


@contextlib.contextmanager
def new_version(root: Path, keep: int = 3) -> Iterator[Path]:
    """Yield a staging directory; on success it becomes the next version and ``current``."""
    root.mkdir(parents=True, exist_ok=True)
    existing = versions(root)
    number = int(existing[-1].name[1:]) + 1 if existing else 1
    final = root / f"v{number:06d}"
    stage = root / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    stage.mkdir()
    try:
        yield stage
        _fsync_tree(stage)
        os.replace(stage, final)
        fsync_dir(root)
        switch_current(root, final)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    prune(root, keep)


def prune(root: Path, keep: int) -> list[Path]:
    """Delete versions older than the ``keep`` most recent, never the current one; and stale stages."""
    cur = current_version(root)
    removed = []
    vs = versions(root)
    for p in vs[: max(0, len(vs) - keep)]:
        if cur is not None and p.resolve() == cur.resolve():
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    clean_stale_temporaries(root)  # staging directories of killed publishers
    return removed


def rollback(root: Path, to: str | None = None) -> Path:
    """Point ``current`` at the version before it (or at version ``to``, e.g. ``v000003``)."""
    vs = versions(root)
    cur = current_version(root)
    if cur is None:
        raise PublishError(f"{root}: nothing published yet")
    if to:
        target = root / to
        if target not in vs:
            raise PublishError(f"{root}: no version {to} (have {', '.join(p.name for p in vs)})")
    else:
        older = [p for p in vs if p.name < cur.name]
        if not older:
            raise PublishError(f"{root}: {cur.name} is the oldest version kept; nothing to roll back to")
        target = older[-1]
    switch_current(root, target)
    m = read_manifest(target)
    m["rolled_back_at"] = utc_now()
    return target
