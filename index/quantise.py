"""Compact storage of descriptors: ``float32``, ``float16``, or ``int8`` with one scale per row.

A row is the last axis (TMK ``(P, 2m, d)``: one scale per period and frequency; CTE ``(d, 2m)``:
one per feature dimension; TCA ``(L, d)``: one per frame).  ``int8`` codes are
``round(x / s)`` with ``s = max |x| / 127`` over the row, so every value is reproduced within
``s / 2`` and zero rows stay exactly zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PRECISIONS = ("float32", "float16", "int8")


@dataclass(frozen=True)
class Encoded:
    """``codes`` (the descriptors' shape, in the stored dtype) and, for ``int8``, ``scales``
    (the shape without its last axis, float32; ``None`` otherwise)."""

    codes: np.ndarray
    scales: np.ndarray | None


def encode(x: np.ndarray, precision: str) -> Encoded:
    """``x (..., d) float32`` in ``precision`` (:data:`PRECISIONS`)."""
    x = np.asarray(x, dtype=np.float32)
    if precision == "float32":
        return Encoded(x, None)
    if precision == "float16":
        return Encoded(x.astype(np.float16), None)
    if precision != "int8":
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    scales = np.abs(x).max(axis=-1) / 127.0
    safe = np.where(scales > 0, scales, 1.0)[..., None]
    codes = np.clip(np.rint(x / safe), -127, 127).astype(np.int8)
    return Encoded(codes, scales.astype(np.float32))


def decode(codes: np.ndarray, scales: np.ndarray | None = None) -> np.ndarray:
    """``float32`` descriptors from :func:`encode`'s ``codes`` (and ``scales`` for ``int8``)."""
    if scales is None:
        return np.asarray(codes, dtype=np.float32)
    return codes.astype(np.float32) * np.asarray(scales, dtype=np.float32)[..., None]


def bytes_per_item(shape: tuple[int, ...], precision: str) -> int:
    """Stored bytes of one descriptor of ``shape`` (codes and scales)."""
    n = int(np.prod(shape))
    if precision == "int8":
        return n + 4 * (n // shape[-1])
    return n * (2 if precision == "float16" else 4)
