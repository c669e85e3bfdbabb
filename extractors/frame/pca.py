"""PCA-whitening of regional descriptors (spec 7.6, 7.8, 7.9).

``v -> DVt (v - mean)``: ``mean (1, C)``; ``DVt (D, C)`` rows are eigenvectors of
the (un-normalised) scatter matrix of the centred training vectors, by
decreasing eigenvalue, each divided by ``sqrt(eigenvalue + 1e-7)``.

Sources: the published YFCC100M files ``<prefix>_mean_resnet34_<level>.t7`` and
``<prefix>_Dvt_resnet34_<level>.t7`` (``torch.save`` files, loaded with
``weights_only=True``, never unpickled as arbitrary objects), or a PCA trained
here and stored in HDF5 with its provenance.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from extractors.runtime.errors import VideoAlignError

EIG_EPS = 1e-7


class PCAError(VideoAlignError, ValueError):
    """A PCA file that is missing or malformed; the message names the file."""


@dataclass
class PCAWhitening:
    """``mean (1, C) float32``, ``dvt (D, C) float32`` and where they came from."""

    mean: np.ndarray
    dvt: np.ndarray
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float32).reshape(1, -1)
        self.dvt = np.asarray(self.dvt, dtype=np.float32)
        if self.dvt.ndim != 2 or self.dvt.shape[1] != self.mean.shape[1]:
            raise PCAError(f"PCA shapes do not match: mean {self.mean.shape}, DVt {self.dvt.shape}")

    @property
    def pca_id(self) -> str:
        """Content hash of the matrices (what a feature file records)."""
        h = hashlib.sha256(self.mean.tobytes() + self.dvt.tobytes()).hexdigest()[:16]
        return f"{self.provenance.get('name', 'pca')}:sha256:{h}"

    def tensors(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.from_numpy(self.mean).to(device), torch.from_numpy(self.dvt).to(device))


def fit_pca(x: np.ndarray, n_components: int | None = None,
            shrinkage: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Fit on ``x (n, C)``: returns ``(mean (1, C), DVt (D, C))`` (float64 internally).

    ``shrinkage`` regularises the whitening: component ``i`` is divided by
    ``sqrt(lambda_i + shrinkage * lambda_max)`` (0: plain whitening, the reference's;
    1: weak components are no longer blown up, for corpora with fewer training
    vectors than dimensions).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise PCAError(f"need at least 2 training vectors of shape (n, C), got {x.shape}")
    mean = x.mean(axis=0, keepdims=True)
    xc = x - mean
    eigval, eigvec = np.linalg.eigh(xc.T @ xc)
    order = np.argsort(eigval)[::-1][: n_components or x.shape[1]]
    lam = np.maximum(eigval[order], 0.0)
    dvt = eigvec[:, order].T / np.sqrt(lam + EIG_EPS + shrinkage * lam.max(initial=0.0))[:, None]
    return mean.astype(np.float32), dvt.astype(np.float32)


def train_pca(x: np.ndarray, provenance: dict, n_components: int | None = None,
              shrinkage: float = 0.0) -> PCAWhitening:
    """Fit a whitening on vectors ``x (n, C)`` and record how it was made."""
    mean, dvt = fit_pca(x, n_components, shrinkage)
    prov = {"name": "trained", "n_vectors": int(x.shape[0]), "shrinkage": shrinkage, **provenance}
    return PCAWhitening(mean, dvt, prov)


def published_paths(prefix: str | os.PathLike, level: int) -> tuple[Path, Path]:
    """``(<prefix>_mean_resnet34_<level>.t7, <prefix>_Dvt_resnet34_<level>.t7)``."""
    p = str(prefix)
    return Path(f"{p}_mean_resnet34_{level}.t7"), Path(f"{p}_Dvt_resnet34_{level}.t7")


def load_published(prefix: str | os.PathLike, level: int = 29) -> PCAWhitening:
    """Load the published YFCC100M PCA files (``torch.load(..., weights_only=True)``)."""
    mean_p, dvt_p = published_paths(prefix, level)
    arrays = []
    for p in (mean_p, dvt_p):
        if not p.is_file():
            raise PCAError(f"{p}: PCA file not found (expected the published "
                           f"'<prefix>_mean_resnet34_{level}.t7' / '_Dvt_' pair)")
        try:
            t = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise PCAError(f"{p}: not a torch tensor file that loads with weights_only=True "
                           f"({type(exc).__name__}); refused, its code is never executed") from None
        if not isinstance(t, torch.Tensor):
            raise PCAError(f"{p}: expected a tensor, found {type(t).__name__}")
        arrays.append(t.float().numpy())
    return PCAWhitening(arrays[0], arrays[1], {"name": Path(str(prefix)).name, "source": "published",
                                               "files": [str(mean_p), str(dvt_p)], "level": level})
