"""Frame descriptors: ResNet-34 level-29 trunk -> R-MAC -> PCA-whitening (spec 7).

Same code path on CPU and CUDA.  On CUDA: autocast, channels_last, pinned host
memory and non-blocking copies.  The precision is a setting, never measured at
run time, so the same settings always give the same features:
:func:`resolve_precision` maps ``auto`` to float32 on the CPU and to bfloat16 on
CUDA (float16 where bfloat16 is unsupported); ``float32``, ``bfloat16`` and
``float16`` are taken as given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from extractors.decode.reader import to_model_input
from extractors.frame.pca import PCAWhitening
from extractors.frame.resnet import DEFAULT_LEVEL, build_trunk
from extractors.frame.rmac import aggregate, regional_vectors, rmac_regions

log = logging.getLogger(__name__)

def pick_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision the CNN runs at for a setting and a device (deterministic)."""
    if precision not in ("auto", "float32", "bfloat16", "float16"):
        raise ValueError(f"precision must be auto/float32/bfloat16/float16, got {precision!r}")
    if precision != "auto":
        return precision
    if device.type != "cuda":
        return "float32"
    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


@dataclass
class ExtractorSettings:
    level: int = DEFAULT_LEVEL
    weights: str = "imagenet"
    download_weights: bool = True
    seed: int = 0
    rmac_levels: int = 3
    device: str = "auto"
    precision: str = "auto"  # auto | float32 | bfloat16 | float16


class FrameFeatureExtractor:
    """Maps normalised frames ``(B, 3, H, W) float32`` to descriptors ``(B, D) float32``."""

    def __init__(self, settings: ExtractorSettings | None = None,
                 pca: PCAWhitening | None = None) -> None:
        self.settings = s = settings or ExtractorSettings()
        self.device = pick_device(s.device)
        self.model, self.weights_id = build_trunk(s.level, s.weights, s.download_weights, s.seed)
        self.model = self.model.to(self.device).to(memory_format=torch.channels_last)
        self.pca = pca
        self._pca_t = pca.tensors(self.device) if pca is not None else None
        self.precision = resolve_precision(s.precision, self.device)

    @property
    def model_id(self) -> str:
        return f"resnet34-level{self.settings.level}-rmac{self.settings.rmac_levels}"

    def _fmap(self, x: torch.Tensor, precision: str) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(precision)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=dtype or torch.float32,
                                                     enabled=dtype is not None):
            return self.model(x).float()

    def feature_maps(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w) float32`` trunk outputs."""
        x = torch.as_tensor(frames)
        if self.device.type == "cuda" and not x.is_pinned():
            x = x.pin_memory()
        return self._fmap(x, self.precision)

    def _describe_maps(self, fmap: torch.Tensor) -> torch.Tensor:
        regions = rmac_regions(fmap.shape[2], fmap.shape[3], self.settings.rmac_levels)
        if self._pca_t is None:
            return aggregate(fmap, regions)
        return aggregate(fmap, regions, *self._pca_t)

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Frame descriptors ``(B, D) float32`` on the CPU, unit L2 norm."""
        return self._describe_maps(self.feature_maps(frames)).cpu()

    def describe(self, frames: np.ndarray) -> np.ndarray:
        """``(B, H, W, 3) uint8`` RGB -> ``(B, D) float32`` (the :class:`FrameExtractor` interface)."""

        return self(torch.from_numpy(to_model_input(frames))).numpy()

    def pca_samples(self, frames: np.ndarray) -> np.ndarray:
        """Regional vectors of ``(B, H, W, 3) uint8`` frames: what its PCA-whitening is fitted on."""

        return self.regional(torch.from_numpy(to_model_input(frames))).numpy()

    def regional(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Un-whitened L2-normalised regional vectors ``(B * R, C)`` (PCA training data)."""
        fmap = self.feature_maps(frames)
        regions = rmac_regions(fmap.shape[2], fmap.shape[3], self.settings.rmac_levels)
        return regional_vectors(fmap, regions).cpu()
