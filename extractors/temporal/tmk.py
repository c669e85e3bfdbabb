"""Temporal Match Kernel (TMK, Poullot et al.) and its LAMV normalisation.

Specification: ``reference-spec.md`` section 2.  Units: timestamps ``t`` and
offsets ``delta`` are in 1/15-s frame periods ("15-fps frames") inside this
module; convert seconds with :data:`FPS` at the user-facing boundary.

Sign convention: the score curve of the pair (A, B) peaks at
``delta = t_A - t_B`` for corresponding frames (if B contains A from B-frame
``s`` on, the peak is at ``-s``).

Shapes used below: ``B`` batch, ``N`` frames, ``d`` feature dimension, ``P``
periods, ``m`` frequencies per period, ``K`` offsets.  A descriptor is
``(B, P, 2m, d)``: rows ``0..m-1`` are the sine block, rows ``m..2m-1`` the
cosine block, frequency index ``k = row mod m``.

Every heavy operation is a (batched) matrix product:

* descriptor: ``(P*2m, N) @ (N, d)`` per video;
* scoring: per-frequency dot products ``(B, P*2m)`` followed by one product
  with a ``(2*P*m, K)`` trigonometric table, chunked over candidates and
  offsets so that peak memory stays bounded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

NORMS = ("freq", "feat", "feat_freq", "matrix", "none")
EPS = 1e-8
FEAT_SCALE = 512.0
"""The reference divides ``feat``/``feat_freq`` scores by 512 whatever ``d`` is (spec 2.3, step 4)."""

DEFAULT_CHUNK_ELEMENTS = 1 << 23
"""Elements of the largest float32 scoring intermediate (8 Mi elements = 32 MiB)."""


def von_mises_coefficients(beta: float, m: int, clamp_min: float = 1e-7) -> np.ndarray:
    """Fourier-cosine coefficients of the normalised von Mises kernel.

    ``kappa(theta) = (exp(beta cos theta) - exp(-beta)) / (2 sinh beta)``,
    ``a_0 = (I_0(beta) - e^-beta) / (2 sinh beta)``, ``a_k = I_k(beta) / sinh beta``,
    then clamped below at ``clamp_min`` like the reference does on every call.

    Returns ``(m,) float64``.  Computed with exponentially scaled Bessel
    functions (``I_k(b) e^-b``), so large ``beta`` does not overflow.
    """
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    ive = _bessel_ive(np.arange(m), float(beta))
    # sinh(b) e^-b = (1 - e^-2b) / 2
    sinh_scaled = (1.0 - math.exp(-2.0 * beta)) / 2.0
    a = ive / sinh_scaled
    a[0] = (ive[0] - math.exp(-2.0 * beta)) / (2.0 * sinh_scaled)
    return np.maximum(a, clamp_min)


def _bessel_ive(orders: np.ndarray, x: float) -> np.ndarray:
    """Exponentially scaled modified Bessel functions ``I_k(x) e^-x``, float64.

    Miller's downward recurrence, normalised by ``I_0(x) + 2 sum_k I_k(x) = e^x``,
    accurate to ~1e-15 (checked against scipy in the tests).  Always this code,
    never an optional library, so the coefficients do not depend on what is installed.
    """
    n_max = int(orders.max())
    start = n_max + 30 + int(math.sqrt(40.0 * max(n_max, x) + 1.0)) + int(x)
    vals = np.zeros(start + 2, dtype=np.float64)
    vals[start] = 1e-300
    for k in range(start, 0, -1):
        vals[k - 1] = vals[k + 1] + (2.0 * k / x) * vals[k]
        if vals[k - 1] > 1e250:
            vals[k - 1 :] *= 1e-250
    total = vals[0] + 2.0 * vals[1:].sum()
    return vals[orders] / total


def angular_frequencies(periods: Sequence[float], m: int) -> np.ndarray:
    """``omega[p, k] = 2 pi k / T_p`` in radians per 1/15 s, ``(P, m) float64``."""
    T = np.asarray(periods, dtype=np.float64)
    return 2.0 * np.pi * np.arange(m, dtype=np.float64)[None, :] / T[:, None]


@dataclass(frozen=True)
class TMKConfig:
    """Hyper-parameters of a TMK model (spec 2.1)."""

    periods: tuple[float, ...]
    m: int = 16
    beta: float = 32.0
    norm: str = "feat_freq"

    def __post_init__(self) -> None:
        if not self.periods or any(p <= 0 for p in self.periods):
            raise ValueError(f"periods must be positive, got {self.periods}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.m < 1:
            raise ValueError(f"m must be >= 1, got {self.m}")


PRESETS: dict[str, TMKConfig] = {
    "poullot": TMKConfig(periods=(2731.0, 4391.0, 9767.0, 14653.0), m=16, norm="freq"),
    "lamv": TMKConfig(periods=(9767.0, 2731.0, 1039.0, 253.0), m=16, norm="feat_freq"),
}
"""``poullot``: TMK as published by Poullot et al.; ``lamv``: the LAMV paper's
``TMK (norm=feat_freq)`` configuration (the reference's ``--model TMK`` defaults)."""


def _as_tensor(x: torch.Tensor | np.ndarray, device: torch.device | None = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    return t.to(device=device, dtype=dtype)


class TMK(nn.Module):
    """Temporal Match Kernel with von Mises coefficients.

    The coefficient table ``a`` (P, m) is an ``nn.Parameter``: frozen by
    default (as in the reference wrappers), trainable with ``trainable=True``
    for a learnable LAMV kernel (scoring is differentiable w.r.t. ``a``).
    """

    def __init__(self, periods: Sequence[float], m: int = 16, beta: float = 32.0,
                 norm: str = "feat_freq", trainable: bool = False, init: str = "von_mises",
                 parametrisation: str = "clamp") -> None:
        """``init``: ``von_mises`` (``beta``) or ``uniform`` (every ``a_{p,k} = 1/m``) coefficients.
        ``parametrisation`` keeps the learned coefficients non-negative: ``clamp`` (the reference: ``a``
        is the table, clamped at 1e-7 when used) or ``softplus`` (``a`` holds ``theta`` and the table is
        ``softplus(theta)``, so gradient steps can never make a coefficient negative)."""
        super().__init__()
        if init not in ("von_mises", "uniform"):
            raise ValueError(f"init must be 'von_mises' or 'uniform', got {init!r}")
        if parametrisation not in ("clamp", "softplus"):
            raise ValueError(f"parametrisation must be 'clamp' or 'softplus', got {parametrisation!r}")
        self.config = TMKConfig(tuple(float(p) for p in periods), int(m), float(beta), norm)
        self.parametrisation = parametrisation
        a = von_mises_coefficients(beta, m) if init == "von_mises" else np.full(m, 1.0 / m)
        table = np.tile(a[None, :], (len(periods), 1))
        if parametrisation == "softplus":  # store theta with softplus(theta) = a
            table = np.log(np.expm1(np.maximum(table, 1e-7)))
        self.a = nn.Parameter(torch.from_numpy(table.astype(np.float32)), requires_grad=trainable)
        self.register_buffer("omega", torch.from_numpy(angular_frequencies(periods, m)),
                             persistent=False)

    @classmethod
    def preset(cls, name: str, **overrides: object) -> TMK:
        """Build a named configuration (``poullot`` or ``lamv``), optionally overriding fields."""
        if name not in PRESETS:
            raise KeyError(f"unknown TMK preset {name!r}; known: {sorted(PRESETS)}")
        cfg = PRESETS[name]
        kw: dict[str, object] = {"periods": cfg.periods, "m": cfg.m, "beta": cfg.beta,
                                 "norm": cfg.norm}
        kw.update(overrides)
        return cls(**kw)  # type: ignore[arg-type]

    @property
    def P(self) -> int:
        return len(self.config.periods)

    @property
    def m(self) -> int:
        return self.config.m

    @property
    def norm(self) -> str:
        return self.config.norm

    def _coeffs(self) -> torch.Tensor:
        """``(P, m)`` non-negative coefficients (with the reference's lower clamp at 1e-7)."""
        if self.parametrisation == "softplus":
            return torch.nn.functional.softplus(self.a).clamp_min(1e-7)
        return self.a.clamp_min(1e-7)

    def coefficients(self) -> torch.Tensor:
        """The ``(P, m)`` coefficient table ``a_{p,k} >= 0`` in use (detached)."""
        return self._coeffs().detach()

    # ------------------------------------------------------------------ descriptor
    def descriptor(self, x: torch.Tensor | np.ndarray, t: torch.Tensor | np.ndarray,
                   lengths: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """Un-normalised TMK descriptor (spec 2.2).

        Args:
            x: ``(B, N, d)`` or ``(N, d)`` frame features.
            t: ``(B, N)`` or ``(N,)`` timestamps in 1/15 s.
            lengths: optional ``(B,)`` true lengths; rows past them are ignored
                (they already contribute nothing when they are zero rows).

        Returns:
            ``(B, P, 2m, d) float32``.  Zero rows contribute exactly nothing, so
            zero-padding a batch does not change the descriptor.
        """
        squeeze = False
        xt = _as_tensor(x, self.a.device)
        if xt.dim() == 2:
            xt, squeeze = xt[None], True
        tt = _as_tensor(t, self.a.device, torch.float64)
        if tt.dim() == 1:
            tt = tt[None]
        B, N, _ = xt.shape
        if tt.shape != (B, N):
            raise ValueError(f"timestamps shape {tuple(tt.shape)} does not match features {(B, N)}")
        if lengths is not None:
            keep = _valid_mask(lengths, B, N, xt.device)
            tt = torch.where(keep, tt, torch.zeros_like(tt))
        table = self.trig_table(tt)  # (B, P, 2m, N)
        if lengths is not None:
            table = table * keep[:, None, None, :]
        P, m2 = table.shape[1], table.shape[2]
        fv = torch.bmm(table.reshape(B, P * m2, N), xt.to(table.dtype)).reshape(B, P, m2, -1)
        return fv[0] if squeeze else fv

    def trig_table(self, t: torch.Tensor) -> torch.Tensor:
        """``(B, P, 2m, N) float32``: ``sqrt(a) sin(omega t)`` rows then ``sqrt(a) cos(omega t)``.

        The phase is formed in float64 (exact for long videos), then cast.
        """
        phase = self.omega[None, :, :, None] * t[:, None, None, :]  # (B, P, m, N)
        sq = self._coeffs().sqrt()[None, :, :, None]
        return torch.cat([torch.sin(phase).float() * sq, torch.cos(phase).float() * sq], dim=2)

    # ------------------------------------------------------------------ normalisation
    def normalize(self, fv: torch.Tensor) -> torch.Tensor:
        """Apply the configured normalisation (spec 2.3 step 1) and fold the
        step-4 scale and the 1/P average into the descriptor.

        Scoring two normalised descriptors is then a plain sum over
        ``(p, k)`` of per-frequency products, so a database can be normalised
        once and searched many times.  Input and output ``(B, P, 2m, d)``.
        For ``matrix``, the per-pair division ``N_a N_b`` factorises into a
        division of each descriptor by its own Frobenius norm.
        """
        fv = fv.float()
        norm = self.norm
        if "feat" in norm:
            sq = self._coeffs().sqrt()
            sq = torch.cat([sq, sq], dim=1)[None, :, :, None]  # (1, P, 2m, 1)
            n = (fv / sq).norm(dim=-1, keepdim=True)
            fv = fv / (torch.sqrt(n * n + EPS) + EPS)
        if "freq" in norm:
            col = torch.sqrt((fv * fv).sum(dim=2, keepdim=True) / self.m + EPS) + EPS
            fv = fv / col
        if norm == "matrix":
            fro = torch.sqrt((fv * fv).sum(dim=(2, 3), keepdim=True) + EPS) + EPS
            fv = fv / fro
        scale = {"freq": 1.0 / self.m, "feat": 1.0 / FEAT_SCALE,
                 "feat_freq": 1.0 / FEAT_SCALE}.get(norm, 1.0) / self.P
        # Each of the two descriptors carries sqrt(scale) so their product carries scale.
        return fv * math.sqrt(scale)

    # ------------------------------------------------------------------ scoring
    def frequency_products(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        """Per-frequency coefficients of the score curve.

        Args:
            fa: ``(P, 2m, d)`` or ``(1, P, 2m, d)`` normalised query descriptor.
            fb: ``(B, P, 2m, d)`` normalised candidate descriptors.

        Returns:
            ``(B, 2, P, m)``: ``[:, 0] = ss + cc`` (cosine weights) and
            ``[:, 1] = sc - cs`` (sine weights), so that
            ``s(delta) = sum_{p,k} w0 cos(omega delta) + w1 sin(omega delta)``.
        """
        if fa.dim() == 4:
            if fa.shape[0] != 1:
                raise ValueError("frequency_products takes one query; loop over queries or "
                                 "use score_pairs for aligned pairs")
            fa = fa[0]
        m = self.m
        S, C = fa[:, :m], fa[:, m:]
        # Row j of fb pairs with q0[j] (same rows: ss, cc) and q1[j] (sc, -cs).
        q0 = fa
        q1 = torch.cat([-C, S], dim=1)
        q = torch.stack([q0, q1], dim=-1)  # (P, 2m, d, 2)
        B = fb.shape[0]
        P, m2, d = fa.shape
        q = q.reshape(P * m2, d, 2)
        step = 1024  # bounds bmm's transposed copy of the candidates to 1024*P*2m*d floats
        parts = [torch.bmm(fb[b0:b0 + step].reshape(-1, P * m2, d).transpose(0, 1), q)
                 for b0 in range(0, B, step)]  # each (P*2m, b, 2)
        g = torch.cat(parts, dim=1).permute(1, 2, 0).reshape(B, 2, P, m2)
        return g[..., :m] + g[..., m:]

    def offset_table(self, offsets: torch.Tensor) -> torch.Tensor:
        """``(2*P*m, K) float32`` table ``[cos(omega delta); sin(omega delta)]`` (float64 phase).

        The last few tables are cached: a search scores every query over the same offsets.
        """
        off = offsets.to(device=self.omega.device, dtype=torch.float64).reshape(-1)

        def build() -> torch.Tensor:
            phase = self.omega.reshape(-1, 1) * off[None, :]
            return torch.cat([torch.cos(phase), torch.sin(phase)], dim=0).float()

        if self.a.requires_grad:
            return build()
        return _TABLES.get(("tmk", tuple(self.config.periods), self.m), off, build)

    def score(self, fa: torch.Tensor, fb: torch.Tensor,
              offsets: torch.Tensor | np.ndarray | Sequence[int],
              normalized: bool = False) -> torch.Tensor:
        """Full score curves of one query against ``B`` candidates (spec 2.3).

        Args:
            fa: ``(1, P, 2m, d)`` query descriptor.
            fb: ``(B, P, 2m, d)`` candidate descriptors.
            offsets: ``(K,)`` or ``(1, K)`` offsets in 1/15 s.
            normalized: descriptors already went through :meth:`normalize`.

        Returns:
            ``(B, K) float32``.  Materialises the output only (``B*K`` floats);
            use :meth:`score_max` for large ``B*K``.
        """
        fa, fb = self._prep(fa, normalized), self._prep(fb, normalized)
        off = _as_tensor(offsets, fa.device, torch.float64).reshape(-1)
        w = self.frequency_products(fa, fb).reshape(fb.shape[0], -1)  # (B, 2Pm)
        return w @ self.offset_table(off)

    def score_max(self, fa: torch.Tensor, fb: torch.Tensor,
                  offsets: torch.Tensor | np.ndarray | Sequence[int],
                  normalized: bool = False,
                  chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> tuple[torch.Tensor, torch.Tensor]:
        """Best score and best offset of one query against ``B`` candidates.

        Scans the offsets in chunks and the candidates in chunks; the largest
        intermediate is a ``(b, k)`` float32 block with ``b*k <= chunk_elements``
        plus the ``(2Pm, k)`` table and the ``(B, 2Pm)`` frequency weights, so
        peak memory is about ``4*(chunk_elements + 2Pm*(k + B) + B*P*2m*d)``
        bytes (the last term only when ``normalized`` is False), independent
        of ``K``.  For 1 query vs 10,000 candidates over 36,000 offsets with
        the default chunk that is < 100 MiB besides the candidate descriptors.

        Returns:
            ``(best_score (B,) float32, best_offset (B,) float64)`` with the first
            offset on ties, in the units of ``offsets``.
        """
        fa, fb = self._prep(fa, normalized), self._prep(fb, normalized)
        off = _as_tensor(offsets, fa.device, torch.float64).reshape(-1)
        w = self.frequency_products(fa, fb).reshape(fb.shape[0], -1)
        return chunked_curve_max(w, off, self.offset_table, chunk_elements)

    def score_pairs(self, fa: torch.Tensor, fb: torch.Tensor,
                    offsets: torch.Tensor | np.ndarray | Sequence[int],
                    normalized: bool = False) -> torch.Tensor:
        """Score curves of aligned pairs ``(fa[i], fb[i])``: ``(B, P, 2m, d)`` each -> ``(B, K)``.

        Broadcasts a batch dimension of 1 on either side, like the reference ``merge``.
        """
        fa, fb = self._prep(fa, normalized), self._prep(fb, normalized)
        fa, fb = torch.broadcast_tensors(fa, fb)
        m = self.m
        S_a, C_a, S_b, C_b = fa[:, :, :m], fa[:, :, m:], fb[:, :, :m], fb[:, :, m:]
        w0 = (S_a * S_b).sum(-1) + (C_a * C_b).sum(-1)
        w1 = (S_a * C_b).sum(-1) - (C_a * S_b).sum(-1)
        w = torch.stack([w0, w1], dim=1).reshape(fa.shape[0], -1)
        off = _as_tensor(offsets, fa.device, torch.float64).reshape(-1)
        return w @ self.offset_table(off)

    def _prep(self, fv: torch.Tensor | np.ndarray, normalized: bool) -> torch.Tensor:
        t = _as_tensor(fv, self.a.device)
        if t.dim() == 3:
            t = t[None]
        return t if normalized else self.normalize(t)

    # ------------------------------------------------------------------ utilities
    def shift(self, fv: torch.Tensor | np.ndarray,
              delta: float | torch.Tensor | np.ndarray) -> torch.Tensor:
        """Phase-rotate descriptors by ``delta`` (1/15 s), spec 2.4.

        Equals the descriptor of the same frames with timestamps ``t + delta``.

        Args:
            fv: ``(B, P, 2m, d)`` (or ``(P, 2m, d)``) un-normalised descriptors.
            delta: scalar or ``(B,)`` shifts.

        Returns:
            Same shape as ``fv``.
        """
        f = _as_tensor(fv, self.a.device)
        squeeze = f.dim() == 3
        if squeeze:
            f = f[None]
        dl = _as_tensor(delta, f.device, torch.float64).reshape(-1, 1, 1)  # (B|1, 1, 1)
        phase = self.omega[None] * dl  # (B, P, m)
        c, s = torch.cos(phase).float()[..., None], torch.sin(phase).float()[..., None]
        m = self.m
        S, C = f[:, :, :m], f[:, :, m:]
        out = torch.cat([S * c + C * s, C * c - S * s], dim=2)
        return out[0] if squeeze else out

    def mean_frame(self, fv: torch.Tensor | np.ndarray) -> torch.Tensor:
        """L2-normalised mean-frame component (the k=0 cosine row), ``(B, d) float32``.

        Row ``m`` of the descriptor is ``sqrt(a_0) * sum_n x_n``; all periods share it.
        """
        f = _as_tensor(fv, self.a.device)
        if f.dim() == 3:
            f = f[None]
        row = f[:, 0, self.m]
        return row / row.norm(dim=-1, keepdim=True).clamp_min(1e-12)


class TableCache:
    """Small LRU cache of offset tables keyed by model identity and the offsets themselves."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._items: list[tuple[tuple, torch.Tensor, torch.Tensor]] = []

    def get(self, model_key: tuple, offsets: torch.Tensor, build) -> torch.Tensor:
        n = offsets.numel()
        key = (model_key, str(offsets.device), n,
               float(offsets[0]) if n else 0.0, float(offsets[-1]) if n else 0.0)
        for i, (k, off, table) in enumerate(self._items):
            if k == key and torch.equal(off, offsets):
                self._items.append(self._items.pop(i))
                return table
        table = build()
        self._items.append((key, offsets.clone(), table))
        del self._items[:-self.size]
        return table


_TABLES = TableCache()


def _valid_mask(lengths: torch.Tensor | np.ndarray | Sequence[int], B: int, N: int,
                device: torch.device) -> torch.Tensor:
    """``(B, N) bool``: True for rows before each sequence's true length."""
    ln = torch.as_tensor(np.asarray(lengths), device=device).reshape(B, 1)
    return torch.arange(N, device=device)[None] < ln


def chunked_curve_max(weights: torch.Tensor, offsets: torch.Tensor, table_fn,
                      chunk_elements: int = DEFAULT_CHUNK_ELEMENTS
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Max and arg-max over offsets of ``weights @ table_fn(offsets)``, chunked.

    Args:
        weights: ``(B, W)`` curve coefficients.
        offsets: ``(K,) float64`` offsets.
        table_fn: maps an offset chunk ``(k,)`` to a ``(W, k)`` table.
        chunk_elements: bound on ``b*k`` of each ``(b, k)`` block.

    Returns:
        ``(max (B,) float32, offset at the first max (B,) float64)``.
    """
    B = weights.shape[0]
    K = offsets.shape[0]
    if K == 0:
        raise ValueError("empty offset range")
    k_chunk = max(1, min(K, chunk_elements // max(1, min(B, 1024))))
    b_chunk = max(1, chunk_elements // k_chunk)
    best = torch.full((B,), -math.inf, dtype=torch.float32, device=weights.device)
    best_idx = torch.zeros(B, dtype=torch.long, device=weights.device)
    for k0 in range(0, K, k_chunk):
        table = table_fn(offsets[k0:k0 + k_chunk])
        for b0 in range(0, B, b_chunk):
            block = weights[b0:b0 + b_chunk] @ table
            val, idx = block.max(dim=1)
            better = val > best[b0:b0 + b_chunk]
            best[b0:b0 + b_chunk] = torch.where(better, val, best[b0:b0 + b_chunk])
            best_idx[b0:b0 + b_chunk] = torch.where(better, idx + k0, best_idx[b0:b0 + b_chunk])
    return best, offsets[best_idx]
