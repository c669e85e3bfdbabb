"""Training of the learned LAMV kernel (LAMV paper, sections 3.2-3.3) on frame features in memory.

The kernel is a :class:`~extractors.temporal.tmk.TMK` whose ``(P, m)`` Fourier coefficients are
trained; everything else (periods, normalisation) is fixed.  One epoch draws one
triplet ``(X0, X+, X-)`` of ``L``-frame snippets per overlapping video pair
(:mod:`extractors.training.lamv_triplets`), the hardest of ``negatives`` candidate negatives
under the current coefficients, and minimises :func:`extractors.training.lamv_loss.lamv_loss`
with SGD (Nesterov momentum) in mini-batches.

Speed: a snippet's descriptor depends on the coefficients only through a
per-frequency factor ``sqrt(a_{p,k})`` (``TMK.trig_table``), so the
coefficient-free descriptors ``(S, P, 2m, d)`` of an epoch's snippets are computed
once (one batched product with a fixed ``(P*2m, L)`` table) and rescaled at every
step; the candidate negatives come from a per-epoch pool of ``pool_per_video``
random snippets of every video.

Snippet times are frame indices ``0..L-1`` (1/15 s); videos shorter than ``L`` are
zero-padded (zero rows add nothing to a TMK descriptor).  Deterministic for a seed:
epoch ``e`` draws everything from ``numpy.random.default_rng([seed, e])``, so a run
resumed from the state saved after any epoch ends with the same coefficients.

Shapes: ``V`` videos, ``n`` pairs, ``B`` triplets in a batch, ``S`` snippets,
``L`` frames per snippet, ``d`` feature dimension, ``K`` offsets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from extractors.runtime.timebase import FPS
from extractors.temporal.tmk import TMK
from extractors.training.lamv_loss import LAMVLossSettings, lamv_loss
from extractors.training.lamv_triplets import sample_snippet_pairs


@dataclass(frozen=True)
class LAMVTrainSettings:
    """The paper's settings by default (500-frame snippets, >= 75 % overlap, 20 negatives,
    batches of 128, SGD with Nesterov momentum 0.9 at learning rate 0.001).

    ``min_cycles``: the coefficients of frequencies that complete fewer than this many cycles over a
    training snippet stay at their initial values (0: every coefficient is trained, as in the paper).
    Over a snippet such a frequency is nearly constant, so training can only learn it as a weight on the
    snippets' mean-frame similarity; on whole videos (long, or copies amid unrelated footage) it is not
    that (``frozen_coefficients``)."""

    epochs: int = 40
    batch: int = 128
    lr: float = 0.001
    momentum: float = 0.9
    snippet_frames: int = 500
    min_overlap: float = 0.75
    negatives: int = 20
    pool_per_video: int = 2
    seed: int = 0
    loss: LAMVLossSettings = field(default_factory=LAMVLossSettings)
    min_cycles: float = 0.0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch", "snippet_frames", "negatives", "pool_per_video"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.min_overlap <= 1.0:
            raise ValueError(f"min_overlap must be in (0, 1], got {self.min_overlap}")
        if self.lr <= 0 or not 0 <= self.momentum < 1:
            raise ValueError(f"need lr > 0 and 0 <= momentum < 1, got {self.lr}, {self.momentum}")
        if self.min_cycles < 0:
            raise ValueError(f"min_cycles must be >= 0, got {self.min_cycles}")


def frozen_coefficients(model: TMK, settings: LAMVTrainSettings) -> torch.Tensor:
    """``(P, m)`` bool: the coefficients training leaves alone, those of frequencies completing fewer than
    ``settings.min_cycles`` cycles over a ``snippet_frames`` snippet (``omega * L / 2 pi``)."""
    cycles = model.omega.to(torch.float64) * settings.snippet_frames / (2 * math.pi)
    return (cycles < settings.min_cycles).to(model.a.device)


@dataclass(frozen=True)
class TrainingPairs:
    """Overlapping video pairs: ``a``, ``b`` ``(n,)`` indices into the videos, ``offset`` ``(n,)`` in
    1/15-s frames (frame ``i`` of ``a`` shows frame ``i - offset`` of ``b``).  ``lo``, ``hi`` ``(n,)``
    optionally bound the frames of ``a`` that hold the shared content (a partial copy amid unrelated
    material); by default the whole overlap of the two timelines is shared."""

    a: np.ndarray
    b: np.ndarray
    offset: np.ndarray
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.a)

    def subset(self, keep: np.ndarray) -> TrainingPairs:
        return TrainingPairs(self.a[keep], self.b[keep], self.offset[keep],
                             None if self.lo is None else self.lo[keep], None if self.hi is None else self.hi[keep])


@dataclass(frozen=True)
class EpochRecord:
    """Mean training loss (and its parts) of an epoch, and the validation scores after it."""

    epoch: int
    loss: float
    retrieval_loss: float
    localisation_loss: float
    val_loss: float = math.nan
    val_localisation_1s: float = math.nan
    val_retrieval_accuracy: float = math.nan


@dataclass
class TrainingState:
    """Everything a resumed run needs: the raw coefficient table, the optimiser's momentum, the
    epochs done and their records."""

    raw_coefficients: torch.Tensor
    momentum: torch.Tensor | None
    epoch: int = 0
    history: list[EpochRecord] = field(default_factory=list)


class SnippetBank:
    """Frame features of every video in one ``(F, d)`` table, cut into coefficient-free snippet
    descriptors in batches."""

    def __init__(self, videos: Sequence[np.ndarray], model: TMK, length: int, chunk: int = 64) -> None:
        if not videos:
            raise ValueError("no videos to train on")
        self.lengths = np.array([len(v) for v in videos], dtype=np.int64)
        if (self.lengths < 1).any():
            raise ValueError("every training video needs at least one frame")
        self.starts = np.r_[0, np.cumsum(self.lengths)[:-1]]
        self.frames = torch.from_numpy(np.concatenate([np.asarray(v, np.float32) for v in videos]))
        self.length = int(length)
        self.chunk = chunk
        t = torch.arange(self.length, dtype=torch.float64)
        phase = model.omega.to(torch.float64)[:, :, None] * t[None, None, :]  # (P, m, L)
        self.table = torch.cat([torch.sin(phase), torch.cos(phase)], dim=1).float()  # (P, 2m, L)

    @property
    def dim(self) -> int:
        return int(self.frames.shape[1])

    def describe(self, video: np.ndarray, start: np.ndarray) -> torch.Tensor:
        """``(S, P, 2m, d)`` coefficient-free descriptors of snippets ``video[start : start + L]``."""
        video, start = np.asarray(video, np.int64), np.asarray(start, np.int64)
        P, m2, L = self.table.shape
        flat = self.table.reshape(P * m2, L)
        out = torch.empty((len(video), P, m2, self.dim), dtype=torch.float32)
        steps = np.arange(L)
        for c0 in range(0, len(video), self.chunk):
            v, s = video[c0:c0 + self.chunk], start[c0:c0 + self.chunk]
            pos = s[:, None] + steps[None, :]  # (c, L) frames into each video
            inside = pos < self.lengths[v][:, None]
            rows = torch.from_numpy(np.where(inside, self.starts[v][:, None] + pos, 0))
            x = self.frames[rows] * torch.from_numpy(inside)[..., None]  # (c, L, d)
            out[c0:c0 + len(v)] = torch.matmul(flat, x).reshape(len(v), P, m2, -1)
        return out


def scaled(model: TMK, raw: torch.Tensor) -> torch.Tensor:
    """Normalised descriptors under the model's current coefficients, differentiable in them:
    ``raw (S, P, 2m, d)`` times ``sqrt(a)`` per frequency, then the model's normalisation."""
    sq = model._coeffs().sqrt()
    return model.normalize(raw * torch.cat([sq, sq], dim=1)[None, :, :, None])


