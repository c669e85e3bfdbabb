"""Meta's TMK (``facebook/ThreatExchange``, ``tmk/cpp/algo/tmkfv.cpp``): the hash of a video and its
two-level score, as ``tmk-hash-video`` and ``tmk-two-level-score`` compute them.

The hash of frame features ``x_t (T, d)`` (``t`` = frame index at 15 fps, the only time base):

* ``pure_average (d,)``: the mean of the raw features;
* per period ``T_i`` and harmonic ``j < m``: ``cos[i, j] = sum_t x_t / |x_t| cos(2 pi j t / T_i)`` and
  the same with ``sin`` (``sin[i, 0]`` is zero), each then L2-normalised and multiplied by
  ``sqrt(a_j)``, ``a`` the von Mises (beta = 32) kernel's Fourier coefficients.

Scores of hashes A and B:

* **level 1**: the cosine of the two pure averages;
* **level 2**: per period, the best offset ``delta = 2 pi k / T_i`` (``k = 0..T_i - 1``) of
  ``K(delta) = cc_0 + sum_{j >= 1} cos(j delta)(cc_j + ss_j) + sin(j delta)(sc_j - cs_j)`` (``cc_j`` the
  dot of A's and B's cos vectors, etc.); the best of the periods divided by ``a_0 + 2 sum_{j >= 1} a_j``.

This differs from the project's TMK score (:mod:`extractors.temporal.tmk`), which sums the periods at
one shared offset and normalises differently; Meta's files carry 4 periods, 32 harmonics, 15 fps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from extractors.frame.pdq import sequential_dot
from extractors.runtime.errors import VideoAlignError
from extractors.temporal.tmk import von_mises_coefficients

META_PERIODS = (2731, 4391, 9767, 14653)
META_HARMONICS = 32
META_BETA = 32.0
META_FPS = 15
PDQF = "PDQF"


def meta_coefficients(m: int = META_HARMONICS, beta: float = META_BETA) -> np.ndarray:
    """``(m,) float32``: the kernel's coefficients as Meta tabulates them (no lower clamp: harmonic 31
    is 9.19e-8; Meta's tools refuse coefficients that differ by more than 1e-6 relative)."""
    return von_mises_coefficients(beta, m, clamp_min=0.0).astype(np.float32)


@dataclass(frozen=True)
class MetaTMKHash:
    """A ``.tmk`` file's content: ``periods (P,) int32`` (frames), ``coefficients (m,) float32``,
    ``pure_average (d,) float32``, ``cos`` and ``sin (P, m, d) float32``."""

    algorithm: str
    fps: int
    frame_count: int
    periods: np.ndarray
    coefficients: np.ndarray
    pure_average: np.ndarray
    cos: np.ndarray
    sin: np.ndarray

    @property
    def dimension(self) -> int:
        return int(self.pure_average.shape[0])


class IncompatibleHashError(VideoAlignError, ValueError):
    """Two hashes that Meta's tools would refuse to compare."""


