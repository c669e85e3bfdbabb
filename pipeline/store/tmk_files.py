"""Meta's ``.tmk`` files (``tmk/cpp/io/tmkio.*``, ``TMKFeatureVectors::writeToOutputStream``), byte
for byte, little-endian:

==========================  ====================================================
header, 32 bytes            ``"TMK1"`` ``"FVEC"`` ``"PDQF"``, then int32 frames per
                            second, P (periods), m (harmonics), d (feature
                            dimension), frame count
periods                     P int32 (frames)
coefficients                m float32
pure average                d float32
cos features                P x m x d float32
sin features                P x m x d float32
==========================  ====================================================

A file that is short, long, or whose header is not Meta's is refused with one line naming it.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from extractors.runtime.errors import VideoAlignError
from index.meta_tmk import PDQF, MetaTMKHash
from pipeline.core.atomic import atomic_path

HEADER = struct.Struct("<4s4s4s5i")
MAGIC, FILE_TYPE = b"TMK1", b"FVEC"
ALGORITHMS = {PDQF.encode()}
MAX_PERIODS, MAX_HARMONICS, MAX_DIMENSION = 64, 1024, 65536


class TMKFileError(VideoAlignError, ValueError):
    """A ``.tmk`` file that is not Meta's format; the message names the file."""


def tmk_file_size(periods: int, harmonics: int, dimension: int) -> int:
    return HEADER.size + 4 * (periods + harmonics + dimension + 2 * periods * harmonics * dimension)


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Opening errors as one line naming the file."""
    try:
        yield
    except FileNotFoundError:
        raise TMKFileError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise TMKFileError(f"{path}: is a directory, not a .tmk file") from None


def _checked_header(path: Path, head: bytes, size: int) -> tuple[bytes, int, int, int, int, int]:
    """``(algorithm, fps, periods, harmonics, dimension, frame count)`` of a file of ``size`` bytes
    starting with ``head``, every field and the size checked against Meta's format."""
    if len(head) < HEADER.size:
        raise TMKFileError(f"{path}: truncated .tmk file ({len(head)} bytes, the header alone is {HEADER.size})")
    magic, kind, algo, fps, n_p, m, d, count = HEADER.unpack_from(head)
    if magic != MAGIC or kind != FILE_TYPE:
        raise TMKFileError(f"{path}: not a TMK feature-vector file (magic {magic + kind!r}, expected b'TMK1FVEC')")
    if algo not in ALGORITHMS:
        raise TMKFileError(f"{path}: unrecognised frame algorithm {algo!r} (known: PDQF)")
    if not (0 <= n_p <= MAX_PERIODS and 0 <= m <= MAX_HARMONICS and 0 < d <= MAX_DIMENSION and fps > 0
            and count >= 0):
        raise TMKFileError(f"{path}: implausible header (fps {fps}, periods {n_p}, harmonics {m}, dimension {d}, "
                           f"frames {count})")
    want = tmk_file_size(n_p, m, d)
    if size != want:
        what = "truncated" if size < want else "has trailing bytes"
        raise TMKFileError(f"{path}: {what}: {size} bytes, the header says {want}")
    return algo, fps, n_p, m, d, count


def read_tmk(path: str | Path) -> MetaTMKHash:
    """The hash in Meta's ``.tmk`` file ``path``."""
    path = Path(path)
    with _reading(path):
        data = path.read_bytes()
    algo, fps, n_p, m, d, count = _checked_header(path, data[:HEADER.size], len(data))
    off = HEADER.size
    periods = np.frombuffer(data, "<i4", n_p, off).astype(np.int32)
    off += 4 * n_p
    floats = np.frombuffer(data, "<f4", (len(data) - off) // 4, off).astype(np.float32)
    coef, avg = floats[:m], floats[m:m + d]
    body = floats[m + d:].reshape(2, n_p, m, d)
    if np.any(periods <= 0):
        raise TMKFileError(f"{path}: periods must be positive, got {periods.tolist()}")
    if not np.all(np.isfinite(floats)):
        raise TMKFileError(f"{path}: holds values that are not finite numbers")
    return MetaTMKHash(algo.decode(), fps, count, periods, coef, avg, body[0].copy(), body[1].copy())


def write_tmk(path: str | Path, h: MetaTMKHash) -> Path:
    """``h`` as Meta's ``.tmk`` file (atomic: temporary file, fsync, rename)."""
    n_p, m, d = len(h.periods), len(h.coefficients), h.dimension
    if h.cos.shape != (n_p, m, d) or h.sin.shape != (n_p, m, d):
        raise ValueError(f"cos / sin must be {(n_p, m, d)}, got {h.cos.shape} / {h.sin.shape}")
    parts = [HEADER.pack(MAGIC, FILE_TYPE, h.algorithm.encode(), h.fps, n_p, m, d, h.frame_count),
             np.asarray(h.periods, "<i4").tobytes(), np.asarray(h.coefficients, "<f4").tobytes(),
             np.asarray(h.pure_average, "<f4").tobytes(), np.asarray(h.cos, "<f4").tobytes(),
             np.asarray(h.sin, "<f4").tobytes()]
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"".join(parts))
    return path


def read_tmk_average(path: str | Path) -> MetaTMKHash:
    """Only the header and the pure average of a ``.tmk`` file (the level-1 stage of a search needs no
    more): ``cos`` and ``sin`` are empty ``(P, m, 0)`` arrays. The header and the file's size are checked
    as in :func:`read_tmk`."""
    path = Path(path)
    with _reading(path), path.open("rb") as f:
        algo, fps, n_p, m, d, count = _checked_header(path, f.read(HEADER.size), os.fstat(f.fileno()).st_size)
        rest = f.read(4 * (n_p + m + d))
    periods = np.frombuffer(rest, "<i4", n_p).astype(np.int32)
    floats = np.frombuffer(rest, "<f4", m + d, 4 * n_p).astype(np.float32)
    if not np.all(np.isfinite(floats[m:])):
        raise TMKFileError(f"{path}: holds values that are not finite numbers")
    empty = np.zeros((n_p, m, 0), np.float32)
    return MetaTMKHash(algo.decode(), fps, count, periods, floats[:m], floats[m:], empty, empty)