def snippet_offsets(length: int) -> torch.Tensor:
    """Every offset two ``L``-frame snippets can have: ``-(L-1) .. L-1`` frames."""
    return torch.arange(-(length - 1), length, dtype=torch.float64)


def batch_loss(model: TMK, raw0: torch.Tensor, raw_pos: torch.Tensor, raw_neg: torch.Tensor,
               delta: torch.Tensor, offsets: torch.Tensor, settings: LAMVLossSettings):
    """The LAMV loss of a batch of triplets from coefficient-free descriptors ``(B, P, 2m, d)`` each and
    true offsets ``delta (B,)`` (frames); differentiable in the model's coefficients."""
    f0, fp, fn = scaled(model, raw0), scaled(model, raw_pos), scaled(model, raw_neg)
    pos = model.score_pairs(f0, fp, offsets, normalized=True)
    neg = model.score_pairs(f0, fn, offsets, normalized=True)
    return lamv_loss(pos, neg, offsets, delta, settings), pos


def components(n_videos: int, pairs: TrainingPairs) -> np.ndarray:
    """``(V,)`` connected component of every video in the overlap graph (labels ``0..``)."""
    parent = np.arange(n_videos)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in zip(pairs.a.tolist(), pairs.b.tolist(), strict=True):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([root(i) for i in range(n_videos)])
    return np.unique(roots, return_inverse=True)[1]


