"""Regional maximum activations of convolutions (R-MAC, Tolias et al.), spec 7.4-7.6.

Frame descriptor: region max -> L2 -> subtract PCA mean -> multiply by
``DVt`` (rotate + whiten) -> L2 -> sum over regions -> L2.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

OVERLAP = 0.4
STEPS = (2, 3, 4, 5, 6, 7)
POOL_CHUNK_ELEMENTS = 1 << 24


@lru_cache(maxsize=256)
def _regions_cached(H: int, W: int, L: int) -> tuple[tuple[int, int, int, int], ...]:
    w = min(H, W)
    extra_w = extra_h = 0
    if H != W:
        b = np.array([(max(H, W) - w) / (s - 1) for s in STEPS])
        cost = np.abs((w * w - w * b) / (w * w) - OVERLAP)
        extra = int(np.argmin(cost)) + 1  # first on ties
        if H < W:
            extra_w = extra
        else:
            extra_h = extra
    out = []
    for level in range(1, L + 1):
        wl = int(np.floor(2 * w / (level + 1)))
        wl2 = int(np.floor(wl / 2 - 1))

        def starts(size: int, n: int, wl: int = wl, wl2: int = wl2) -> list[int]:
            step = (size - wl) / (n - 1) if n > 1 else 0.0
            return [int(np.floor(wl2 + step * i)) - wl2 for i in range(n)]

        for y in starts(H, level + extra_h):
            for x in starts(W, level + extra_w):
                x2 = x - max(0, x + wl - W)
                y2 = y - max(0, y + wl - H)
                out.append((x2, y2, wl, wl))
    return tuple(out)


def rmac_regions(H: int, W: int, L: int = 3) -> np.ndarray:
    """R-MAC region grid ``(R, 4) int64`` as ``(x, y, w, h)`` in feature-map cells.

    Level by level, rows outer, columns inner; may contain duplicates, and maps
    with ``min(H, W) = 1`` give zero-size regions at levels >= 2 (kept here,
    skipped by the pooling).
    """
    if H < 1 or W < 1 or L < 1:
        raise ValueError(f"bad region grid request H={H} W={W} L={L}")
    return np.asarray(_regions_cached(int(H), int(W), int(L)), dtype=np.int64).reshape(-1, 4)


def region_masks(H: int, W: int, regions: np.ndarray) -> torch.Tensor:
    """``(R', H*W) bool`` cell masks of the non-empty regions."""
    keep = [r for r in regions if r[2] > 0 and r[3] > 0]
    m = torch.zeros(len(keep), H, W, dtype=torch.bool)
    for i, (x, y, w, h) in enumerate(keep):
        m[i, y:y + h, x:x + w] = True
    return m.reshape(len(keep), H * W)


def region_max(fmap: torch.Tensor, regions: np.ndarray) -> torch.Tensor:
    """Spatial max of every region for a whole batch: ``(B, C, H, W)`` -> ``(B, R', C)``.

    One masked max over all regions at once, chunked over frames so the
    ``(b, C, R', H*W)`` intermediate stays below ``POOL_CHUNK_ELEMENTS``.
    """
    B, C, H, W = fmap.shape
    masks = region_masks(H, W, regions).to(fmap.device)  # (R, HW)
    R = masks.shape[0]
    flat = fmap.reshape(B, C, 1, H * W)
    fill = torch.finfo(fmap.dtype).min
    step = max(1, POOL_CHUNK_ELEMENTS // max(1, C * R * H * W))
    parts = [flat[b0:b0 + step].masked_fill(~masks, fill).amax(dim=-1)
             for b0 in range(0, B, step)]  # each (b, C, R)
    return torch.cat(parts).transpose(1, 2)


def l2n(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """L2-normalise along ``dim`` (a zero vector stays zero)."""
    return x / x.norm(dim=dim, keepdim=True).clamp_min(1e-30)


def aggregate(fmap: torch.Tensor, regions: np.ndarray, mean: torch.Tensor | None = None,
              dvt: torch.Tensor | None = None) -> torch.Tensor:
    """Frame descriptors ``(B, D) float32`` from feature maps ``(B, C, H, W)``.

    ``mean (1, C)`` and ``dvt (D, C)`` are the PCA-whitening; without them the
    regional vectors are summed as they are (used to collect PCA training data).
    """
    v = l2n(region_max(fmap.float(), regions))  # (B, R, C)
    if dvt is not None:
        v = l2n((v - mean) @ dvt.T)
    return l2n(v.sum(dim=1))


def regional_vectors(fmap: torch.Tensor, regions: np.ndarray) -> torch.Tensor:
    """L2-normalised regional vectors ``(B * R', C)`` (PCA training data)."""
    v = l2n(region_max(fmap.float(), regions))
    return v.reshape(-1, v.shape[-1])
