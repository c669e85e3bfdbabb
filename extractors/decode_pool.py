"""Decode worker processes streaming 15-fps frame chunks (no torch import here).

Messages, in completion order:
``("chunk", i, frames (n, h, w, 3) uint8, timestamps_s (n,), source_index (n,))``,
``("done", i, info dict with the file's fingerprint)`` or
``("error", i, stage, one-line cause)``.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict

from extractors.decode import DecodeError, iter_samples
from extractors.timebase import FPS


def file_fingerprint(path: str) -> str:
    """Content fingerprint ``blake2b-128:<hex>`` of a whole file."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return f"blake2b-128:{h.hexdigest()}"


class DecodeTimeoutError(Exception):
    """A video took longer than the per-video time limit."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise :class:`DecodeTimeoutError` if the block runs longer than ``seconds`` (main thread only)."""
    if not seconds or seconds <= 0:
        yield
        return

    def _alarm(signum, frame):
        raise DecodeTimeoutError(f"decoding exceeded the time limit of {seconds:g} s")

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _memory_cap(megabytes: int) -> None:
    """Cap this (worker) process's address space so one pathological file cannot exhaust the machine."""
    if megabytes and megabytes > 0:
        import resource

        limit = megabytes * 1024 * 1024
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _decode_one(i: int, path: str, settings: dict) -> Iterator[tuple]:
    try:
        with time_limit(float(settings.get("video_time_limit_s", 0) or 0)):
            fp = file_fingerprint(path)
            for chunk in iter_samples(path, settings["image_area"], FPS, chunk=settings["batch_size"],
                                      threads=settings["decode_threads"], max_pixels=settings["max_pixels"],
                                      hwaccel=settings.get("hwaccel")):
                frames, ts, src, info = chunk
                yield ("chunk", i, frames, ts, src)
        yield ("done", i, {**asdict(info), "fingerprint": fp})
    except DecodeError as exc:
        yield ("error", i, "decode", exc.cause)
    except DecodeTimeoutError as exc:
        yield ("error", i, "decode", str(exc))
    except MemoryError:
        yield ("error", i, "decode", f"out of memory (cap {settings.get('worker_memory_mb')} MB per decoder)")
    except FileNotFoundError:
        yield ("error", i, "read", "file not found (deleted after listing?)")
    except OSError as exc:
        yield ("error", i, "read", str(exc))
    except Exception as exc:  # one bad file must not stop the batch
        yield ("error", i, "decode", f"{type(exc).__name__}: {exc}")


def _decode_worker(wid: int, tasks, results, settings: dict) -> None:  # pragma: no cover - subprocess
    import os

    _memory_cap(int(settings.get("worker_memory_mb", 0) or 0))
    while True:
        item = tasks.get()
        if item is None:
            return
        results.put(("start", item[0], wid, os.getpid()))
        for msg in _decode_one(item[0], item[1], settings):
            results.put(msg)


def _inline_decode(items: Sequence[tuple[int, str]], settings: dict) -> Iterator[tuple]:
    for i, path in items:
        yield from _decode_one(i, path, settings)


def decode_messages(items: Sequence[tuple[int, str]], settings: dict) -> Iterator[tuple]:
    """Decode messages in completion order, from worker processes or inline.

    With workers, ``("start", i, worker, pid)`` messages announce each video.  A worker
    that dies (crash, memory cap) fails only the video it was decoding and is
    replaced; a worker stuck past the per-video time limit (plus a grace period,
    for decoders that do not return to Python) is killed the same way.
    """
    if settings["decode_workers"] <= 0 or len(items) == 0:
        yield from _inline_decode(items, settings)
        return
    ctx = mp.get_context("spawn")
    tasks = ctx.Queue()
    results = ctx.Queue(maxsize=max(2, settings["queue_chunks"]))
    n_workers = min(settings["decode_workers"], len(items))
    limit = float(settings.get("video_time_limit_s", 0) or 0)

    def spawn(wid: int):
        p = ctx.Process(target=_decode_worker, args=(wid, tasks, results, settings), daemon=True)
        p.start()
        return p

    procs = {w: spawn(w) for w in range(n_workers)}
    for it in items:
        tasks.put(it)
    for _ in procs:
        tasks.put(None)
    pending = {i for i, _ in items}
    restarts = 0
    started: set[int] = set()
    current: dict[int, tuple[int, float] | None] = dict.fromkeys(procs)
    try:
        while pending:
            try:
                msg = results.get(timeout=0.5)
            except queue.Empty:
                msg = None
            if msg is not None:
                if msg[0] == "start":
                    current[msg[2]] = (msg[1], time.monotonic())
                    started.add(msg[1])
                    yield msg
                    continue
                if msg[0] != "chunk":
                    pending.discard(msg[1])
                    for w, cur in current.items():
                        if cur is not None and cur[0] == msg[1]:
                            current[w] = None
                yield msg
                continue
            for w, p in list(procs.items()):
                cur = current[w]
                overdue = cur is not None and limit > 0 and time.monotonic() - cur[1] > limit + 30
                if p.is_alive() and not overdue:
                    continue
                if overdue:
                    p.kill()
                    p.join(timeout=5)
                    cause = f"decoding exceeded the time limit of {limit:g} s (decoder killed)"
                elif p.exitcode == 0:
                    continue  # finished normally
                else:
                    cause = f"decoder process crashed (exit code {p.exitcode}; out of memory or a codec fault)"
                if cur is not None and cur[0] in pending:
                    pending.discard(cur[0])
                    yield ("error", cur[0], "decode", cause)
                current[w] = None
                if pending - started and restarts < len(items):  # work left: replace the worker
                    restarts += 1
                    procs[w] = spawn(w)
                    tasks.put(None)
            if not any(p.is_alive() for p in procs.values()):
                for i in sorted(pending):  # handed to a worker that died before announcing it
                    yield ("error", i, "decode", "decoder process died")
                return
    finally:
        for p in procs.values():
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
