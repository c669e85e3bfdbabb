"""A compact copy-detection CNN trained self-supervised on a corpus's own frames (SSCD in small).

Model (:class:`CopyNet`): four stride-2 stages of 3x3 convolutions with batch
normalisation (32-64-128-256 channels), GeM pooling (p = 3) and a linear
layer to ``dim`` (256). Frames are resized to ``input_size`` x ``input_size``
(aspect ratio not kept, as in training), so any frame size works.

Training (:func:`train_copy_net`, no annotations): each step draws ``batch``
corpus frames, makes two views of each with random combinations of copy
attacks (:mod:`extractors.frame.copy_attacks`) and minimises

    InfoNCE(views, temperature) + koleo_weight * KoLeo(embeddings)

(SimCLR-style InfoNCE over the ``2 * batch`` L2-normalised embeddings, the
other view of the same frame being the only positive; KoLeo = ``-mean log``
of each embedding's distance to its nearest neighbour in the batch, which
spreads the descriptors out). AdamW with a linear warm-up and cosine decay.
Step ``t`` draws its frames and augmentations from a generator seeded with
``(seed, t)``, so training is deterministic for a seed and a run resumed from
a checkpoint (model + optimiser state + step) ends with the same weights as
an uninterrupted one.

The extractor (:class:`SelfSupExtractor`) outputs the L2-normalised ``dim``-d
embedding, PCA-whitened when a PCA is given.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 (torch's convention)

from extractors.decode.reader import IMAGENET_MEAN, IMAGENET_STD
from extractors.frame.base import whiten
from extractors.frame.copy_attacks import AttackSettings, copy_attack
from extractors.frame.pca import PCAWhitening
from extractors.frame.resnet_rmac import pick_device


@dataclass(frozen=True)
class TrainSettings:
    """What :func:`train_copy_net` does (all part of the checkpoint's provenance)."""

    steps: int = 1500
    batch: int = 64
    input_size: int = 112  # training views; inference uses ``CopyNet.input_size``
    dim: int = 256
    width: int = 32  # channels of the first stage (doubling per stage)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 50
    temperature: float = 0.05
    koleo_weight: float = 1.0
    seed: int = 0


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CopyNet(nn.Module):
    """``(B, 3, S, S)`` normalised images -> ``(B, dim)`` embeddings (not normalised)."""

    def __init__(self, dim: int = 256, width: int = 32, input_size: int = 128) -> None:
        super().__init__()
        self.input_size = input_size
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True))
        self.stages = nn.Sequential(_stage(w, 2 * w), _stage(2 * w, 4 * w), _stage(4 * w, 8 * w))
        self.gem_p = 3.0
        self.head = nn.Linear(8 * w, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.stages(self.stem(x))  # (B, 8w, S/16, S/16)
        pooled = f.clamp_min(1e-6).pow(self.gem_p).mean(dim=(2, 3)).pow(1 / self.gem_p)
        return self.head(pooled)


def to_input(frames: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """``(B, H, W, 3) uint8`` RGB -> ``(B, 3, size, size) float32`` in ``[0, 1]`` (antialiased resize)."""
    x = torch.as_tensor(np.asarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def info_nce(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """``z (2B, D)`` unit vectors, rows ``i`` and ``i + B`` two views of one image -> InfoNCE loss."""
    n = z.shape[0] // 2
    sim = (z @ z.T) / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(sim, target)


def koleo(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Kozachenko-Leonenko entropy regulariser: ``-mean log`` nearest-neighbour distance of ``z (n, D)``."""
    with torch.no_grad():
        sim = z @ z.T
        sim.fill_diagonal_(-2.0)
        nn_idx = sim.argmax(dim=1)
    d = (z - z[nn_idx]).norm(dim=1)
    return -torch.log(d + eps).mean()


@dataclass
class TrainState:
    """A training run's resumable state."""

    model: dict
    optimiser: dict
    step: int
    losses: list[float] = field(default_factory=list)


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step))


def learning_rate(s: TrainSettings, step: int) -> float:
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    t = (step - s.warmup) / max(1, s.steps - s.warmup)
    return s.lr * 0.5 * (1 + math.cos(math.pi * t))


def train_copy_net(frames: torch.Tensor, s: TrainSettings, attacks: AttackSettings | None = None,
                   resume: TrainState | None = None, device: str | torch.device = "cpu",
                   on_step: Callable[[int, float], None] | None = None,
                   checkpoint_every: int = 0, on_checkpoint: Callable[[TrainState], None] | None = None,
                   ) -> tuple[CopyNet, TrainState]:
    """Train a :class:`CopyNet` on ``frames (N, 3, S, S) uint8``, the corpus sample (resized to
    ``input_size`` when ``S`` differs).

    ``on_checkpoint`` receives the state every ``checkpoint_every`` steps (the caller saves it
    atomically); passing it back as ``resume`` continues the same run.
    """
    if len(frames) < 2:
        raise ValueError(f"self-supervised training needs at least 2 frames, got {len(frames)}")
    torch.manual_seed(s.seed)  # initial weights
    device = torch.device(device)
    if device.type == "cuda":  # deterministic convolutions (the loss is computed on the CPU)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    model = CopyNet(s.dim, s.width, s.input_size).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    state = TrainState(model.state_dict(), opt.state_dict(), 0, [])
    if resume is not None:
        model.load_state_dict(resume.model)
        opt.load_state_dict(resume.optimiser)
        state = TrainState(model.state_dict(), opt.state_dict(), resume.step, list(resume.losses))
    model.train()
    batch = min(s.batch, len(frames))
    for step in range(state.step, s.steps):
        g = step_generator(s.seed, step)
        idx = torch.randperm(len(frames), generator=g)[:batch]
        x = frames[idx].float() / 255.0
        if x.shape[-1] != s.input_size:
            x = F.interpolate(x, size=(s.input_size, s.input_size), mode="bilinear", antialias=True,
                              align_corners=False)
        views = torch.cat([copy_attack(x, g, attacks), copy_attack(x, g, attacks)])
        for group in opt.param_groups:
            group["lr"] = learning_rate(s, step)
        z = F.normalize(model(normalise(views).to(device)), dim=1).cpu()
        loss = info_nce(z, s.temperature) + s.koleo_weight * koleo(z)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state.losses.append(float(loss.detach()))
        state.step = step + 1
        if on_step is not None:
            on_step(step, state.losses[-1])
        if on_checkpoint is not None and checkpoint_every and state.step % checkpoint_every == 0 \
                and state.step < s.steps:
            on_checkpoint(TrainState(copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()),
                                     state.step, list(state.losses)))  # a snapshot, not live tensors
    model.eval()
    state.model, state.optimiser = model.state_dict(), opt.state_dict()
    return model, state


@dataclass
class FrameModel:
    """A trained :class:`CopyNet`: ``state`` (tensors), its architecture and provenance."""

    state: dict[str, torch.Tensor]
    dim: int
    width: int
    input_size: int
    provenance: dict = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        h = hashlib.sha256()
        for k in sorted(self.state):
            h.update(k.encode())
            h.update(self.state[k].detach().cpu().contiguous().numpy().tobytes())
        return f"selfsup-copynet{self.width}-{self.dim}:sha256:{h.hexdigest()[:16]}"

    def network(self) -> CopyNet:
        net = CopyNet(self.dim, self.width, self.input_size)
        net.load_state_dict(self.state)
        return net.eval()

    @classmethod
    def from_training(cls, net: CopyNet, s: TrainSettings, provenance: dict) -> FrameModel:
        state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        return cls(state, s.dim, s.width, net.input_size, {**provenance, "training": asdict(s)})


class SelfSupExtractor:
    """Frame descriptors from a :class:`FrameModel`, PCA-whitened when ``pca`` is given."""

    weights_id = "none"

    def __init__(self, model: FrameModel, pca: PCAWhitening | None = None, device: str = "auto") -> None:
        self.model = model
        self.pca = pca
        self.device = pick_device(device)
        self.precision = "float32"
        self.net = model.network().to(self.device)
        self.model_id = model.model_id

    @torch.no_grad()
    def pca_samples(self, frames: np.ndarray) -> np.ndarray:
        x = normalise(to_input(frames, self.model.input_size)).to(self.device)
        return F.normalize(self.net(x), dim=1).cpu().numpy().astype(np.float32)

    def describe(self, frames: np.ndarray) -> np.ndarray:
        return whiten(self.pca_samples(frames), self.pca)