def _l2n(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(norm > 0, x / np.where(norm > 0, norm, 1), x)


def meta_hash(features: np.ndarray, periods: tuple[int, ...] = META_PERIODS,
              coefficients: np.ndarray | None = None, fps: int = META_FPS, algorithm: str = PDQF) -> MetaTMKHash:
    """The Meta TMK hash of ``features (T, d)`` (one row per 1/``fps`` s frame, in order)."""
    x = np.asarray(features, dtype=np.float32)
    a = meta_coefficients() if coefficients is None else np.asarray(coefficients, np.float32)
    n, d = x.shape
    per = np.asarray(periods, dtype=np.int32)
    if n == 0:
        zeros = np.zeros((len(per), len(a), d), np.float32)
        return MetaTMKHash(algorithm, fps, 0, per, a, np.zeros(d, np.float32), zeros, zeros.copy())
    # each frame L2-normalised in float32, its squares added in order, as Meta's computeNorm does
    norm = np.sqrt(sequential_dot(x, x))[:, None]
    xn = np.where(norm > 0, x / np.where(norm > 0, norm, np.float32(1)), x).astype(np.float64)
    arg = 2.0 * np.pi * np.arange(len(a))[None, :, None] * np.arange(n)[None, None, :] / per[:, None, None]
    cos = np.einsum("pjt,td->pjd", np.cos(arg), xn)
    sin = np.einsum("pjt,td->pjd", np.sin(arg), xn)
    sin[:, 0] = 0.0
    scale = np.sqrt(a.astype(np.float64))[None, :, None]
    return MetaTMKHash(algorithm, fps, n, per, a, x.mean(axis=0, dtype=np.float64).astype(np.float32),
                       (_l2n(cos) * scale).astype(np.float32), (_l2n(sin) * scale).astype(np.float32))


def check_compatible(a: MetaTMKHash, b: MetaTMKHash) -> None:
    """Raise :class:`IncompatibleHashError` where Meta's ``areCompatible`` would refuse the pair."""
    if a.algorithm != b.algorithm:
        raise IncompatibleHashError(f"frame algorithms differ: {a.algorithm} and {b.algorithm}")
    if a.fps != b.fps:
        raise IncompatibleHashError(f"frames per second differ: {a.fps} and {b.fps}")
    if not np.array_equal(a.periods, b.periods):
        raise IncompatibleHashError(f"periods differ: {a.periods.tolist()} and {b.periods.tolist()}")
    if a.coefficients.shape != b.coefficients.shape:
        raise IncompatibleHashError(f"harmonic counts differ: {len(a.coefficients)} and {len(b.coefficients)}")
    ca, cb = a.coefficients.astype(np.float64), b.coefficients.astype(np.float64)
    m = np.maximum(np.abs(ca), np.abs(cb))
    bad = np.flatnonzero((m > 0) & (np.abs(ca - cb) > 1e-6 * np.where(m > 0, m, 1)))
    if len(bad):
        j = int(bad[0])
        raise IncompatibleHashError(f"kernel coefficient {j} differs: {ca[j]:.7e} and {cb[j]:.7e}")
    if a.dimension != b.dimension:
        raise IncompatibleHashError(f"feature dimensions differ: {a.dimension} and {b.dimension}")


def level1(a: MetaTMKHash, b: MetaTMKHash) -> float:
    """Meta's level-1 score: the cosine of the pure averages."""
    na, nb = np.linalg.norm(a.pure_average), np.linalg.norm(b.pure_average)
    return float(np.dot(a.pure_average, b.pure_average) / (na * nb)) if na > 0 and nb > 0 else 0.0


def best_offsets(a: MetaTMKHash, b: MetaTMKHash) -> tuple[np.ndarray, np.ndarray]:
    """Per period: the best offset modulo the period (frames) and ``K`` there, ``(P,)`` each."""
    check_compatible(a, b)
    f = lambda u, v: np.einsum("pjd,pjd->pj", u.astype(np.float64), v.astype(np.float64))  # noqa: E731
    cc, ss, sc, cs = f(a.cos, b.cos), f(a.sin, b.sin), f(a.sin, b.cos), f(a.cos, b.sin)
    j = np.arange(1, cc.shape[1])
    offsets, values = [], []
    for i, period in enumerate(a.periods.tolist()):  # periods differ in length: one curve each
        delta = 2.0 * np.pi * np.arange(period) / period
        k = cc[i, 0] + np.cos(np.outer(delta, j)) @ (cc[i, 1:] + ss[i, 1:]) \
            + np.sin(np.outer(delta, j)) @ (sc[i, 1:] - cs[i, 1:])
        offsets.append(int(np.argmax(k)))
        values.append(float(k.max()))
    return np.asarray(offsets), np.asarray(values)


def level2(a: MetaTMKHash, b: MetaTMKHash) -> float:
    """Meta's level-2 score (module docstring)."""
    _, values = best_offsets(a, b)
    c = a.coefficients.astype(np.float64)
    return float(values.max() / (c[0] + 2.0 * c[1:].sum())) if len(values) else 0.0
