"""Frame alignment of two videos (Sync from the Sea): DTW warping in seconds, DRAQ, cycle consistency.

Steps shared by ``python -m pipeline align A B``, DRAQ re-ranking in the search (``align.draq_top``)
and the alignment benchmark.  Features are the pipeline's 15-fps frame features, sub-sampled to
``align.fps``; every time returned is in seconds of the videos' own timestamps.

Cycle consistency (:func:`cycle_errors`): the query's frame positions are warped to the match
(DTW with the query unwarped: one match position per query frame) and back (DTW with the match
unwarped); the frame position error FPE is the mean squared difference (s^2) between where a query
frame started and where it came back.  With per-frame phase labels, the cycle phase error CPE is the
share of query frames that come back in another phase, and the aligned phase agreement APA the share
of query frames whose match frame has the same phase.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from extractors.runtime.timebase import FPS
from index.dtw import contextualise, cosine_cost, draq, dtw, first_of_each_row, warp
from pipeline.config.schema import AlignConfig
from pipeline.core.atomic import atomic_path
from pipeline.core.errors import StepError
from pipeline.store.features import VideoFeatures


@dataclass(frozen=True)
class Warping:
    """The optimal warping of ``a`` onto ``b``: path cells as times (s) in each video, its summed
    cosine-distance cost, DRAQ, and the offset ``t_a - t_b`` of its diagonal steps (median)."""

    a_times_s: np.ndarray
    b_times_s: np.ndarray
    path: np.ndarray  # (L, 2) compared-frame indices
    cost: float
    draq: float
    offset_s: float
    cost_matrix: np.ndarray  # (n, m) the DTW's cost
    contextualised: bool

    def as_json(self) -> dict:
        return {"units": "seconds", "offset_s": round(self.offset_s, 4), "cost": self.cost, "draq": self.draq,
                "contextualised": self.contextualised,
                "path": [[round(float(a), 3), round(float(b), 3)]
                         for a, b in zip(self.a_times_s, self.b_times_s, strict=True)]}


def sampled(vf: VideoFeatures, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Frame features and timestamps (s) at about ``fps`` frames per second."""
    step = max(1, round(FPS / fps))
    return vf.features[::step].astype(np.float32), vf.timestamps_s[::step]


def cost_matrix(a: np.ndarray, b: np.ndarray, contextualised: bool) -> torch.Tensor:
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    if contextualised:
        ta, tb = contextualise(ta), contextualise(tb)
    return cosine_cost(ta, tb)


def path_offset(path: np.ndarray, ta: np.ndarray, tb: np.ndarray) -> float:
    """Median ``t_a - t_b`` over the path's diagonal steps (all cells when it has none)."""
    d = np.diff(path, axis=0)
    diag = np.r_[False, (d[:, 0] == 1) & (d[:, 1] == 1)] if len(path) > 1 else np.ones(len(path), bool)
    cells = path[diag] if diag.any() else path
    return float(np.median(ta[cells[:, 0]] - tb[cells[:, 1]]))


def align_features(a: VideoFeatures, b: VideoFeatures, settings: AlignConfig,
                   contextualised: bool | None = None) -> Warping:
    """DTW of ``a`` and ``b`` (``settings``: rate, contextualisation, DRAQ paths and seed)."""
    ctx = settings.contextualise if contextualised is None else contextualised
    fa, ta = sampled(a, settings.fps)
    fb, tb = sampled(b, settings.fps)
    if len(fa) == 0 or len(fb) == 0:
        raise StepError(f"{a.video_id if len(fa) == 0 else b.video_id}: no frames to align")
    cost = cost_matrix(fa, fb, ctx)
    res = dtw(cost)
    path = res.cells(0)
    if settings.unwarped == "first":  # one cell per frame of a
        path = first_of_each_row(path)
    q = draq(cost, float(res.cost[0]), settings.draq_paths, settings.seed)
    return Warping(ta[path[:, 0]], tb[path[:, 1]], path, float(res.cost[0]), q, path_offset(path, ta, tb),
                   cost.numpy(), ctx)


def plot_warping(w: Warping, a_name: str, b_name: str, out: Path) -> Path:
    """The cost matrix with the warping path (PNG, written atomically)."""
    from pipeline.steps.report import plt, png_bytes  # the report's matplotlib (non-interactive backend)

    n, m = w.cost_matrix.shape
    fig, ax = plt.subplots(figsize=(6, 6 * max(0.3, min(3.0, n / max(m, 1)))))
    extent = (0, float(w.b_times_s.max(initial=0)) if m else 0, float(w.a_times_s.max(initial=0)) if n else 0, 0)
    im = ax.imshow(w.cost_matrix, cmap="viridis_r", aspect="auto", interpolation="nearest",
                   extent=(extent[0], extent[1] + 1e-9, extent[2] + 1e-9, 0))
    fig.colorbar(im, ax=ax, label="frame cost (1 - cosine" + (", contextualised)" if w.contextualised else ")"))
    ax.plot(w.b_times_s, w.a_times_s, color="red", lw=1.2, label="DTW path")
    ax.set_xlabel(f"{b_name} (s)")
    ax.set_ylabel(f"{a_name} (s)")
    ax.set_title(f"cost {w.cost:.2f}, DRAQ {w.draq:.3f}, offset {w.offset_s:+.2f} s"
                 + (" (contextualised)" if w.contextualised else ""))
    ax.legend(loc="lower left")
    data = png_bytes(fig)
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    return out


@dataclass(frozen=True)
class CycleErrors:
    fpe_s2: float  # mean squared cycle error of the query's frame positions, seconds^2
    cpe: float  # share of query frames that come back in another phase (nan: no labels)
    apa: float  # share of query frames aligned to a match frame of the same phase (nan: no labels)


def cycle_errors(query: np.ndarray, match: np.ndarray, period_s: float, contextualised: bool,
                 query_phases: np.ndarray | None = None, match_phases: np.ndarray | None = None) -> CycleErrors:
    """Cycle consistency of ``query (n, d)`` -> ``match (m, d)`` -> query (frames ``period_s`` apart)."""
    fwd = dtw(cost_matrix(query, match, contextualised)).cells(0)
    back = dtw(cost_matrix(match, query, contextualised)).cells(0)
    f = warp(fwd, len(query), unwarped="first").astype(np.int64)  # query frame -> match frame
    g = warp(back, len(match), unwarped="first").astype(np.int64)  # match frame -> query frame
    start = np.arange(len(query))
    cycled = g[f]
    fpe = float(np.mean(((cycled - start) * period_s) ** 2))
    if query_phases is None or match_phases is None:
        return CycleErrors(fpe, math.nan, math.nan)
    qp, mp = np.asarray(query_phases), np.asarray(match_phases)
    return CycleErrors(fpe, float(np.mean(qp[cycled] != qp)), float(np.mean(mp[f] == qp)))


def draq_order(query: VideoFeatures, candidates: list[VideoFeatures], settings: AlignConfig
               ) -> tuple[np.ndarray, np.ndarray]:
    """DRAQ of the query against each candidate and the order that ranks them by it (ascending)."""
    values = np.array([align_features(query, c, settings).draq for c in candidates], dtype=np.float64)
    return np.argsort(values, kind="stable"), values
