"""MultiVLAD frame descriptors (the LAMV paper's other frame feature), without weights.

Per frame:

1. dense SIFT (computed here in torch, vectorised over frames): gradient
   orientations in 8 bins (linear interpolation), pooled in ``cell`` x ``cell``
   pixel cells, 4 x 4 cells per descriptor (128-d), one descriptor every
   ``stride`` cells; L2, clip at 0.2, L2, then RootSIFT (L1 + square root).
   Each descriptor is weighted by its contrast (flat regions weigh ~0);
2. a PCA fitted on the corpus projects the 128-d descriptors to ``p`` dims;
3. ``V`` vocabularies of ``k`` centroids (k-means on the corpus, different
   seeds) each give a VLAD (sum of residuals to the nearest centroid),
   intra-normalised per centroid, power-normalised (signed square root) and
   L2-normalised; the ``V`` VLADs are concatenated and L2-normalised;
4. PCA-whitening fitted on the corpus (``pipeline``'s PCA artifact) to 512-d.

The vocabularies (step 2 and 3) are a :class:`Vocabulary`, fitted by
:func:`fit_vocabulary` on a corpus's own frames (no annotations).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from extractors.frame.base import luma, whiten
from extractors.frame.pca import PCAWhitening


@dataclass(frozen=True)
class MVLADSettings:
    cell: int = 4  # pixels per SIFT cell (a descriptor covers 4 x 4 cells)
    stride: int = 2  # cells between descriptors
    p: int = 64  # local descriptor dims after PCA
    k: int = 16  # centroids per vocabulary
    vocabularies: int = 4
    contrast: float = 0.02  # gradient energy below which a descriptor fades out
    max_samples: int = 200_000  # local descriptors used to fit the vocabularies
    kmeans_iters: int = 25
    seed: int = 0


@dataclass
class Vocabulary:
    """Fitted on a corpus: local PCA ``mean (1, 128)``, ``proj (p, 128)``; ``centroids (V, k, p)``."""

    mean: np.ndarray
    proj: np.ndarray
    centroids: np.ndarray
    provenance: dict = field(default_factory=dict)

    @property
    def vocab_id(self) -> str:
        h = hashlib.sha256(self.mean.tobytes() + self.proj.tobytes() + self.centroids.tobytes()).hexdigest()[:16]
        return f"mvlad-vocab:sha256:{h}"

    @property
    def dim(self) -> int:
        V, k, p = self.centroids.shape
        return V * k * p


# --------------------------------------------------------------------------- dense SIFT


def dense_sift(frames: np.ndarray, cell: int = 4, stride: int = 2,
               contrast: float = 0.02) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense RootSIFT of ``(B, H, W, 3) uint8`` frames.

    Returns:
        ``(B, N, 128) float32`` descriptors and ``(B, N) float32`` contrast weights in [0, 1]
        (``N`` depends only on the frame size).
    """
    g = torch.from_numpy(luma(frames) / 255.0)[:, None]  # (B, 1, H, W)
    kx = torch.tensor([[[[-0.5, 0.0, 0.5]]]])
    gx = torch.nn.functional.conv2d(torch.nn.functional.pad(g, (1, 1, 0, 0), mode="replicate"), kx)
    gy = torch.nn.functional.conv2d(torch.nn.functional.pad(g, (0, 0, 1, 1), mode="replicate"),
                                    kx.transpose(2, 3))
    mag = torch.sqrt(gx * gx + gy * gy)  # (B, 1, H, W)
    ang = torch.remainder(torch.atan2(gy, gx), 2 * math.pi) / (2 * math.pi / 8)  # in bins, [0, 8)
    centres = torch.arange(8, dtype=ang.dtype).view(1, 8, 1, 1)
    dist = (ang - centres).abs()
    dist = torch.minimum(dist, 8 - dist)  # circular distance to each bin centre
    hist = torch.relu(1 - dist) * mag  # (B, 8, H, W): linear interpolation between the two nearest bins
    cells = torch.nn.functional.avg_pool2d(hist, cell, cell)  # (B, 8, Hc, Wc)
    B = cells.shape[0]
    if cells.shape[2] < 4 or cells.shape[3] < 4:
        return torch.zeros(B, 0, 128), torch.zeros(B, 0)
    patches = torch.nn.functional.unfold(cells, kernel_size=4, stride=stride)  # (B, 8*16, N)
    d = patches.view(B, 8, 16, -1).permute(0, 3, 2, 1).reshape(B, -1, 128)  # (B, N, 128) cell-major
    energy = d.norm(dim=-1)
    weight = (energy / contrast).clamp(max=1.0)
    d = d / energy.clamp_min(1e-12)[..., None]
    d = d.clamp(max=0.2)
    d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    d = torch.sqrt(d / d.sum(dim=-1, keepdim=True).clamp_min(1e-12))  # RootSIFT
    return d.float(), weight.float()


# --------------------------------------------------------------------------- fitting


