"""PDQF: the float feature of PDQ, as Meta's TMK uses it for frames (no weights).

Per frame: luma, box-downsampled to 64x64, 2-D DCT-II, the 16x16 lowest
frequencies -> 256 values.  Here the DC term is dropped (it only carries the
mean brightness, which copy attacks change), the rest is L2-normalised and,
when a PCA fitted on the corpus is given, whitened.  Vectorised over frames.

A featureless frame (a uniform picture: black, a grey card, a flash; its AC coefficients
below :data:`FEATURELESS`, i.e. rounding noise) has no direction to normalise: it is
stored as a zero vector, which matches nothing (cosine 0) and which ``verify`` accepts.
"""

from __future__ import annotations

import numpy as np
import torch

from extractors.frame.base import luma, whiten
from extractors.frame.pca import PCAWhitening

SIZE = 64
BAND = 16
FEATURELESS = 1e-3
"""AC energy (orthonormal DCT of 0-255 luma) below which a frame is featureless (real content: >= 1)."""


def dct_matrix(n_out: int = BAND, n_in: int = SIZE) -> np.ndarray:
    """``(n_out, n_in)`` orthonormal DCT-II rows ``k = 0..n_out-1``."""
    k = np.arange(n_out, dtype=np.float64)[:, None]
    i = np.arange(n_in, dtype=np.float64)[None, :]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n_in)) * np.sqrt(2.0 / n_in)
    d[0] /= np.sqrt(2.0)
    return d.astype(np.float32)


_DCT = dct_matrix()


def pdqf_raw(frames: np.ndarray) -> np.ndarray:
    """``(B, H, W, 3) uint8`` -> ``(B, 256) float32`` DCT coefficients (row-major 16x16, DC included)."""
    y = torch.from_numpy(luma(frames))[:, None]  # (B, 1, H, W)
    small = torch.nn.functional.adaptive_avg_pool2d(y, (SIZE, SIZE))[:, 0].numpy()  # (B, 64, 64)
    coef = np.einsum("kh,bhw,lw->bkl", _DCT, small, _DCT, optimize=True)
    return coef.reshape(len(frames), BAND * BAND).astype(np.float32)


class PDQFExtractor:
    """Frame descriptors ``(B, 255) float32`` (unit norm; whitened by ``pca`` when given)."""

    model_id = "pdqf-64-dct16-z"  # -z: featureless frames are zero vectors (features made before are redone)
    weights_id = "none"
    precision = "float32"

    def __init__(self, pca: PCAWhitening | None = None) -> None:
        self.pca = pca
        self.device = torch.device("cpu")

    def pca_samples(self, frames: np.ndarray) -> np.ndarray:
        return pdqf_raw(frames)[:, 1:]

    def describe(self, frames: np.ndarray) -> np.ndarray:
        raw = pdqf_raw(frames)[:, 1:]
        out = whiten(raw, self.pca)
        out[np.linalg.norm(raw, axis=1) < FEATURELESS] = 0.0  # featureless frames: zero vectors
        return out
