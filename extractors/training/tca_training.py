"""Training TCA: supervised contrastive learning with a memory bank and hard-negative mining.

Each step draws ``batch`` positive pairs (two videos that show the same content: a ground-truth copy,
two overlapping recordings), takes a random temporal crop of each (between ``crop_min`` and all of
its frames, a random phase of the 15-fps stream), and encodes both views.  Every view is an anchor:
its positive is the other view of its pair; its negatives are the views of the batch and the entries
of a memory bank (a MoCo-style FIFO queue of earlier steps' TCA_c vectors, ``queue`` entries) that
belong to another *group* (connected component of the overlap graph, so a video is never a negative
of its own copies); of those, only the ``hard_negatives`` most similar to the anchor are kept
(automatic hard-negative mining).  Loss: InfoNCE over ``[positive, hard negatives]`` at
``temperature``.  AdamW.

Deterministic for a seed: step ``s`` draws its pairs, crops and dropout from generators seeded with
``(seed, s)``; the state after any step (weights, optimiser, bank, loss history) resumes to the same
result as an uninterrupted run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from extractors.temporal.tca import TCA


@dataclass(frozen=True)
class TCATrainSettings:
    steps: int = 600
    batch: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.01
    temperature: float = 0.07
    queue: int = 4096
    hard_negatives: int = 64
    crop_min: float = 0.5
    seed: int = 0


@dataclass
class TCAState:
    """Everything a training needs to continue after ``step`` steps."""

    step: int
    model: dict
    optimizer: dict
    bank: torch.Tensor  # (queue, d) TCA_c vectors of earlier views
    bank_group: torch.Tensor  # (queue,) their groups (-1: empty slot)
    bank_next: int
    history: list[float] = field(default_factory=list)


def _generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step))


def views(model: TCA, videos: list[np.ndarray], which: np.ndarray, g: torch.Generator, crop_min: float
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops of ``videos[which]`` at the model's rate: frames ``(V, T, d)`` (``T``: the longest
    crop, at most ``padding_size``) and their validity ``(V, T)``."""
    cfg = model.config
    crops = []
    for v in which.tolist():  # one crop per drawn video (a batch's worth: tens of views)
        x = videos[v]
        phase = int(torch.randint(cfg.step, (1,), generator=g)) if len(x) > cfg.step else 0
        s = np.asarray(x[phase:: cfg.step], dtype=np.float32)
        n = len(s)
        keep = max(1, int(np.ceil(n * (crop_min + (1 - crop_min) * float(torch.rand(1, generator=g))))))
        start = int(torch.randint(n - keep + 1, (1,), generator=g)) if n > keep else 0
        crops.append(s[start:start + keep][: cfg.padding_size])
    T = max(1, max(len(c) for c in crops))
    frames = torch.zeros((len(crops), T, cfg.dim))
    valid = torch.zeros((len(crops), T), dtype=torch.bool)
    for i, c in enumerate(crops):
        frames[i, : len(c)] = torch.from_numpy(c)
        valid[i, : len(c)] = True
    return frames, valid


def contrastive_loss(c: torch.Tensor, partner: torch.Tensor, group: torch.Tensor, bank: torch.Tensor,
                     bank_group: torch.Tensor, temperature: float, hard: int) -> torch.Tensor:
    """InfoNCE of every view ``c (V, d)`` against its ``partner`` (index) and its ``hard`` most similar
    negatives among the other views and the bank whose group differs from its own."""
    V = c.shape[0]
    pos = (c * c[partner]).sum(dim=1)  # (V,)
    cand = torch.cat([c, bank.to(c.dtype)])  # (V + Q, d)
    cand_group = torch.cat([group, bank_group])
    sim = c @ cand.T  # (V, V + Q)
    negative = (cand_group[None, :] != group[:, None]) & (cand_group[None, :] >= 0)
    sim = torch.where(negative, sim, torch.full((), -torch.inf, dtype=sim.dtype))
    k = min(hard, cand.shape[0])
    neg = sim.topk(k, dim=1).values  # the hardest negatives (-inf where fewer exist)
    logits = torch.cat([pos[:, None], neg], dim=1) / temperature
    return torch.nn.functional.cross_entropy(logits, torch.zeros(V, dtype=torch.long, device=logits.device))


