"""Versioned publication of the index, with an atomically switched ``current`` pointer.

Layout::

    <work>/<dataset>/published/
        v000001/  index.faiss  meta.h5  manifest.json  failures.csv  checksums.json
        v000002/  ...
        current -> v000002        (a symbolic link, replaced atomically)
        history.json              the versions that were made current, in order (rollback targets)
        pinned.json               present after a rollback: refreshes refuse to publish until released

A version that was never made current (a publisher killed before the switch)
is no rollback target; ``verify`` reports it and the next publish removes it.

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

from extractors.runtime import failpoints
from extractors.runtime.errors import VideoAlignError
from pipeline.core.atomic import atomic_path, clean_stale_temporaries, file_sha256, fsync_dir, utc_now

CURRENT = "current"
MANIFEST = "manifest.json"
CHECKSUMS = "checksums.json"
HISTORY = "history.json"
PIN = "pinned.json"
_VERSION_RE = re.compile(r"^v(\d{6})$")


class PublishError(VideoAlignError, RuntimeError):
    """Nothing published yet, or no version to roll back to (message says which)."""


class PinnedError(VideoAlignError, RuntimeError):
    """A rollback holds ``current``: nothing is published until the operator releases it."""

    exit_code = 75  # EX_TEMPFAIL: cron tries again later


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
    previous = current_version(root)
    try:
        yield stage
        write_checksums(stage, previous)
        _fsync_tree(stage)
        os.replace(stage, final)
        fsync_dir(root)
        failpoints.hit("publish.before_switch")
        switch_current(root, final)
        record_current(root, final)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    prune(root, keep)


def made_current(root: Path) -> list[str]:
    """Names of the versions that were ever made current, oldest first (every version up to the
    current one for a root published before the history was kept)."""
    try:
        names = json.loads((root / HISTORY).read_text(encoding="utf-8"))["versions"]
        return [str(n) for n in names]
    except FileNotFoundError:
        cur = current_version(root)
        return [v.name for v in versions(root) if cur is not None and v.name <= cur.name]
    except (OSError, ValueError, KeyError, TypeError):
        return [v.name for v in versions(root)]  # unreadable history: do not lose rollback targets


def record_current(root: Path, version: Path) -> None:
    names = [n for n in made_current(root) if n != version.name] + [version.name]
    with atomic_path(root / HISTORY) as tmp:
        tmp.write_text(json.dumps({"versions": names}), encoding="utf-8")


def never_current(root: Path) -> list[Path]:
    """Complete versions that were never made current (their publisher died before the switch)."""
    cur = current_version(root)
    made = set(made_current(root))
    return [v for v in versions(root) if v.name not in made and (cur is None or v.name != cur.name)]


def write_checksums(version: Path, previous: Path | None = None) -> None:
    """``checksums.json``: the sha256 of every file of a version (written last, before it is renamed).
    A file hard-linked from ``previous`` (the same inode: a layered index's base) keeps the checksum
    recorded there instead of being read again (the refresh checked ``previous`` before building on it)."""
    known = {}
    if previous is not None:
        try:
            known = json.loads((previous / CHECKSUMS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            known = {}
    sums = {}
    for p in sorted(version.iterdir()):
        if not p.is_file() or p.name == CHECKSUMS:
            continue
        old = previous / p.name if previous is not None else None
        if isinstance(known, dict) and p.name in known and old is not None and _same_file(p, old):
            sums[p.name] = known[p.name]
        else:
            sums[p.name] = file_sha256(p)
    (version / CHECKSUMS).write_text(json.dumps(sums, indent=1, sort_keys=True), encoding="utf-8")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def damaged_files(version: Path) -> dict[str, str]:
    """File name -> what is wrong, for the files of a published version that no longer match
    ``checksums.json`` (empty when it is intact, or published before checksums were kept)."""
    try:
        sums = json.loads((version / CHECKSUMS).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}  # published before checksums were kept (verify notes it)
    except (OSError, ValueError) as exc:
        return {CHECKSUMS: f"unreadable ({exc})"}
    if not isinstance(sums, dict):
        return {CHECKSUMS: f"unreadable (a JSON {type(sums).__name__}, not an object)"}
    damaged = {}
    for name, digest in sorted(sums.items()):
        p = version / name
        if not p.is_file():
            damaged[name] = "missing from the published version"
        elif file_sha256(p) != digest:
            damaged[name] = "content does not match its checksum (damaged)"
    return damaged


def check_version(version: Path) -> list[str]:
    """One line per damaged file of a published version (:func:`damaged_files`), naming it."""
    return [f"{version / name}: {why}" for name, why in damaged_files(version).items()]


def prune(root: Path, keep: int) -> list[Path]:
    """Delete versions older than the ``keep`` most recent, versions never made current, and stale
    stages; never the current version nor the one current before it (a reader may have resolved
    ``current`` just before the switch and still be reading it, whatever ``keep`` says)."""
    cur = current_version(root)
    history = made_current(root)
    protected = {cur.name} if cur is not None else set()
    protected |= set([n for n in history if cur is None or n != cur.name][-1:])  # the previous current
    removed = []
    orphans = never_current(root)
    vs = [v for v in versions(root) if v not in orphans]
    for p in orphans + vs[: max(0, len(vs) - keep)]:
        if p.name in protected:
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    clean_stale_temporaries(root)  # staging directories of killed publishers
    return removed


def rollback(root: Path, to: str | None = None, force: bool = False) -> Path:
    """Point ``current`` at the version before it (or at version ``to``, e.g. ``v000003``); a version whose
    files fail their checksums is refused unless ``force``."""
    made = set(made_current(root))
    vs = [v for v in versions(root) if v.name in made]  # never a version that was never current
    cur = current_version(root)
    if cur is None:
        raise PublishError(f"{root}: nothing published yet")
    if to:
        target = root / to
        if target not in vs:
            why = "was never made current (an interrupted publish)" if (target.is_dir() and
                                                                         to not in made) else "does not exist"
            raise PublishError(f"{root}: version {to} {why}; rollback targets: {', '.join(p.name for p in vs)}")
    else:
        older = [p for p in vs if p.name < cur.name]
        if not older:
            raise PublishError(f"{root}: {cur.name} is the oldest version kept; nothing to roll back to")
        target = older[-1]
    damage = check_version(target)
    if damage and not force:
        raise PublishError(f"{target}: {len(damage)} file(s) fail their checksums ({damage[0]}); roll back to "
                           f"another version, or pass --force to use it anyway")
    switch_current(root, target)
    record_current(root, target)
    pin(root, target)
    return target


def pin(root: Path, version: Path) -> None:
    """Hold ``current`` at ``version`` (after a rollback) until :func:`release`."""
    with atomic_path(root / PIN) as tmp:
        tmp.write_text(json.dumps({"version": version.name, "at": utc_now()}), encoding="utf-8")


def pinned(root: Path) -> dict | None:
    """``{"version", "at"}`` while a rollback holds ``current``, else None."""
    try:
        return json.loads((root / PIN).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"version": "?", "at": "?"}


def release(root: Path) -> bool:
    """Let refreshes publish again (True when a pin was released)."""
    try:
        (root / PIN).unlink()
    except FileNotFoundError:
        return False
    fsync_dir(root)
    return True
