"""Temporal Context Aggregation (Shao et al., WACV 2021): a learned video embedding.

A video's frame features ``(N, d)`` (the configured extractor's, after its PCA-whitening; 15 fps) are
sub-sampled to ``fps`` (default 1 frame per second: every 15th frame of the stream) and padded or
truncated to ``padding_size`` frames.  One Transformer encoder layer (self-attention over time, with a
learned positional embedding, padded frames masked out of the attention and of every pooling) turns
them into contextualised frame features:

* **TCA_f** (:meth:`TCA.describe`): the ``(padding_size, d)`` L2-normalised frame outputs (zero rows for
  padding), compared by **chamfer similarity** (:func:`chamfer`): the mean over the query's frames of
  the best similarity over the reference's frames;
* **TCA_c** (:meth:`TCA.video_vector`): their mean over the real frames, L2-normalised - a drop-in for
  the mean-frame component of the FAISS candidate stage.

The module is a plain ``nn.Module``; :meth:`TCA.score_max` gives it the interface of the temporal
models' re-ranking (best score and an offset) so the pipeline can search with it: the offset is the
median over query frames of ``t_query - t_ref`` of each frame's best match, in 1/15-s frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from extractors.runtime.timebase import FPS


@dataclass(frozen=True)
class TCAConfig:
    """``dim``: frame feature size; ``padding_size`` frames at ``fps``; one encoder layer of ``heads``
    attention heads and a ``feedforward``-wide MLP."""

    dim: int
    padding_size: int = 300
    fps: float = 1.0
    heads: int = 8
    feedforward: int = 1024
    dropout: float = 0.1

    @property
    def width(self) -> int:
        """The encoder's width: ``dim`` rounded up to a multiple of ``heads`` (features are zero-padded)."""
        return -(-self.dim // self.heads) * self.heads

    @property
    def step(self) -> int:
        """Frames of the 15-fps stream per TCA frame."""
        return max(1, round(FPS / self.fps))


def sample_frames(features: np.ndarray, config: TCAConfig) -> tuple[torch.Tensor, int]:
    """``(N, d)`` 15-fps features -> ``(padding_size, d)`` float32 at ``config.fps`` (zero rows after the
    real ones) and the number of real frames (the first ``padding_size`` sampled frames are kept)."""
    x = np.asarray(features, dtype=np.float32)[:: config.step][: config.padding_size]
    out = torch.zeros((config.padding_size, config.dim))
    out[: len(x)] = torch.from_numpy(np.ascontiguousarray(x))
    return out, len(x)


class TCA(nn.Module):
    """The TCA encoder: ``(B, T, d)`` frames + ``(B, T)`` validity -> ``(B, T, width)`` unit frame outputs
    (``width``: ``d`` rounded up to a multiple of the heads; the extra feature dimensions are zeros)."""

    def __init__(self, config: TCAConfig) -> None:
        super().__init__()
        self.config = config
        self.position = nn.Parameter(torch.zeros(config.padding_size, config.width))
        nn.init.normal_(self.position, std=0.02)
        self.encoder = nn.TransformerEncoderLayer(config.width, config.heads, config.feedforward, config.dropout,
                                                  batch_first=True, norm_first=True)

    def forward(self, frames: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``(B, T, dim)`` frames (``T <= padding_size``) -> ``(B, T, width)`` unit outputs (zero rows where
        ``valid`` is False)."""
        T = frames.shape[1]
        extra = self.config.width - frames.shape[2]
        if extra:
            frames = torch.nn.functional.pad(frames, (0, extra))
        x = frames + self.position[:T]
        # a video without any frame attends to its (masked) first position rather than to nothing
        pad = ~valid.clone()
        pad[:, 0] &= valid.any(dim=1)
        y = self.encoder(x, src_key_padding_mask=pad)
        y = torch.nn.functional.normalize(y, dim=-1)
        return y * valid[..., None].to(y.dtype)

    def video_vector(self, frame_outputs: torch.Tensor) -> torch.Tensor:
        """TCA_c: ``(B, T, d)`` frame outputs (zero rows for padding) -> ``(B, d)`` unit vectors."""
        return torch.nn.functional.normalize(frame_outputs.sum(dim=1), dim=-1)

    @torch.no_grad()
    def describe(self, features: np.ndarray, times: np.ndarray | None = None) -> torch.Tensor:
        """TCA_f of one video: ``(N, d)`` 15-fps features -> ``(padding_size, d)`` (``times`` unused: the
        15-fps stream's frames are evenly spaced)."""
        was = self.training
        self.eval()
        x, n = sample_frames(features, self.config)
        valid = torch.arange(self.config.padding_size)[None] < n
        out = self(x[None], valid)[0]
        self.train(was)
        return out

    def descriptor(self, features: np.ndarray, times: np.ndarray | None = None) -> torch.Tensor:
        """The temporal models' interface: :meth:`describe`."""
        return self.describe(features, times)

    def score_max(self, fa: torch.Tensor, fb: torch.Tensor, offsets: np.ndarray | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Chamfer similarity of ``fa`` (``(T, d)`` or ``(1, T, d)``) with each ``fb[b]`` and the median
        offset ``t_a - t_b`` (1/15-s frames) of the query frames' best matches; ``offsets`` unused."""
        q = fa.reshape(-1, fa.shape[-1])
        sim, best = chamfer(q, fb)
        return sim, best * self.config.step


def chamfer(query: torch.Tensor, refs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Chamfer similarity of ``query (T, d)`` with every ``refs (B, T', d)`` (zero rows are padding, on
    both sides): the mean over the query's real frames of their best similarity with a real frame of the
    reference -> ``(B,)``; and the (lower) median ``i - j`` of those best matches -> ``(B,)`` (TCA frames)."""
    q_ok = query.abs().sum(dim=-1) > 0  # (T,)
    r_ok = refs.abs().sum(dim=-1) > 0  # (B, T')
    B = refs.shape[0]
    if not bool(q_ok.any()) or B == 0:
        return torch.zeros(B), torch.zeros(B, dtype=torch.long)
    q = query[q_ok]
    sim = torch.einsum("td,bsd->bts", q, refs)  # (B, Tq, T')
    sim = torch.where(r_ok[:, None, :], sim, torch.full((), -2.0))
    best, arg = sim.max(dim=2)  # (B, Tq)
    has = r_ok.any(dim=1)
    score = torch.where(has, best.mean(dim=1), torch.zeros(()))
    rows = torch.nonzero(q_ok)[:, 0]
    offset = (rows[None, :] - arg).median(dim=1).values
    return score, torch.where(has, offset, torch.zeros((), dtype=torch.long))