@dataclass(frozen=True)
class Triplets:
    """Snippets of a set of triplets: video and start of ``X0`` and ``X+``, and the true offset."""

    video0: np.ndarray
    start0: np.ndarray
    video_pos: np.ndarray
    start_pos: np.ndarray
    delta: np.ndarray


def draw_positives(bank: SnippetBank, pairs: TrainingPairs, settings: LAMVTrainSettings,
                   rng: np.random.Generator) -> Triplets:
    """One ``(X0, X+)`` per pair (pairs without ``min_overlap`` of shared content are left out)."""
    sp = sample_snippet_pairs(bank.lengths[pairs.a], bank.lengths[pairs.b], pairs.offset, settings.snippet_frames,
                              settings.min_overlap, rng, pairs.lo, pairs.hi)
    keep = sp.valid
    return Triplets(pairs.a[keep], sp.start_a[keep], pairs.b[keep], sp.start_b[keep], sp.delta[keep])


def hardest_negatives(model: TMK, f0: torch.Tensor, pool: torch.Tensor, pool_video: np.ndarray,
                      eligible: np.ndarray, n: int, offsets: torch.Tensor,
                      rng: np.random.Generator) -> np.ndarray:
    """For each anchor ``f0 (B, P, 2m, d)`` (normalised), the pool row with the highest ``K*`` among one
    random pool snippet of each of ``n`` random eligible videos (``eligible (B, V)`` bool)."""
    B, V = eligible.shape
    if not eligible.any(axis=1).all():
        raise ValueError("a triplet has no negative: every video overlaps its pair's (train on more than "
                         "one group of overlapping videos)")
    keys = np.where(eligible, rng.random((B, V)), -1.0)
    k = min(n, V)
    chosen = np.argsort(-keys, axis=1, kind="stable")[:, :k]  # (B, k) videos, eligible first
    usable = np.take_along_axis(eligible, chosen, axis=1)
    per_video = np.bincount(pool_video, minlength=V)
    first = np.r_[0, np.cumsum(per_video)[:-1]]
    rows = first[chosen] + np.floor(rng.random((B, k)) * per_video[chosen]).astype(np.int64)
    with torch.no_grad():
        cand = pool[torch.from_numpy(rows.reshape(-1))]
        anchors = f0.repeat_interleave(k, dim=0)
        best = model.score_pairs(anchors, cand, offsets, normalized=True).amax(dim=1).reshape(B, k)
        best = torch.where(torch.from_numpy(usable), best, torch.full_like(best, -torch.inf))
    return rows[np.arange(B), best.argmax(dim=1).numpy()]


