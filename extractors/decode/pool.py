"""Decode worker processes streaming 15-fps frame chunks (no torch import here).

Messages, in completion order:
``("chunk", i, frames (n, h, w, 3) uint8, timestamps_s (n,), source_index (n,))``,
``("done", i, info dict with the file's fingerprint)`` or
``("error", i, stage, one-line cause)``.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from multiprocessing import connection as mp_connection

from extractors.decode.reader import DecodeError, hardware_decoding, iter_samples
from extractors.runtime import failpoints
from extractors.runtime.errors import VideoAlignError
from extractors.runtime.timebase import FPS


def file_fingerprint(path: str) -> str:
    """Content fingerprint ``blake2b-128:<hex>`` of a whole file."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return f"blake2b-128:{h.hexdigest()}"


class DecodeTimeoutError(VideoAlignError):
    """A video took longer than the per-video time limit."""


class DecoderSetupError(VideoAlignError, OSError):
    """No decoder can work with these settings (e.g. a memory cap too low to decode anything)."""


BYTES_PER_DECODED_PIXEL = 12
"""Rough peak memory of decoding one pixel: YUV frame, reference frames, RGB conversion."""


def _self_test() -> None:
    """Encode and decode a tiny video in memory: fails (MemoryError, ImportError ...) when this
    process cannot decode anything, e.g. under too low a memory cap."""
    import io

    import av
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        s = out.add_stream("mpeg4", rate=15)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for _ in range(2):
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    buf.seek(0)
    with av.open(buf) as c:
        for f in c.decode(video=0):
            f.to_ndarray(format="rgb24")


@contextlib.contextmanager
def time_limit(seconds: float, limit_s: float | None = None):
    """Raise :class:`DecodeTimeoutError` if the block runs longer than ``seconds`` (main thread only); the
    message states ``limit_s``, the setting, when the block had only what remained of it."""
    if not seconds or seconds <= 0:
        yield
        return

    def _alarm(signum, frame):
        raise DecodeTimeoutError(f"decoding exceeded the time limit of {limit_s or seconds:g} s")

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


def _limited(it: Iterator[tuple], seconds: float) -> Iterator[tuple]:
    """The items of ``it``, with at most ``seconds`` spent *inside* ``it`` in total.

    The alarm is armed only while ``it`` produces its next item, never while the
    consumer works on a yielded chunk (the CNN, a send to the parent), so the
    time limit can only interrupt decoding, where it is caught.
    """
    if not seconds or seconds <= 0:
        yield from it
        return
    remaining = seconds
    while True:
        t0 = time.monotonic()
        with time_limit(remaining, seconds):
            try:
                item = next(it)
            except StopIteration:
                return
        remaining -= time.monotonic() - t0
        if remaining <= 0:
            raise DecodeTimeoutError(f"decoding exceeded the time limit of {seconds:g} s")
        yield item


def _fingerprinted_samples(path: str, settings: dict) -> Iterator[tuple]:
    yield ("fingerprint", file_fingerprint(path))
    cap_mb = int(settings.get("worker_memory_mb", 0) or 0)
    # a frame that cannot fit the memory cap is refused before decoding: inline decoding (where no
    # address-space cap applies) included; half the cap is left to the process itself
    max_pixels, why = settings["max_pixels"], None
    by_cap = cap_mb * (1 << 20) // 2 // BYTES_PER_DECODED_PIXEL
    if 0 < by_cap < max_pixels:
        max_pixels = by_cap
        why = (f"needs more memory to decode than the cap of {cap_mb} MB per decoder allows "
               f"(features.worker_memory_mb)")
    yield from iter_samples(path, settings["image_area"], FPS, chunk=settings["batch_size"],
                            threads=settings["decode_threads"], max_pixels=max_pixels,
                            hwaccel=settings.get("hwaccel"), too_large=why)


def _decode_one(i: int, path: str, settings: dict) -> Iterator[tuple]:
    limit = float(settings.get("video_time_limit_s", 0) or 0)
    fp, info = "", None
    try:
        for item in _limited(_fingerprinted_samples(path, settings), limit):
            if isinstance(item[0], str):  # ("fingerprint", fp)
                fp = item[1]
                continue
            frames, ts, src, info = item
            failpoints.hit("decode.chunk")
            yield ("chunk", i, frames, ts, src)
        if info is None:
            raise DecodeError(path, "no decodable frame")
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


def _send_partial_and_die(conn) -> None:  # pragma: no cover - subprocess, failpoint only
    """Failpoint ``decode_worker.mid_write``: a message header and half its bytes, then SIGKILL."""
    import struct

    os.write(conn.fileno(), struct.pack("!i", 1 << 20) + b"\x80\x04" + b"x" * 100)
    os.kill(os.getpid(), signal.SIGKILL)