def initial_state(model: TCA, settings: TCATrainSettings) -> TCAState:
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    empty = torch.full((settings.queue,), -1, dtype=torch.long)
    return TCAState(0, _cpu(model.state_dict()), _cpu(opt.state_dict()),
                    torch.zeros((settings.queue, model.config.width)), empty, 0, [])


def train_tca(model: TCA, videos: list[np.ndarray], groups: np.ndarray, pairs: np.ndarray,
              settings: TCATrainSettings, state: TCAState | None = None,
              on_checkpoint: Callable[[TCAState], None] | None = None, every: int = 50,
              device: torch.device | None = None) -> TCAState:
    """Train ``model`` in place on positive ``pairs (P, 2)`` of ``videos`` (15-fps features) whose
    ``groups (V,)`` say which videos share content; resumes from ``state``; ``on_checkpoint`` receives
    the state (on the CPU) every ``every`` steps and after the last one.  ``device``: where the model
    runs (CPU by default; the draws stay on the CPU, so a run is reproducible across devices up to
    floating-point rounding)."""
    dev = device or torch.device("cpu")
    if len(pairs) == 0:
        raise ValueError("TCA training needs at least one positive pair")
    st = state or initial_state(model, settings)
    model.load_state_dict(st.model)
    model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    opt.load_state_dict(_cpu(st.optimizer))  # a copy: the optimiser updates its state in place
    bank, bank_group, nxt = st.bank.clone().to(dev), st.bank_group.clone().to(dev), st.bank_next
    history = list(st.history)
    pairs_t = torch.as_tensor(np.asarray(pairs, dtype=np.int64))
    groups_t = torch.as_tensor(np.asarray(groups, dtype=np.int64)).to(dev)
    model.train()
    for step in range(st.step, settings.steps):
        g = _generator(settings.seed, step)
        torch.manual_seed(int(settings.seed) * 1_000_003 + step)  # dropout
        pick = pairs_t[torch.randint(len(pairs_t), (settings.batch,), generator=g)]  # (batch, 2)
        flip = torch.rand(settings.batch, generator=g) < 0.5
        pick = torch.where(flip[:, None], pick.flip(1), pick)
        which = torch.cat([pick[:, 0], pick[:, 1]])  # anchors' views, then their partners'
        frames, valid = views(model, videos, which.numpy(), g, settings.crop_min)
        c = model.video_vector(model(frames.to(dev), valid.to(dev)))
        B = settings.batch
        partner = torch.cat([torch.arange(B, 2 * B), torch.arange(B)]).to(dev)
        which = which.to(dev)
        loss = contrastive_loss(c, partner, groups_t[which], bank, bank_group, settings.temperature,
                                settings.hard_negatives)
        opt.zero_grad()
        loss.backward()
        opt.step()
        # enqueue this step's views (oldest entries overwritten)
        idx = (nxt + torch.arange(len(which), device=dev)) % len(bank)
        bank[idx] = c.detach()
        bank_group[idx] = groups_t[which]
        nxt = int((nxt + len(which)) % len(bank))
        history.append(float(loss.detach()))
        done = step + 1
        if on_checkpoint is not None and (done % every == 0 or done == settings.steps):
            on_checkpoint(TCAState(done, _cpu(model.state_dict()), _cpu(opt.state_dict()), _cpu(bank),
                                   _cpu(bank_group), nxt, list(history)))
    model.eval()
    model.cpu()
    return TCAState(settings.steps, _cpu(model.state_dict()), _cpu(opt.state_dict()), _cpu(bank), _cpu(bank_group),
                    nxt, history)


def _cpu(obj):
    """A copy of a (nested) state dict with every tensor on the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu(v) for v in obj]
    return obj