def _epoch_pool(bank: SnippetBank, settings: LAMVTrainSettings, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """``pool_per_video`` random snippet starts of every video, grouped by video."""
    V, k = len(bank.lengths), settings.pool_per_video
    video = np.repeat(np.arange(V), k)
    span = np.maximum(bank.lengths - settings.snippet_frames, 0)
    start = np.floor(rng.random(V * k) * (span[video] + 1)).astype(np.int64)
    return video, start


def localisation_hits(curves: torch.Tensor, offsets: torch.Tensor, delta: torch.Tensor,
                      tolerance: float = FPS) -> torch.Tensor:
    """``(B,)`` bool: the curve's arg-max lies within ``tolerance`` frames of ``delta``."""
    return (offsets[curves.argmax(dim=1)] - delta).abs() <= tolerance


def validate(model: TMK, bank: SnippetBank, triplets: Triplets, negatives: tuple[np.ndarray, np.ndarray],
             settings: LAMVTrainSettings) -> tuple[float, float, float]:
    """Loss, localisation accuracy at 1 s and retrieval accuracy (``K*(X0,X+) > K*(X0,X-)``) on fixed
    held-out triplets (``negatives``: one fixed random snippet per triplet)."""
    if len(triplets.delta) == 0:
        return math.nan, math.nan, math.nan
    offsets = snippet_offsets(settings.snippet_frames)
    with torch.no_grad():
        r0 = bank.describe(triplets.video0, triplets.start0)
        rp = bank.describe(triplets.video_pos, triplets.start_pos)
        rn = bank.describe(*negatives)
        delta = torch.from_numpy(triplets.delta.astype(np.float64))
        loss, pos = batch_loss(model, r0, rp, rn, delta, offsets, settings.loss)
        neg = model.score_pairs(scaled(model, r0), scaled(model, rn), offsets, normalized=True)
        hits = localisation_hits(pos, offsets, delta)
        wins = pos.amax(dim=1) > neg.amax(dim=1)
    return float(loss.total), float(hits.float().mean()), float(wins.float().mean())


def validation_set(bank: SnippetBank, pairs: TrainingPairs, settings: LAMVTrainSettings
                   ) -> tuple[Triplets, tuple[np.ndarray, np.ndarray]]:
    """Fixed validation triplets (one per pair) with one random non-overlapping negative each."""
    rng = np.random.default_rng([settings.seed, 1 << 30])
    trip = draw_positives(bank, pairs, settings, rng)
    comp = components(len(bank.lengths), pairs)
    V = len(bank.lengths)
    eligible = comp[None, :] != comp[trip.video0][:, None]
    if not eligible.any(axis=1).all():  # a single group: negatives from anywhere else in the set
        eligible = np.arange(V)[None, :] != trip.video0[:, None]
    keys = np.where(eligible, rng.random(eligible.shape), -1.0)
    nv = keys.argmax(axis=1)
    span = np.maximum(bank.lengths[nv] - settings.snippet_frames, 0)
    return trip, (nv, np.floor(rng.random(len(nv)) * (span + 1)).astype(np.int64))


def train_lamv(model: TMK, videos: Sequence[np.ndarray], pairs: TrainingPairs, settings: LAMVTrainSettings,
               validation: tuple[Sequence[np.ndarray], TrainingPairs] | None = None,
               state: TrainingState | None = None,
               on_epoch: Callable[[TrainingState], None] | None = None,
               progress: Callable[[int, int], None] | None = None) -> TrainingState:
    """Train ``model``'s coefficients in place on ``pairs`` of ``videos`` (``(N_i, d)`` frame features).

    ``validation``: held-out videos and pairs scored after every epoch (monitoring only: the kernel kept
    is the last epoch's, never chosen by these scores).  ``state``: resume from a saved state;
    ``on_epoch`` is called with the state after each epoch (to save it).  Returns the final state.
    """
    if len(pairs) == 0:
        raise ValueError("no overlapping pairs to train on")
    if not model.a.requires_grad:
        model.a.requires_grad_(True)
    s = settings
    bank = SnippetBank(videos, model, s.snippet_frames)
    comp = components(len(bank.lengths), pairs)
    offsets = snippet_offsets(s.snippet_frames)
    opt = torch.optim.SGD([model.a], lr=s.lr, momentum=s.momentum, nesterov=s.momentum > 0)
    frozen = frozen_coefficients(model, s)
    if state is None:
        state = TrainingState(model.a.detach().clone(), None)
    else:
        with torch.no_grad():
            model.a.copy_(state.raw_coefficients)
        if state.momentum is not None:
            opt.state[model.a]["momentum_buffer"] = state.momentum.clone()
    val = None
    if validation is not None and len(validation[1]):
        vbank = SnippetBank(validation[0], model, s.snippet_frames)
        val = (vbank, *validation_set(vbank, validation[1], s))
    for epoch in range(state.epoch, s.epochs):
        rng = np.random.default_rng([s.seed, epoch])
        trip = draw_positives(bank, pairs, s, rng)
        if len(trip.delta) == 0:
            raise ValueError(f"no training pair shares {s.min_overlap:.0%} of a {s.snippet_frames}-frame snippet "
                             f"(lower min_overlap or snippet length)")
        pool_video, pool_start = _epoch_pool(bank, s, rng)
        pool_raw = bank.describe(pool_video, pool_start)
        order = rng.permutation(len(trip.delta))
        totals = np.zeros(3)
        for b0 in range(0, len(order), s.batch):
            sel = order[b0:b0 + s.batch]
            r0 = bank.describe(trip.video0[sel], trip.start0[sel])
            rp = bank.describe(trip.video_pos[sel], trip.start_pos[sel])
            with torch.no_grad():
                pool = scaled(model, pool_raw)
                f0 = scaled(model, r0)
            eligible = comp[None, :] != comp[trip.video0[sel]][:, None]
            rows = hardest_negatives(model, f0, pool, pool_video, eligible, s.negatives, offsets, rng)
            rn = pool_raw[torch.from_numpy(rows)]
            delta = torch.from_numpy(trip.delta[sel].astype(np.float64))
            loss, _ = batch_loss(model, r0, rp, rn, delta, offsets, s.loss)
            opt.zero_grad()
            loss.total.backward()
            if model.a.grad is not None:
                model.a.grad.masked_fill_(frozen, 0.0)  # no gradient, no momentum: they keep their values
            opt.step()
            totals += len(sel) * np.array([float(loss.total.detach()), float(loss.retrieval), float(loss.localisation)])
        totals /= max(1, len(order))
        record = EpochRecord(epoch + 1, *totals.tolist())
        if val is not None:
            vl, vloc, vret = validate(model, *val, s)
            record = EpochRecord(epoch + 1, *totals.tolist(), vl, vloc, vret)
        buf = opt.state.get(model.a, {}).get("momentum_buffer")
        state = TrainingState(model.a.detach().clone(), None if buf is None else buf.detach().clone(),
                              epoch + 1, [*state.history, record])
        if on_epoch is not None:
            on_epoch(state)
        if progress is not None:
            progress(epoch + 1, s.epochs)
    model.a.requires_grad_(False)
    return state


def localisation_accuracy(model: TMK, videos: Sequence[np.ndarray], pairs: TrainingPairs,
                          settings: LAMVTrainSettings) -> float:
    """Share of fixed held-out snippet pairs the model localises within 1 s (for tests and period design)."""
    bank = SnippetBank(videos, model, settings.snippet_frames)
    trip, _ = validation_set(bank, pairs, settings)
    if len(trip.delta) == 0:
        return math.nan
    offsets = snippet_offsets(settings.snippet_frames)
    with torch.no_grad():
        f0 = scaled(model, bank.describe(trip.video0, trip.start0))
        fp = scaled(model, bank.describe(trip.video_pos, trip.start_pos))
        curves = model.score_pairs(f0, fp, offsets, normalized=True)
        return float(localisation_hits(curves, offsets, torch.from_numpy(trip.delta.astype(np.float64)))
                     .float().mean())

