"""The learned-LAMV training objective (LAMV paper, sections 3.2-3.3).

For triplets ``(X0, X+, X-)`` of snippets, with ``K(X, Y, delta)`` the TMK
score curve over offsets ``delta`` (1/15-s frames, ``extractors/temporal/tmk.py``) and
``delta*`` the true offset of ``(X0, X+)``:

    K*(X, Y)   = max_delta K(X, Y, delta)
    K_in       = max of K(X0, X+, .) over |delta - delta*| <= r
    K_out      = max of K(X0, X+, .) over |delta - delta*| >  r
    L_r        = max(0, m_r + K*(X0, X-) - K*(X0, X+))          (retrieval)
    L_l        = max(0, m_l + K_out - K_in)                       (localisation)
    L          = w_r L_r + (1 - w_r) L_l,   w_r = 1/4,  m_r = 0.01,  m_l = 0.001,  r = 1 s

Every function takes whole batches of score curves ``(B, K)`` (from
``TMK.score_pairs``, differentiable in the kernel's coefficients) and returns
batch means; nothing loops over triplets or offsets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from extractors.runtime.timebase import FPS


@dataclass(frozen=True)
class LAMVLossSettings:
    retrieval_margin: float = 0.01
    localisation_margin: float = 0.001
    radius_s: float = 1.0
    retrieval_weight: float = 0.25

    @property
    def radius_frames(self) -> float:
        return self.radius_s * FPS


@dataclass(frozen=True)
class LAMVLoss:
    """The loss (differentiable) and its two parts (detached, for curves and logs)."""

    total: torch.Tensor
    retrieval: torch.Tensor
    localisation: torch.Tensor


def in_out_maxima(curves: torch.Tensor, offsets: torch.Tensor, true_offsets: torch.Tensor,
                  radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``K_in``, ``K_out`` ``(B,)`` of score curves ``(B, K)`` over ``offsets (K,)`` around ``true_offsets (B,)``
    (same units); ``-inf`` where a side has no offset."""
    inside = (offsets[None, :].to(true_offsets.dtype) - true_offsets[:, None]).abs() <= radius  # (B, K)
    neg = torch.finfo(curves.dtype).min
    k_in = curves.masked_fill(~inside, neg).amax(dim=1)
    k_out = curves.masked_fill(inside, neg).amax(dim=1)
    k_in = torch.where(inside.any(dim=1), k_in, torch.full_like(k_in, -torch.inf))
    k_out = torch.where((~inside).any(dim=1), k_out, torch.full_like(k_out, -torch.inf))
    return k_in, k_out


def retrieval_loss(positive: torch.Tensor, negative: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean of ``max(0, margin + K*(X0, X-) - K*(X0, X+))`` over the batch; curves ``(B, K)``."""
    return torch.relu(margin + negative.amax(dim=1) - positive.amax(dim=1)).mean()


def localisation_loss(positive: torch.Tensor, offsets: torch.Tensor, true_offsets: torch.Tensor,
                      radius: float, margin: float) -> torch.Tensor:
    """Mean of ``max(0, margin + K_out - K_in)``; a triplet with no offset outside the window adds 0."""
    k_in, k_out = in_out_maxima(positive, offsets, true_offsets, radius)
    gap = torch.where(torch.isfinite(k_out) & torch.isfinite(k_in), margin + k_out - k_in,
                      torch.zeros_like(k_in))
    return torch.relu(gap).mean()


def lamv_loss(positive: torch.Tensor, negative: torch.Tensor, offsets: torch.Tensor,
              true_offsets: torch.Tensor, settings: LAMVLossSettings | None = None) -> LAMVLoss:
    """The combined loss of a batch: curves ``(B, K)`` of ``(X0, X+)`` and ``(X0, X-)`` over ``offsets (K,)``
    (1/15-s frames), ``true_offsets (B,)`` the ``delta*`` of each ``(X0, X+)``."""
    s = settings or LAMVLossSettings()
    lr = retrieval_loss(positive, negative, s.retrieval_margin)
    ll = localisation_loss(positive, offsets, true_offsets, s.radius_frames, s.localisation_margin)
    total = s.retrieval_weight * lr + (1.0 - s.retrieval_weight) * ll
    return LAMVLoss(total, lr.detach(), ll.detach())
