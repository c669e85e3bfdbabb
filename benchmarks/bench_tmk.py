"""TMK descriptor and scoring speed against the straightforward implementation.

    python benchmarks/bench_tmk.py            # full table (about 3 minutes on 2 cores)
    python benchmarks/bench_tmk.py --quick    # smaller sizes, a smoke run

Configuration (issue #2): d = 512, N = 9000 frames, offsets -9000..8999
(K = 18,000), P = 4, m = 16 (``lamv`` preset).  Each operation of
``extractors.temporal.tmk`` is measured against a direct implementation in this file,
in the same run:

* descriptor: per 500-frame block, materialise the ``(P, 2m, 500, d)``
  product of the trigonometric weights with the frames and sum it (the
  reference's ``single_fv``);
* scoring: evaluate every offset directly, materialising the ``(B, P, m, K)``
  cosine and sine arrays (the reference's ``merge``).  For 1 vs 10,000 the
  direct way would need ~46 GB at once, so it runs in chunks of 100 candidates
  over the first ``--direct-candidates`` candidates (default 1,000) and its
  time is scaled linearly to 10,000; the table says so.

Peak memory is the growth of the process's peak resident set during the
operation (Linux ``VmHWM``, reset before each measurement).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from extractors.temporal.tmk import TMK

log = logging.getLogger("bench_tmk")


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall seconds over ``repeats`` runs (after one warm-up) and peak RSS growth (MiB)."""
    fn()
    times = []
    peak = 0.0
    for _ in range(repeats):
        base = _rss_kib("VmRSS")
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        peak = max(peak, (_rss_kib("VmHWM") - base) / 1024.0)
    return statistics.median(times), peak


# --------------------------------------------------------------------------- straightforward way


def descriptor_direct(model: TMK, x: torch.Tensor, t: torch.Tensor, block: int = 500) -> torch.Tensor:
    """``(1, P, 2m, d)``: per frame block, materialise weights x frames and sum over frames."""
    omega = model.omega.float()  # (P, m)
    sq = model._coeffs().sqrt()
    out = torch.zeros(1, model.P, 2 * model.m, x.shape[-1])
    for n0 in range(0, x.shape[1], block):
        tb = t[0, n0:n0 + block].float()
        ph = omega[:, :, None] * tb[None, None, :]  # (P, m, n)
        w = torch.cat([torch.sin(ph), torch.cos(ph)], dim=1) * torch.cat([sq, sq], 1)[:, :, None]
        out[0] += (w[:, :, :, None] * x[0, n0:n0 + block][None, None]).sum(2)
    return out


def score_direct(model: TMK, fa: torch.Tensor, fb: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """``(B, K)``: materialise the ``(B, P, m, K)`` cosine/sine terms and reduce them."""
    fa, fb = model.normalize(fa), model.normalize(fb)
    m = model.m
    S_a, C_a, S_b, C_b = fa[:, :, :m], fa[:, :, m:], fb[:, :, :m], fb[:, :, m:]
    w0 = (S_a * S_b).sum(-1) + (C_a * C_b).sum(-1)  # (B, P, m)
    w1 = (S_a * C_b).sum(-1) - (C_a * S_b).sum(-1)
    ph = model.omega.float()[None, :, :, None] * offsets.float()[None, None, None, :]  # (1,P,m,K)
    terms = w0[..., None] * torch.cos(ph) + w1[..., None] * torch.sin(ph)  # (B, P, m, K)
    return terms.sum(dim=(1, 2))


def score_direct_max(model: TMK, fa: torch.Tensor, fb: torch.Tensor, offsets: torch.Tensor,
                     chunk: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    vals, idx = [], []
    for b0 in range(0, fb.shape[0], chunk):
        c = score_direct(model, fa, fb[b0:b0 + chunk], offsets)
        v, i = c.max(1)
        vals.append(v)
        idx.append(i)
    return torch.cat(vals), offsets[torch.cat(idx)]


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--direct-candidates", type=int, default=1000,
                    help="candidates the direct 1-vs-10,000 run really scores (then scaled)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    N, d, L = (1500, 512, 1500) if args.quick else (9000, 512, 9000)
    big = 1000 if args.quick else 10_000
    direct_big = min(args.direct_candidates, big)
    model = TMK.preset("lamv")
    x = torch.nn.functional.normalize(torch.randn(1, N, d), dim=-1)
    t = torch.arange(N, dtype=torch.float64)[None]
    offsets = torch.arange(-L, L)

    rows: list[tuple[str, float, float, float, float, str]] = []

    ours_t, ours_m = measure(lambda: model.descriptor(x, t), args.repeats)
    dir_t, dir_m = measure(lambda: descriptor_direct(model, x, t), args.repeats)
    ref = descriptor_direct(model, x, t)
    err = float((model.descriptor(x, t) - ref).abs().max() / ref.abs().max())
    rows.append((f"descriptor N={N} d={d}", dir_t, ours_t, dir_m, ours_m,
                 f"max rel. diff {err:.1e} (direct forms phases in float32)"))

    fq = model.descriptor(x, t)
    for B in (1, 100, big):
        log.info("scoring 1 vs %d ...", B)
        fb = torch.randn(B, model.P, 2 * model.m, d)
        fbn = model.normalize(fb)  # an index normalises its database once
        ours_t, ours_m = measure(
            lambda fb=fbn: model.score_max(model.normalize(fq), fb, offsets, normalized=True),
            args.repeats)
        n_direct = min(B, direct_big)
        reps = 1 if n_direct > 100 else args.repeats
        dir_t, dir_m = measure(lambda n=n_direct, fb=fb: score_direct_max(model, fq, fb[:n], offsets),
                               reps)
        scale = B / n_direct
        note = "" if scale == 1 else f"direct timed on {n_direct}, x{scale:g}"
        _best_o, off_o = model.score_max(fq, fb[:n_direct], offsets)
        _best_d, off_d = score_direct_max(model, fq, fb[:n_direct], offsets)
        agree = float((off_o == off_d).double().mean())
        note = (note + "; " if note else "") + f"arg-max agree {agree:.1%}"
        rows.append((f"score 1 vs {B:,} K={2 * L:,}", dir_t * scale, ours_t, dir_m, ours_m, note))
        del fb, fbn

    header = "| operation | direct s | ours s | speed-up | direct peak MiB | ours peak MiB | notes |"
    print(f"\nTMK benchmark: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"P=4 m=16 d={d}\n")
    print(header)
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, dt, ot, dm, om, note in rows:
        print(f"| {name} | {dt:.3f} | {ot:.4f} | {dt / ot:.1f}x | {dm:.0f} | {om:.0f} | {note} |")


if __name__ == "__main__":
    main()