def _decode_worker(wid: int, conn, settings: dict) -> None:  # pragma: no cover - subprocess
    """One decoder: receives ``(i, path)`` items on its own pipe and answers on it (no shared lock)."""
    cap = int(settings.get("worker_memory_mb", 0) or 0)
    if hardware_decoding(settings.get("hwaccel")):
        cap = 0  # a GPU driver reserves far more address space than any cap: hardware decoding would fail
    _memory_cap(cap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when decoders stop
    try:
        _self_test()
    except BaseException as exc:  # whatever it is, this decoder cannot work
        why = (f"features.worker_memory_mb={cap} is too low for a decoder to start (it cannot decode a 32x32 "
               f"test video under that address-space cap); raise it (1024 or more) or set 0 to disable it"
               if cap else f"a decoder cannot start: {type(exc).__name__}: {exc}")
        with contextlib.suppress(Exception):
            conn.send(("fatal", -1, why))
        return
    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if item is None:
            return
        conn.send(("start", item[0], wid, os.getpid()))
        for msg in _decode_one(item[0], item[1], settings):
            if failpoints.triggered("decode_worker.mid_write"):
                _send_partial_and_die(conn)
            failpoints.hit("decode_worker.send")
            conn.send(msg)


def _inline_decode(items: Sequence[tuple[int, str]], settings: dict) -> Iterator[tuple]:
    for i, path in items:
        yield from _decode_one(i, path, settings)


def _crash_cause(exitcode: int | None) -> str:
    how = "killed (SIGKILL: out of memory?)" if exitcode == -signal.SIGKILL else "out of memory or a codec fault"
    return f"decoder process crashed (exit code {exitcode}; {how})"


class _Worker:
    """The parent's view of one decoder process: its pipe and the item it is decoding."""

    def __init__(self, ctx, wid: int, settings: dict) -> None:
        self.wid = wid
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_decode_worker, args=(wid, child, settings), daemon=True)
        self.proc.start()
        child.close()
        self.current: int | None = None  # item being decoded
        self.started = 0.0
        self.closed = False

    def assign(self, item: tuple[int, str] | None) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):  # died meanwhile: its sentinel reports it
            self.conn.send(item)
        if item is not None:
            self.current, self.started = item[0], time.monotonic()

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.kill()
        self.proc.join(timeout=5)

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            self.conn.close()


def decode_messages(items: Sequence[tuple[int, str]], settings: dict) -> Iterator[tuple]:
    """Decode messages in completion order, from worker processes or inline.

    With workers, ``("start", i, worker, pid)`` messages announce each video. Every
    worker has its own pipe, for its items and its messages, so a worker that dies
    (crash, memory cap, SIGKILL, even in the middle of a message) loses only its
    own pipe and the video it was decoding; it is replaced and the batch goes on.
    A worker stuck past the per-video time limit (plus a grace period, for decoders
    that do not return to Python) is killed the same way, and a watchdog kills the
    busy workers when no message at all arrives for ``stall_timeout_s``.
    """
    if settings["decode_workers"] <= 0 or len(items) == 0:
        yield from _inline_decode(items, settings)
        return
    ctx = mp.get_context("spawn")
    todo = list(items)[::-1]  # pop() from the end: original order
    n_workers = min(settings["decode_workers"], len(items))
    limit = float(settings.get("video_time_limit_s", 0) or 0)
    stall = float(settings.get("stall_timeout_s", 0) or 0) or (max(limit, 600.0) + 60.0)
    workers = [_Worker(ctx, w, settings) for w in range(n_workers)]
    for w in workers:
        w.assign(todo.pop() if todo else None)
    pending = {i for i, _ in items}
    restarts = 0
    last_progress = time.monotonic()

    def retire(w: _Worker, cause: str) -> Iterator[tuple]:
        nonlocal restarts
        w.kill()
        w.close()
        if w.current is not None and w.current in pending:
            pending.discard(w.current)
            yield ("error", w.current, "decode", cause)
        w.current = None
        if todo and restarts < len(items):  # work left: a replacement takes the next item
            restarts += 1
            fresh = _Worker(ctx, w.wid, settings)
            workers[workers.index(w)] = fresh
            fresh.assign(todo.pop())

    try:
        while pending:
            live = [w for w in workers if not w.closed]
            if not live:
                for i in sorted(pending):  # nobody left to decode them
                    yield ("error", i, "decode", "decoder process died")
                return
            ready = mp_connection.wait([w.conn for w in live] + [w.proc.sentinel for w in live], timeout=1.0)
            for w in live:
                if w.closed or (w.conn not in ready and w.proc.sentinel not in ready):
                    continue
                while not w.closed and w.conn.poll():
                    try:
                        msg = w.conn.recv()
                    except (EOFError, OSError, pickle.UnpicklingError, ValueError, TypeError, AttributeError,
                            IndexError, MemoryError):
                        msg = None  # died in the middle of a message
                    if msg is None:
                        w.proc.join(timeout=5)
                        yield from retire(w, _crash_cause(w.proc.exitcode))
                        break
                    last_progress = time.monotonic()
                    if msg[0] == "fatal":
                        raise DecoderSetupError(msg[2])
                    if msg[0] in ("done", "error"):
                        pending.discard(msg[1])
                        w.current = None
                        yield msg
                        w.assign(todo.pop() if todo else None)
                        if w.current is None:
                            w.close()  # told to stop
                    else:
                        yield msg
                if not w.closed and not w.proc.is_alive() and not w.conn.poll():
                    yield from retire(w, _crash_cause(w.proc.exitcode))
            now = time.monotonic()
            for w in [w for w in workers if not w.closed and w.current is not None]:
                if limit > 0 and now - w.started > limit + 30:
                    yield from retire(w, f"decoding exceeded the time limit of {limit:g} s (decoder killed)")
                elif now - last_progress > stall:
                    yield from retire(w, f"no progress for {stall:g} s (decoder killed by the watchdog)")
    finally:
        for w in workers:
            if not w.closed:
                w.assign(None)
            w.proc.join(timeout=5)
            if w.proc.is_alive():
                w.kill()
            w.close()
