"""Deterministic failpoints for fault tests (no timers).

``VIDEOALIGN_FAILPOINTS="name=action@hit,name2=action"`` arms named points;
:func:`hit` is called at each point.  On the ``hit``-th call (default 1) in this
process the action runs: ``raise`` (a :class:`FailpointError`, e.g. to test a
retry policy), ``raise*`` (on every call from ``hit`` on), ``kill`` (SIGKILL
of the whole process group, like ``kill -9`` of a run), ``die`` (SIGKILL of
this process only, like the OOM killer taking one worker) or ``die-once`` (``die``,
in the first process of a run that reaches it: the sentinel file
``$VIDEOALIGN_FAILPOINTS_ONCE/<name>`` is created atomically by the one that
fires, so a replacement worker, which counts its own passes, does not).  :func:`triggered`
serves points whose failure is acted out by the caller (``on`` / ``on*``).
Unarmed points cost one dictionary lookup.  Worker processes inherit the
environment, and count their own passes.

Points (the crash suite, ``tests/test_crash_points.py``, kills a run at each):

    decode.chunk              after a chunk is decoded (inline, or in a decode worker)
    extract.batch             after the CNN described a batch, before the video's file is written
    features.mid_write        inside a feature file's HDF5 write (one dataset written)
    artifact.before_rename    a temporary file complete and fsynced, not yet renamed
    artifact.after_rename     right after an artifact's rename (directory not yet fsynced)
    describe.before_write     descriptors computed, file not yet written
    index.built               FAISS index built, nothing written
    index.between_files       index.faiss written, meta.h5 not yet
    publish.before_switch     a version complete and renamed, current not yet switched
    publish.current_switch    the new current link created, not yet renamed over the old one
    report.file               after report.json, and after report.md
    train_frame_model.checkpoint  after a training state is saved
    lamv.epoch_saved          after a learned-LAMV training state is saved (one per epoch)
    tca.checkpoint_saved      after a TCA training state is saved (every tca_training.checkpoint_every steps)
    decode_worker.send        a decoder, before each message; decode_worker.mid_write: half a message
    storage.upload            object storage: before each file a task uploads (its marker last)
"""

from __future__ import annotations

import os
import signal

from extractors.runtime.errors import VideoAlignError

ENV = "VIDEOALIGN_FAILPOINTS"
ONCE_DIR_ENV = "VIDEOALIGN_FAILPOINTS_ONCE"

_counts: dict[str, int] = {}


class FailpointError(VideoAlignError, RuntimeError):
    """Raised by an armed ``raise`` failpoint."""


def _armed() -> dict[str, tuple[str, int]]:
    out = {}
    for item in os.environ.get(ENV, "").split(","):
        item = item.strip()
        if not item:
            continue
        name, _, rest = item.partition("=")
        action, _, at = (rest or "raise").partition("@")
        out[name.strip()] = (action.strip(), int(at) if at else 1)
    return out


def hit(name: str) -> None:
    """Count one pass through failpoint ``name`` and fire it if armed for this pass."""
    armed = _armed()
    if name not in armed:
        return
    _counts[name] = _counts.get(name, 0) + 1
    action, at = armed[name]
    n = _counts[name]
    if (action == "raise" and n == at) or (action == "raise*" and n >= at):
        raise FailpointError(f"failpoint {name} (pass {n})")
    if action == "kill" and n == at:
        os.killpg(os.getpgrp(), signal.SIGKILL)
    if action == "die" and n == at:
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "die-once" and n == at and _first(name):
        os.kill(os.getpid(), signal.SIGKILL)


def _first(name: str) -> bool:
    """True for the one process that creates ``name``'s sentinel in :data:`ONCE_DIR_ENV`'s directory."""
    directory = os.environ.get(ONCE_DIR_ENV)
    if not directory:
        raise FailpointError(f"failpoint {name}: die-once needs {ONCE_DIR_ENV} (a directory for its sentinel)")
    try:
        os.close(os.open(os.path.join(directory, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def triggered(name: str) -> bool:
    """Count one pass through ``name``; True when armed ``on`` for this pass (``on*``: from it on)."""
    armed = _armed()
    if name not in armed:
        return False
    _counts[name] = _counts.get(name, 0) + 1
    action, at = armed[name]
    n = _counts[name]
    return (action == "on" and n == at) or (action == "on*" and n >= at)


def reset() -> None:
    _counts.clear()
