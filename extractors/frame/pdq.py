"""PDQ's float frame feature, exactly as Meta's TMK hasher computes it (``pdq/cpp``, ``tmk/cpp``).

Per ``(64, 64)`` RGB frame (already scaled to 64x64 by the decoder, as Meta's ``tmk-hash-video``
asks ffmpeg to do): luma ``0.299 R + 0.587 G + 0.114 B`` (float32), then the 2-D DCT restricted to
PDQ's band, rows and columns ``k = 1..16`` (no DC row or column) with the plain ``sqrt(2 / 64)``
scale: ``B = D A D^T``, ``D[k - 1, j] = sqrt(2/64) cos(pi / 128 (2 j + 1) k)``. The 16x16 result,
row-major, is the 256-d feature; it is not normalised (TMK normalises each frame itself).

This is not the project's ``pdqf`` extractor (:mod:`extractors.frame.pdqf`), which keeps frequencies
0-15, drops DC, box-averages any frame size down to 64x64 and L2-normalises.
"""

from __future__ import annotations

import numpy as np

SIZE = 64
BAND = 16
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def pdq_dct_matrix() -> np.ndarray:
    """``(16, 64) float32``: PDQ's DCT rows ``k = 1..16``, rounded as Meta's code rounds them (a float32
    scale times a double cosine, stored as float32)."""
    k = np.arange(1, BAND + 1, dtype=np.float64)[:, None]
    j = np.arange(SIZE, dtype=np.float64)[None, :]
    scale = float(np.float32(np.sqrt(2.0 / SIZE)))
    return (scale * np.cos(np.pi / 2.0 / SIZE * k * (2 * j + 1))).astype(np.float32)


_D = pdq_dct_matrix()


def sequential_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sum_k a[..., k] * b[..., k]`` in float32, added in ``k`` order as Meta's C++ adds them (no
    fused multiply-add): the same rounding, so that near-uniform frames, whose features are rounding
    noise that TMK's normalisation magnifies, come out as Meta's do. ``a (..., K)``, ``b (..., K)``."""
    total = np.zeros(np.broadcast_shapes(a.shape[:-1], b.shape[:-1]), np.float32)
    for k in range(a.shape[-1]):  # over the summed axis (DCT taps, feature dims), vectorised over the rest
        total += a[..., k] * b[..., k]
    return total


def luma(frames: np.ndarray) -> np.ndarray:
    """``(B, H, W, 3) uint8`` -> ``(B, H, W) float32``: ``0.299 R + 0.587 G + 0.114 B`` in float32, in
    that order."""
    f = frames.astype(np.float32)
    return (LUMA[0] * f[..., 0] + LUMA[1] * f[..., 1]) + LUMA[2] * f[..., 2]


def pdq_float256(frames: np.ndarray) -> np.ndarray:
    """``(B, 64, 64, 3) uint8`` RGB -> ``(B, 256) float32`` PDQ float features (``B = (D A) D^T``)."""
    if frames.ndim != 4 or frames.shape[1:] != (SIZE, SIZE, 3):
        raise ValueError(f"expected (B, 64, 64, 3) frames, got {frames.shape}")
    a = luma(frames)  # (B, 64 rows h, 64 cols w)
    t = sequential_dot(_D[None, :, None, :], np.swapaxes(a, 1, 2)[:, None, :, :])  # (B, 16, 64): D A
    out = sequential_dot(t[:, :, None, :], _D[None, None, :, :])  # (B, 16, 16): T D^T
    return out.reshape(len(frames), BAND * BAND)
