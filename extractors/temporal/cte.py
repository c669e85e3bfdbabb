"""Circulant Temporal Encoding (Revaud et al.), implemented correctly.

Definition kept from the reference (spec section 3): a video descriptor is the
first ``m`` bins of the unnormalised DFT of the frame features along time,
``X_c(f) = sum_n x_{n,c} exp(-2 pi i f t_n / L)``, stored ``(d, 2m)`` as
``[Re X(0..m-1) | Im X(0..m-1)]``; the score of a pair is the regularised
cross-correlation ``S(f) = sum_c conj(Q_c(f)) R_c(f) / (sum_c |Q_c(f)|^2 + lambda)``
brought back to the time domain.

What is corrected (the reference's defects, spec 3.2):

* one transform length ``L`` for every descriptor of a collection (a model
  parameter), so two descriptors always live on the same frequency grid;
* ``L >= 2 * max_frames`` so the circular correlation equals the linear one
  for every offset in ``(-L/2, L/2)`` (no wrap-around);
* the curve is evaluated *at the requested offsets* (no off-by-one on the
  negative half, no duplicated zero);
* real timestamps are used (a non-uniform DFT), so variable frame rates and
  uneven sampling are aligned on the true time axis.

Sign convention as TMK: the curve of (A, B) peaks at ``delta = t_A - t_B``.
Scores are normalised so that an exact, noise-free copy scores ~1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from extractors.temporal.tmk import _TABLES, DEFAULT_CHUNK_ELEMENTS, _as_tensor, _valid_mask, chunked_curve_max


def transform_length(max_frames: int) -> int:
    """Smallest power of two ``L >= 2 * max_frames`` (no aliasing for |offset| < L/2)."""
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    return 1 << math.ceil(math.log2(2 * max_frames))


class CTE:
    """Circulant temporal encoding with ``m`` kept DFT bins of length ``length``.

    Args:
        length: DFT length ``L`` in 1/15-s frames, shared by every descriptor that
            will be compared; see :func:`transform_length`.
        m: number of kept frequency bins (0..m-1).  The localisation accuracy of
            the peak is about ``L / m`` frames wide, so ``m`` should grow with ``L``.
        lam: regularisation ``lambda`` added to the query energy per bin.
    """

    def __init__(self, length: int, m: int = 256, lam: float = 0.1,
                 device: torch.device | str | None = None) -> None:
        if length < 2 or m < 1:
            raise ValueError(f"need length >= 2 and m >= 1, got length={length}, m={m}")
        if m > length:
            raise ValueError(f"m={m} exceeds the {length} DFT bins of length {length}")
        self.length = int(length)
        self.m = int(m)
        self.lam = float(lam)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.freqs = 2.0 * np.pi * np.arange(self.m, dtype=np.float64) / self.length
        # Real correlation from one-sided bins: DC once, every other bin twice.
        w = np.full(self.m, 2.0)
        w[0] = 1.0
        self.bin_weights = torch.from_numpy(w / w.sum()).float().to(self.device)

    @classmethod
    def for_max_length(cls, max_frames: int, m: int = 256, lam: float = 0.1) -> CTE:
        """CTE whose transform length fits videos of up to ``max_frames`` 1/15-s frames."""
        return cls(transform_length(max_frames), m=min(m, transform_length(max_frames) // 2 + 1),
                   lam=lam)

    def _omega(self) -> torch.Tensor:
        return torch.from_numpy(self.freqs).to(self.device)

    def descriptor(self, x: torch.Tensor | np.ndarray, t: torch.Tensor | np.ndarray | None = None,
                   lengths: torch.Tensor | np.ndarray | None = None,
                   check_span: bool = True) -> torch.Tensor:
        """DFT bins of the frame features.

        Args:
            x: ``(B, N, d)`` or ``(N, d)`` features.
            t: ``(B, N)`` or ``(N,)`` timestamps in 1/15 s; frame indices when None.
            lengths: optional ``(B,)`` true lengths of a zero-padded batch.
            check_span: refuse timestamps outside ``[0, L/2]`` (set False only to
                reproduce the reference's per-video transform lengths).

        Returns:
            ``(B, d, 2m) float32`` = ``[Re | Im]``.

        Raises:
            ValueError: a timestamp lies outside ``[0, L/2]``, where correlations
                would wrap around.
        """
        xt = _as_tensor(x, self.device)
        squeeze = xt.dim() == 2
        if squeeze:
            xt = xt[None]
        B, N, _ = xt.shape
        if t is None:
            tt = torch.arange(N, dtype=torch.float64, device=self.device).expand(B, N)
        else:
            tt = _as_tensor(t, self.device, torch.float64)
            if tt.dim() == 1:
                tt = tt[None]
        if tt.shape != (B, N):
            raise ValueError(f"timestamps shape {tuple(tt.shape)} does not match features {(B, N)}")
        keep = None
        if lengths is not None:
            keep = _valid_mask(lengths, B, N, self.device)
            tt = torch.where(keep, tt, torch.zeros_like(tt))
        if check_span and N and (tt.min() < 0 or tt.max() > self.length / 2):
            raise ValueError(
                f"timestamps span [{float(tt.min()):.1f}, {float(tt.max()):.1f}] frames but this "
                f"CTE (length {self.length}) only aligns videos within [0, {self.length // 2}]; "
                f"build it with CTE.for_max_length(<longest video in frames>)")
        phase = self._omega()[None, :, None] * tt[:, None, :]  # (B, m, N)
        table = torch.cat([torch.cos(phase), -torch.sin(phase)], dim=1).float()  # (B, 2m, N)
        if keep is not None:
            table = table * keep[:, None, :]
        fv = torch.bmm(table, xt)  # (B, 2m, d)
        fv = fv.transpose(1, 2).contiguous()
        return fv[0] if squeeze else fv

    def frequency_products(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        """Regularised cross-spectrum of one query against ``B`` candidates.

        Args:
            fa: ``(1, d, 2m)`` or ``(d, 2m)`` query.
            fb: ``(B, d, 2m)`` candidates.

        Returns:
            ``(B, 2m)``: real parts then imaginary parts of ``S(f)``, multiplied
            by the bin weights so that ``curve = out @ offset_table``.
        """
        if fa.dim() == 3:
            fa = fa[0]
        m = self.m
        qr, qi = fa[:, :m], fa[:, m:]
        den = (qr * qr + qi * qi).sum(0) + self.lam  # (m,)
        q = torch.stack([torch.cat([qr, qi], 1), torch.cat([-qi, qr], 1)], 0)  # (2, d, 2m)
        g = torch.einsum("bcj,icj->bij", fb, q)  # (B, 2, 2m)
        sr = g[:, 0, :m] + g[:, 0, m:]
        si = g[:, 1, :m] + g[:, 1, m:]
        scale = (self.bin_weights / den)[None]
        return torch.cat([sr * scale, si * scale], dim=1)

    def offset_table(self, offsets: torch.Tensor) -> torch.Tensor:
        """``(2m, K) float32`` = ``[cos(2 pi f delta / L); sin(2 pi f delta / L)]``."""
        off = offsets.to(device=self.device, dtype=torch.float64).reshape(-1)

        def build() -> torch.Tensor:
            phase = self._omega()[:, None] * off[None, :]
            return torch.cat([torch.cos(phase), torch.sin(phase)], dim=0).float()

        return _TABLES.get(("cte", self.length, self.m), off, build)

    def _check_offsets(self, off: torch.Tensor) -> None:
        if self.m > self.length // 2 + 1:
            raise ValueError(f"scoring needs m <= {self.length // 2 + 1} (the non-negative bins of "
                             f"length {self.length}); got m={self.m}")
        if off.numel() and off.abs().max() >= self.length / 2:
            raise ValueError(f"offsets reach {float(off.abs().max()):.0f} frames, but this CTE "
                             f"(length {self.length}) only resolves |offset| < {self.length // 2}")

    def score(self, fa: torch.Tensor | np.ndarray, fb: torch.Tensor | np.ndarray,
              offsets: torch.Tensor | np.ndarray | Sequence[int]) -> torch.Tensor:
        """Correlation curves ``(B, K) float32`` of one query against ``B`` candidates."""
        fa_t, fb_t = _as_tensor(fa, self.device), _as_tensor(fb, self.device)
        if fb_t.dim() == 2:
            fb_t = fb_t[None]
        off = _as_tensor(offsets, self.device, torch.float64).reshape(-1)
        self._check_offsets(off)
        return self.frequency_products(fa_t, fb_t) @ self.offset_table(off)

    def score_max(self, fa: torch.Tensor | np.ndarray, fb: torch.Tensor | np.ndarray,
                  offsets: torch.Tensor | np.ndarray | Sequence[int],
                  chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> tuple[torch.Tensor, torch.Tensor]:
        """Best score ``(B,)`` and first best offset ``(B,)`` (chunked like :meth:`TMK.score_max`)."""
        fa_t, fb_t = _as_tensor(fa, self.device), _as_tensor(fb, self.device)
        if fb_t.dim() == 2:
            fb_t = fb_t[None]
        off = _as_tensor(offsets, self.device, torch.float64).reshape(-1)
        self._check_offsets(off)
        w = self.frequency_products(fa_t, fb_t)
        return chunked_curve_max(w, off, self.offset_table, chunk_elements)
