"""Frame descriptors: ResNet-34 level-29 trunk -> R-MAC -> PCA-whitening (spec 7).

Same code path on CPU and CUDA.  On CUDA: autocast (bfloat16 where supported,
else float16), channels_last, pinned host memory and non-blocking copies.
On CPU: bfloat16 autocast + channels_last when it is as accurate as float32
on the data at hand (``precision="auto"`` measures it on the first batch:
every frame descriptor must keep a cosine >= 0.999 with float32), else float32.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from extractors.pca import PCAWhitening
from extractors.resnet import DEFAULT_LEVEL, build_trunk
from extractors.rmac import aggregate, regional_vectors, rmac_regions

log = logging.getLogger(__name__)

AUTO_MIN_COSINE = 0.999


def calibration_frames(height: int, width: int, n: int = 16) -> torch.Tensor:
    """``(n, 3, H, W)`` deterministic, image-like normalised frames (smooth colour fields + edges)."""
    g = torch.Generator().manual_seed(1234)
    low = torch.rand(n, 3, max(2, height // 8), max(2, width // 8), generator=g)
    img = torch.nn.functional.interpolate(low, size=(height, width), mode="bilinear", align_corners=False)
    edges = (torch.rand(n, 1, height, width, generator=g) > 0.97).float()
    img = (img * 0.8 + edges * 0.2).clamp(0, 1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (img - mean) / std


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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
        if s.precision not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"precision must be auto/float32/bfloat16/float16, got {s.precision!r}")
        self.precision = s.precision if s.precision != "auto" else None
        if self.device.type == "cuda" and self.precision is None:
            self.precision = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"

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
        if self.precision is None:
            self.precision = self._calibrate(x)
        return self._fmap(x, self.precision)

    def _calibrate(self, x: torch.Tensor) -> str:
        """bfloat16 if it keeps every descriptor within cosine 0.999 of float32 on a fixed,
        deterministic calibration batch at this input size (same decision for every shard)."""
        sample = calibration_frames(x.shape[2], x.shape[3])
        ref = self._describe_maps(self._fmap(sample, "float32"))
        low = self._describe_maps(self._fmap(sample, "bfloat16"))
        cos = float((ref * low).sum(-1).min())
        choice = "bfloat16" if cos >= AUTO_MIN_COSINE else "float32"
        log.info("CPU precision: %s (bfloat16 vs float32 min cosine %.5f on %d calibration frames)",
                 choice, cos, len(sample))
        return choice

    def _describe_maps(self, fmap: torch.Tensor) -> torch.Tensor:
        regions = rmac_regions(fmap.shape[2], fmap.shape[3], self.settings.rmac_levels)
        if self._pca_t is None:
            return aggregate(fmap, regions)
        return aggregate(fmap, regions, *self._pca_t)

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Frame descriptors ``(B, D) float32`` on the CPU, unit L2 norm."""
        return self._describe_maps(self.feature_maps(frames)).cpu()

    def regional(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Un-whitened L2-normalised regional vectors ``(B * R, C)`` (PCA training data)."""
        fmap = self.feature_maps(frames)
        regions = rmac_regions(fmap.shape[2], fmap.shape[3], self.settings.rmac_levels)
        return regional_vectors(fmap, regions).cpu()