def kmeans(x: np.ndarray, k: int, iters: int, seed: int) -> np.ndarray:
    """Lloyd's k-means, ``x (n, p) float32`` -> ``(k, p)`` centroids (deterministic for ``seed``)."""
    rng = np.random.default_rng(seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    c = xt[torch.from_numpy(rng.choice(len(x), k, replace=False))].clone()
    for _ in range(iters):
        assign = torch.cdist(xt, c).argmin(dim=1)
        onehot = torch.nn.functional.one_hot(assign, k).float()  # (n, k)
        counts = onehot.sum(0)
        sums = onehot.T @ xt
        empty = counts == 0
        c = torch.where(empty[:, None], c, sums / counts.clamp_min(1)[:, None])
        if bool(empty.any()):  # re-seed an empty centroid on a random sample
            c[empty] = xt[torch.from_numpy(rng.choice(len(x), int(empty.sum()), replace=False))]
    return c.numpy()


def fit_vocabulary(local: np.ndarray, settings: MVLADSettings, provenance: dict | None = None) -> Vocabulary:
    """Fit the local PCA and ``V`` vocabularies on RootSIFT descriptors ``local (n, 128)``."""
    if len(local) < settings.k * 4:
        raise ValueError(f"MultiVLAD: {len(local)} local descriptors are too few to fit {settings.k} centroids")
    rng = np.random.default_rng(settings.seed)
    if len(local) > settings.max_samples:
        local = local[rng.choice(len(local), settings.max_samples, replace=False)]
    x = np.asarray(local, dtype=np.float64)
    mean = x.mean(axis=0, keepdims=True)
    xc = x - mean
    eigval, eigvec = np.linalg.eigh(xc.T @ xc)
    proj = eigvec[:, np.argsort(eigval)[::-1][: settings.p]].T  # (p, 128)
    y = (xc @ proj.T).astype(np.float32)
    cents = np.stack([kmeans(y, settings.k, settings.kmeans_iters, settings.seed + 1 + v)
                      for v in range(settings.vocabularies)])
    prov = {"n_local": len(local), **(provenance or {}),
            "settings": {k: v for k, v in settings.__dict__.items()}}
    return Vocabulary(mean.astype(np.float32), proj.astype(np.float32), cents.astype(np.float32), prov)


# --------------------------------------------------------------------------- VLAD


def multi_vlad(desc: torch.Tensor, weight: torch.Tensor, vocab: Vocabulary) -> np.ndarray:
    """``(B, N, 128)`` local descriptors + ``(B, N)`` weights -> ``(B, V*k*p) float32`` MultiVLAD."""
    B = desc.shape[0]
    mean, proj = torch.from_numpy(vocab.mean), torch.from_numpy(vocab.proj)
    cents = torch.from_numpy(vocab.centroids)  # (V, k, p)
    V, k, p = cents.shape
    if desc.shape[1] == 0:
        return np.zeros((B, V * k * p), np.float32)
    y = (desc - mean) @ proj.T  # (B, N, p)
    flat = cents.reshape(V * k, p)
    d2 = (flat * flat).sum(-1) - 2 * (y @ flat.T)  # (B, N, V*k): squared distances up to ||y||^2
    assign = d2.view(B, -1, V, k).argmin(-1)  # (B, N, V)
    onehot = torch.nn.functional.one_hot(assign, k).to(y.dtype) * weight[:, :, None, None]  # (B, N, V, k)
    sums = torch.einsum("bnvk,bnp->bvkp", onehot, y)
    vlad = sums - onehot.sum(1)[..., None] * cents[None]  # (B, V, k, p)
    vlad = vlad / vlad.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # intra-normalisation
    vlad = torch.sign(vlad) * torch.sqrt(vlad.abs())  # power normalisation
    vlad = vlad / vlad.flatten(2).norm(dim=-1)[..., None, None].clamp_min(1e-12)  # per vocabulary
    out = vlad.reshape(B, -1)
    return (out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)).numpy().astype(np.float32)


class MultiVLADExtractor:
    """Frame descriptors: MultiVLAD of dense RootSIFT, PCA-whitened when ``pca`` is given."""

    weights_id = "none"
    precision = "float32"

    def __init__(self, vocab: Vocabulary, pca: PCAWhitening | None = None,
                 settings: MVLADSettings | None = None) -> None:
        self.vocab = vocab
        self.pca = pca
        self.settings = settings or MVLADSettings()
        self.device = torch.device("cpu")

    @property
    def model_id(self) -> str:
        s = self.settings
        return f"mvlad-dsift{s.cell}x{s.stride}-{self.vocab.vocab_id}"

    def pca_samples(self, frames: np.ndarray) -> np.ndarray:
        d, w = dense_sift(frames, self.settings.cell, self.settings.stride, self.settings.contrast)
        return multi_vlad(d, w, self.vocab)

    def describe(self, frames: np.ndarray) -> np.ndarray:
        return whiten(self.pca_samples(frames), self.pca)
