"""What every frame-feature extractor offers the pipeline (``features.extractor``).

An extractor maps decoded RGB frames ``(B, H, W, 3) uint8`` to frame
descriptors ``(B, D) float32`` with unit L2 norm, optionally PCA-whitened.
Everything downstream (TMK, CTE, FAISS, re-ranking) works for any ``D``.  The extractors and what
``auto`` settings mean for each: :mod:`extractors.frame.registry`.

    resnet34_rmac  ResNet-34 level 29 + R-MAC (needs the ImageNet weights for real use)
    pdqf           PDQ's float feature: 64x64 luma, 2-D DCT, 16x16 low band (no weights)
    mvlad          MultiVLAD of dense RootSIFT with vocabularies fitted on the corpus (no weights)
    selfsup        a compact CNN trained self-supervised on the corpus's own frames (no weights)
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from extractors.frame.pca import PCAWhitening


@runtime_checkable
class FrameExtractor(Protocol):
    """A frame-feature extractor (see the module docstring)."""

    model_id: str
    weights_id: str
    precision: str
    device: torch.device
    pca: PCAWhitening | None

    def describe(self, frames: np.ndarray) -> np.ndarray:
        """``(B, H, W, 3) uint8`` RGB -> ``(B, D) float32`` unit-norm descriptors (whitened if ``pca``)."""
        ...

    def pca_samples(self, frames: np.ndarray) -> np.ndarray:
        """``(n, C) float32`` vectors a PCA-whitening for this extractor is fitted on."""
        ...


def l2n(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm, ``float32``."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def whiten(x: np.ndarray, pca: PCAWhitening | None) -> np.ndarray:
    """``l2n(DVt (x - mean))`` when ``pca`` is given, else ``l2n(x)``; ``x (B, C)``."""
    if pca is None:
        return l2n(x)
    return l2n((np.asarray(x, np.float32) - pca.mean) @ pca.dvt.T)


def luma(frames: np.ndarray) -> np.ndarray:
    """``(B, H, W, 3) uint8`` RGB -> ``(B, H, W) float32`` luma in [0, 255] (ITU-R BT.601)."""
    f = np.asarray(frames, dtype=np.float32)
    return f[..., 0] * 0.299 + f[..., 1] * 0.587 + f[..., 2] * 0.114
