"""ResNet-34 truncated at a "level", without torchvision (spec section 7.3).

Module names and parameter shapes follow torchvision's ``resnet34`` exactly,
so its published ImageNet state dict loads as is.

Levels: 1 = after ``conv1 + bn1 + relu`` (before the max-pool); then every
BasicBlock contributes two levels, (a) after its ``conv1 + bn1 + relu`` and
(b) after ``conv2 + bn2 + residual + relu``: layer1 = 2..7, layer2 = 8..15,
layer3 = 16..27, layer4 = 28..33.  Level 29 = output of ``layer4[0]``.
Unlike the reference, truncation is correct at every level (the reference
keeps running later stages below level 28).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch
from torch import nn

from extractors.runtime.errors import VideoAlignError

log = logging.getLogger(__name__)

STAGES = (3, 4, 6, 3)
WIDTHS = (64, 128, 256, 512)
MAX_LEVEL = 1 + 2 * sum(STAGES)  # 33
DEFAULT_LEVEL = 29

IMAGENET_URL = "https://download.pytorch.org/models/resnet34-b627a593.pth"
"""torchvision's ``ResNet34_Weights.IMAGENET1K_V1``."""
LEGACY_FILENAMES = ("resnet34-b627a593.pth", "resnet34-333f7ec4.pth")


class WeightsNotFoundError(VideoAlignError, FileNotFoundError):
    """The ImageNet weights are not available locally and could not be downloaded."""


class BasicBlock(nn.Module):
    """torchvision's BasicBlock (two 3x3 convolutions and a residual)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def first_half(self, x: torch.Tensor) -> torch.Tensor:
        """Level (a): ``relu(bn1(conv1(x)))``."""
        return self.relu(self.bn1(self.conv1(x)))

    def second_half(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Level (b): ``relu(bn2(conv2(h)) + identity(x))``."""
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.bn2(self.conv2(h)) + identity)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second_half(x, self.first_half(x))


class ResNet34Trunk(nn.Module):
    """ResNet-34 up to ``level`` (1..33); ``forward`` maps ``(B, 3, H, W)`` to ``(B, C, h, w)``."""

    def __init__(self, level: int = DEFAULT_LEVEL) -> None:
        super().__init__()
        if not 1 <= level <= MAX_LEVEL:
            raise ValueError(f"level must be in 1..{MAX_LEVEL}, got {level}")
        self.level = level
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, (blocks, planes) in enumerate(zip(STAGES, WIDTHS, strict=True)):
            stride = 1 if i == 0 else 2
            layer = []
            for b in range(blocks):
                layer.append(BasicBlock(inplanes, planes, stride if b == 0 else 1))
                inplanes = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))

    @property
    def out_channels(self) -> int:
        return WIDTHS[level_position(self.level)[0]] if self.level > 1 else 64

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        if self.level == 1:
            return x
        x = self.maxpool(x)
        stage, block, half = level_position(self.level)
        for s in range(stage + 1):
            layer = getattr(self, f"layer{s + 1}")
            for b, blk in enumerate(layer):
                if s == stage and b == block:
                    h = blk.first_half(x)
                    return h if half == 0 else blk.second_half(x, h)
                x = blk(x)
        raise AssertionError("unreachable")


def level_position(level: int) -> tuple[int, int, int]:
    """``(stage 0..3, block, half 0=a / 1=b)`` of a level >= 2."""
    if not 2 <= level <= MAX_LEVEL:
        raise ValueError(f"level {level} is not inside a residual stage (2..{MAX_LEVEL})")
    k = level - 2
    for stage, blocks in enumerate(STAGES):
        if k < 2 * blocks:
            return stage, k // 2, k % 2
        k -= 2 * blocks
    raise AssertionError("unreachable")


def default_weights_path() -> Path:
    """Where torch's hub cache keeps the ImageNet checkpoint (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_URL.rsplit("/", 1)[1]


def resolve_weights(weights: str, download: bool = True) -> Path | None:
    """Map the ``weights`` setting to a checkpoint file.

    ``"imagenet"``: the hub cache (any of torchvision's resnet34 file names), then
    a download when ``download`` is True; ``"random"``: None; otherwise a path.

    Raises:
        WeightsNotFoundError: with the path to put the file at.
    """
    if weights == "random":
        return None
    if weights != "imagenet":
        p = Path(os.path.expanduser(weights))
        if not p.is_file():
            raise WeightsNotFoundError(f"ResNet-34 weights file {p} does not exist")
        return p
    target = default_weights_path()
    for name in LEGACY_FILENAMES:
        cand = target.with_name(name)
        if cand.is_file():
            return cand
    if download:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(IMAGENET_URL, str(target), progress=False)
            return target
        except Exception as exc:  # network errors come in many types
            log.debug("download of %s failed: %s", IMAGENET_URL, exc)
    raise WeightsNotFoundError(
        f"ImageNet ResNet-34 weights not found: download {IMAGENET_URL} and save it as {target} "
        f"(or set 'weights: /path/to/resnet34.pth' in the config). Use 'weights: random' only "
        f"for tests; features from random weights are not meaningful.")


def weights_id(path: Path | None, seed: int | None = None) -> str:
    """Short identity of a checkpoint for provenance (``random(seed=N)`` for random weights)."""
    if path is None:
        return f"random(seed={seed})"
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"{path.name}:sha256:{h.hexdigest()[:16]}"


def build_trunk(level: int = DEFAULT_LEVEL, weights: str = "imagenet", download: bool = True,
                seed: int = 0) -> tuple[ResNet34Trunk, str]:
    """Trunk in eval mode with weights loaded; returns ``(model, weights_id)``.

    Random weights are used only when ``weights == "random"`` (deterministic in ``seed``).
    """
    path = resolve_weights(weights, download)
    if path is None:
        torch.manual_seed(seed)
        model = ResNet34Trunk(level)
        log.warning("ResNet-34 with RANDOM weights (seed %d): for tests only", seed)
    else:
        model = ResNet34Trunk(level)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # refused pickles, truncated or foreign files: one line naming the file
            raise ValueError(f"{path}: refused as CNN weights: not a plain tensor checkpoint that loads with "
                             f"weights_only=True ({type(exc).__name__}); its code is never executed") from None
        if not isinstance(state, dict):
            raise ValueError(f"{path}: not a ResNet-34 state dict (a {type(state).__name__})")
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise ValueError(f"{path}: not a ResNet-34 state dict ({str(exc).splitlines()[-1].strip()})"
                             ) from None
        if missing or unexpected:
            raise ValueError(f"{path}: not a ResNet-34 state dict (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]})")
    return model.eval(), weights_id(path, seed)
