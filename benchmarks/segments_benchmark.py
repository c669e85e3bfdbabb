"""Copy segments and frame alignment: speed of the frame-level stage, quality on the copy and alignment
benchmarks.

    python benchmarks/segments_benchmark.py speed                 # 1 query x 100 candidates of 10 min
    python benchmarks/segments_benchmark.py copies --root bench_copy   # after benchmarks/copy_benchmark.py
    python benchmarks/segments_benchmark.py align --root bench_align   # after benchmarks/lamv_benchmark.py

* **speed**: one query against 100 candidates of 10 minutes each (zero-mean, temporally smooth unit
  features like PCA-whitened ones, d = 256, a 60-s copy planted in every tenth), compared at
  ``segments.fps`` (2 fps: 1,200 frames a video).  The batched localisers (``index/segments.py``: band
  similarities or full similarity blocks, HV, TN, DTW in the offset band) against two straightforward
  implementations in the same run, one candidate at a time with Python loops over offsets, nodes and
  cells: the textbook one (each frame similarity a dot product when its cell is visited) and one that
  first computes each pair's whole similarity matrix with one NumPy product.  Ours: the median of 3
  runs after a warm-up call (as in a search, past its first query).  The straightforward ones run on the first
  ``--baseline-candidates`` candidates and are scaled linearly to all of them (their cost is linear in
  the candidates); the table says so.
* **copies**: the copy benchmark's corpus (real clips, VCDB-style partial copies), selfsup features, the
  ``tmk_lamv`` re-ranking seeding every localiser: segment max-F1 (VCDB reading), VSC 2022 micro-AP,
  VCSL precision / recall / F1 and the copy / no-copy decision's F1, for the TMK offset alone vs HV vs
  TN vs DTW (raw and contextualised).  Copy thresholds are calibrated on held-out data: the videos are
  split in two halves along the copy graph's components; each half is judged with the threshold of
  best decision F1 on the *other* half, and the table gives the video-weighted mean of both halves.
* **align**: the alignment benchmark (multi-camera-like overlapping recordings, ``.align``): for every
  overlapping pair, DTW of the two recordings at ``align.fps`` with and without contextualisation:
  localisation accuracy of the path's offset (0.1 / 1 / 10 s) and FPE (cycle consistency, s^2); and for
  every recording, its other recordings ranked by the ``tmk_lamv`` score vs the top 5 re-ranked by DRAQ:
  is the rank-1 recording a true overlapping partner?
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

from extractors.runtime.timebase import FPS
from extractors.training.lamv_training import TrainingPairs, components
from index.dtw import draq, dtw
from index.localise import LocaliserSettings, localise
from pipeline.config.load import load_config
from pipeline.datasets.kinds import load_ground_truth
from pipeline.steps.alignment import cost_matrix, cycle_errors, path_offset, sampled
from pipeline.steps.build import build
from pipeline.steps.describe import configured_model
from pipeline.steps.frames import FeatureLookup
from pipeline.steps.protocols import align_item_span, segment_metrics
from pipeline.store.descriptors import describe_video
from pipeline.store.layout import Layout
from pipeline.store.results.search import read_search_results, read_segments

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("segments_benchmark")


# --------------------------------------------------------------------------- speed


def straightforward(query: np.ndarray, cands: list[np.ndarray], seeds: np.ndarray, method: str, band: int,
                    threshold: float, top_k: int = 5, max_step: int = 5, loops: bool = True) -> list[tuple]:
    """The frame-level stage written the direct way: one candidate, one offset, one node, one cell at a
    time.  ``loops``: each frame similarity is a dot product computed when the cell is visited (the
    textbook version); else each pair's similarity matrix is one NumPy product first."""
    out = []
    for c, ref in enumerate(cands):
        n, m = len(query), len(ref)
        if loops:
            def sim(i: int, j: int, ref: np.ndarray = ref) -> float:
                return float(np.dot(query[i], ref[j]))
        else:
            full = query @ ref.T

            def sim(i: int, j: int, full: np.ndarray = full) -> float:
                return float(full[i, j])
        if method == "hv":
            votes: dict[int, float] = {}
            for i in range(n):  # every frame pair in the band votes for its offset
                for off in range(seeds[c] - band, seeds[c] + band + 1):
                    j = i - off
                    if 0 <= j < m:
                        v = sim(i, j)
                        if v > threshold:
                            votes[off] = votes.get(off, 0.0) + v - threshold
            best_off = max(votes, key=lambda k: votes[k]) if votes else seeds[c]
            run, start = 0.0, None
            for i in range(n):  # matching frames along the winning diagonal
                j = i - best_off
                if 0 <= j < m and sim(i, j) >= threshold:
                    start = i if start is None else start
                    run += sim(i, j) - threshold
            out.append((c, start, run))
        elif method == "tn":
            nodes = []
            for i in range(n):
                row = np.array([sim(i, j) for j in range(m)]) if loops else full[i]
                for j in np.argsort(-row)[:top_k]:
                    if row[j] >= threshold:
                        nodes.append((i, int(j), float(row[j] - threshold)))
            score: dict[tuple[int, int], float] = {}
            for i, j, w in nodes:  # nodes in row order: predecessors are already scored
                best = 0.0
                for (pi, pj), s in score.items():
                    if 0 < i - pi <= max_step and 0 < j - pj <= max_step and s > best:
                        best = s
                score[(i, j)] = w + best
                score = {k: v for k, v in score.items() if i - k[0] <= max_step}
            out.append((c, len(nodes), max(score.values(), default=0.0)))
        else:  # dtw in the band around the seed diagonal
            lo = max(0, seeds[c])
            r_lo = max(0, -seeds[c])
            L = min(n - lo, m - r_lo)
            D = np.full((L + 1, L + 1), np.inf)
            D[0, 0] = 0.0
            for i in range(1, L + 1):
                for j in range(max(1, i - band), min(L, i + band) + 1):
                    cost = 1.0 - sim(lo + i - 1, r_lo + j - 1)
                    D[i, j] = cost + min(D[i - 1, j - 1], D[i - 1, j], D[i, j - 1])
            out.append((c, L, D[L, L]))
    return out


def speed(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    fps, d, minutes = 2.0, 256, 10.0
    n = int(minutes * 60 * fps)
    step = round(FPS / fps)

    def unit(x: np.ndarray) -> np.ndarray:
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def video() -> np.ndarray:
        """Video-like (PCA-whitened: zero-mean) 15-fps features: slowly drifting content (a moving
        average over ~5 s of 2-fps noise), each compared frame held for its 8 stream frames."""
        z = rng.standard_normal((n + 10, d))
        cs = np.cumsum(z, axis=0)
        smooth = (cs[10:] - cs[:-10])[:n]
        smooth /= np.linalg.norm(smooth, axis=1, keepdims=True)
        return np.repeat(unit(smooth), step, axis=0)

    q15 = video()
    cands15 = [video() for _ in range(args.candidates)]
    for c in range(0, args.candidates, 10):  # a planted 60 s copy in every tenth candidate
        cands15[c][3000:3900] = q15[6000:6900]
    times = np.arange(n * step) / FPS
    seeds_s = np.where(np.arange(args.candidates) % 10 == 0, (6000 - 3000) / FPS, 0.0)
    q, cands = q15[::step], [c[::step] for c in cands15]
    seeds = np.rint(seeds_s * FPS / step).astype(np.int64)
    band = int(5 * FPS / step)
    threshold = 0.2  # segments.frame_threshold
    sample = q @ cands[1].T
    log.warning("unrelated frame cosine: mean %.2f, share above the threshold %.2f", sample.mean(),
                (sample > threshold).mean())
    nb = args.baseline_candidates
    print(f"\nFrame-level stage: 1 query x {args.candidates} candidates of {minutes:g} min, compared at "
          f"{FPS / step:.3f} fps ({n} frames a video), d = {d}, band +-{band} frames, 2 CPU threads; "
          f"straightforward: {nb} candidates timed, scaled x{args.candidates / nb:g}\n")
    print("| localiser | batched (s) | textbook loops (s, scaled) | speed-up | per-pair NumPy matrix + loops "
          "(s, scaled) | speed-up | planted copies found |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for method in ("hv", "tn", "dtw"):
        st = LocaliserSettings(method=method, step=step, band=band, threshold=threshold, max_gap=4,
                               min_length=2, tn_top_k=5, tn_max_step=5)
        localise(q15, times, cands15[:4], [times] * 4, seeds_s[:4], st)  # warm-up (a search's later queries)
        runs = []
        for _ in range(3):  # the median of 3 runs
            t0 = time.perf_counter()
            found = localise(q15, times, cands15, [times] * len(cands15), seeds_s, st)
            runs.append(time.perf_counter() - t0)
        fast = float(np.median(runs))
        slow = []
        for loops in (True, False):
            t0 = time.perf_counter()
            straightforward(q, cands[:nb], seeds[:nb], method, band, threshold, loops=loops)
            slow.append((time.perf_counter() - t0) * args.candidates / nb)
        planted = {c for c in range(0, args.candidates, 10)}
        hit = {s.candidate for s in found if s.score >= 5.0 and abs(s.query_start_s - 400) < 5}
        print(f"| {method} | {fast:.2f} | {slow[0]:.1f} | {slow[0] / fast:.0f}x | {slow[1]:.1f} | "
              f"{slow[1] / fast:.1f}x | {len(hit & planted)}/{len(planted)} |")


# --------------------------------------------------------------------------- copies


def halves(ids: list[str], pairs) -> dict[str, int]:
    """Videos split in two along the connected components of the copy graph (the training folds'
    ``components``; largest first, each to the smaller half)."""
    pos = {v: i for i, v in enumerate(ids)}
    kept = [(pos[p.video_a], pos[p.video_b]) for p in pairs if p.video_a in pos and p.video_b in pos]
    a, b = (np.array([k[j] for k in kept], np.int64) for j in (0, 1))
    comps: dict[int, list[str]] = {}
    for v, c in zip(ids, components(len(ids), TrainingPairs(a, b, np.zeros(len(kept)))).tolist(), strict=True):
        comps.setdefault(c, []).append(v)
    size = [0, 0]
    out = {}
    for comp in sorted(comps.values(), key=lambda c: (-len(c), min(c))):
        h = int(size[1] < size[0])
        size[h] += len(comp)
        out.update({v: h for v in comp})
    return out


def copies(args: argparse.Namespace) -> None:
    variants = [(m, label, ctx, thr) for thr in (0.3, 0.2)
                for m, label, ctx in (("offset", "TMK offset only", False), ("hv", "HV", False), ("tn", "TN", False),
                                      ("dtw", "DTW", False), ("dtw", "DTW, contextualised", True))]
    print(f"\nCopy benchmark ({args.root}): selfsup features, tmk_lamv re-ranking, segments at 2 fps; copy "
          f"threshold calibrated on the other half of the videos\n")
    print("| localiser | frame threshold | segment max-F1 (VCDB) | VSC micro-AP | segment-score pair AP | VCSL P | "
          "VCSL R | VCSL F1 | decision P | decision R | decision F1 | calibrated copy thresholds |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for method, label, ctx, thr in variants:
        ov = (f"dataset.root={args.root.resolve()};dataset.kind=vcdb;dataset.name=copybench-selfsup;"
              f"features.remove_black_bars=false;dataset.max_length_s=240;features.extractor=selfsup;"
              f"features.weights=random;features.pca=auto;shards.size=16;search.top_k=20;search.keep=20;"
              f"work_dir={args.root.resolve() / 'work'};reports_dir={args.root.resolve() / 'reports' / 'segments'};"
              f"segments.method={method};segments.contextualise={str(ctx).lower()};segments.frame_threshold={thr};"
              f"evaluate.models=[tmk_lamv]")
        layout = Layout(load_config("folder", ov))
        build(layout, until="evaluate", models=["tmk_lamv"], show_progress=False)
        rep = json.loads((layout.report_dir("tmk_lamv") / "report.json").read_text())["metrics"]
        rows = read_search_results(layout.search_dir("tmk_lamv"))
        segs, _ = read_segments(layout.search_dir("tmk_lamv"))
        ids = [v.id for v in layout.videos]
        gt = load_ground_truth(layout.cfg.dataset, ids)
        half = halves(ids, gt.pairs)
        data = (ids, half, rows, segs, gt)
        thresholds = [judge(data, h, math.inf)["copy_threshold_best_F1"] for h in (0, 1)]
        judged = [judge(data, h, thresholds[1 - h]) for h in (0, 1)]
        m = {k: weighted(judged, k) for k in ("VCSL_precision", "VCSL_recall", "VCSL_F1", "copy_decision_precision",
                                             "copy_decision_recall", "copy_decision_F1")}
        print(f"| {label} | {thr:g} | {rep['segment_max_F1']:.3f} | {rep['VSC_segment_uAP']:.3f} | "
              f"{rep['segment_score_pair_AP']:.3f} | "
              f"{m['VCSL_precision']:.3f} | {m['VCSL_recall']:.3f} | {m['VCSL_F1']:.3f} | "
              f"{m['copy_decision_precision']:.3f} | {m['copy_decision_recall']:.3f} | {m['copy_decision_F1']:.3f} | "
              f"{thresholds[0]:.3f} / {thresholds[1]:.3f} |")


def judge(data: tuple, h: int, threshold: float) -> dict:
    """Segment metrics of half ``h`` of the videos, copies decided at ``threshold``."""

    ids, half, rows, segs, gt = data
    keep = {v for v in ids if half[v] == h}
    r = [dataclasses.replace(x, copy=x.segment_score >= threshold) for x in rows
         if x.query in keep and x.match in keep]
    s = [b for b in segs if b.query in keep and b.ref in keep]
    g = dataclasses.replace(gt, pairs=[p for p in gt.pairs if p.video_a in keep and p.video_b in keep])
    return segment_metrics(g, r, s, threshold, len(keep))["metrics"] | {"videos": len(keep)}


def weighted(judged: list[dict], key: str) -> float:
    """Video-weighted mean over the halves (halves where the metric is undefined left out)."""
    v = np.array([j[key] for j in judged], dtype=np.float64)
    w = np.array([j["videos"] for j in judged], dtype=np.float64)
    ok = ~np.isnan(v)
    return float((v[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else math.nan


# --------------------------------------------------------------------------- alignment


def align(args: argparse.Namespace) -> None:
    import torch

    ov = (f"dataset.root={args.root.resolve()};dataset.kind=align;dataset.gt_file=gt_align.align;"
          f"dataset.name=alignbench;dataset.max_length_s=60;features.extractor=selfsup;features.weights=random;"
          f"features.pca=auto;shards.size=16;work_dir={args.root.resolve() / 'work'};"
          f"reports_dir={args.root.resolve() / 'reports' / 'segments'};models={{lamv: {{type: tmk, preset: lamv}}}};"
          f"index.model=lamv;search.model=lamv;evaluate.models=[lamv];search.top_k=20;search.keep=20")
    layout = Layout(load_config("folder", ov))
    build(layout, until="search", models=["lamv"], show_progress=False)
    features = FeatureLookup.of_layout(layout)
    gt = load_ground_truth(layout.cfg.dataset, [v.id for v in layout.videos])
    fps = layout.cfg.align.fps
    items = gt.align
    spans = [align_item_span(it, features) for it in items]
    gt_idx, gt_off = gt.align_pairs()
    step = round(FPS / fps)
    print(f"\nAlignment benchmark ({args.root}): {len(items)} recordings, {len(gt_idx)} overlapping pairs, "
          f"selfsup features at {FPS / step:.3f} fps\n")
    print("| alignment | offset < 0.1 s | < 1 s | < 10 s | median offset error (s) | FPE (s^2) |")
    print("|---|---:|---:|---:|---:|---:|")
    for ctx in (False, True):
        errs, fpes = [], []
        for (a, b), off in zip(gt_idx, gt_off, strict=True):
            fa, ta = spans[a][0][::step], spans[a][1][::step] - spans[a][1][0]
            fb, tb = spans[b][0][::step], spans[b][1][::step] - spans[b][1][0]
            res = dtw(cost_matrix(fa, fb, ctx))
            errs.append(abs(path_offset(res.cells(0), ta, tb) + off))  # t_a - t_b = -(start_a - start_b)
            fpes.append(cycle_errors(fa, fb, step / FPS, ctx).fpe_s2)
        e = np.asarray(errs)
        print(f"| DTW of the whole recordings, {'contextualised' if ctx else 'raw'} | {np.mean(e < 0.1):.3f} | "
              f"{np.mean(e < 1):.3f} | {np.mean(e < 10):.3f} | {np.median(e):.2f} | {np.mean(fpes):.2f} |")
    # the pipeline's way: the lamv offset, then DTW inside a +-5 s band around it

    model = configured_model(layout, "lamv")
    L = round(layout.cfg.dataset.max_length_s * FPS)
    offsets = np.arange(-L, L)
    desc = [describe_video(model, sp[0], (sp[1] - sp[1][0]) * FPS) for sp in spans]
    tmk_err, band_err = [], {False: [], True: []}
    for (a, b), off in zip(gt_idx, gt_off, strict=True):
        _, o = model.score_max(desc[a][None], desc[b][None], offsets)
        seed_s = float(o[0]) / FPS
        tmk_err.append(abs(seed_s + off))
        ta, tb = spans[a][1] - spans[a][1][0], spans[b][1] - spans[b][1][0]
        for ctx in (False, True):
            st = LocaliserSettings(method="dtw", step=step, threshold=layout.cfg.segments.frame_threshold,
                                   band=round(5.0 * FPS / step), max_gap=4, min_length=2, contextualise=ctx)
            found = localise(spans[a][0], ta, [spans[b][0]], [tb], np.array([seed_s]), st)
            est = max(found, key=lambda f: f.score) if found else None
            band_err[ctx].append(abs((est.query_start_s - est.ref_start_s) + off) if est else abs(seed_s + off))
    for label, e in (("lamv TMK offset alone", tmk_err), ("lamv offset + DTW in a +-5 s band, raw", band_err[False]),
                     ("lamv offset + DTW in a +-5 s band, contextualised", band_err[True])):
        e = np.asarray(e)
        print(f"| {label} | {np.mean(e < 0.1):.3f} | {np.mean(e < 1):.3f} | {np.mean(e < 10):.3f} | "
              f"{np.median(e):.2f} | |")
    # DRAQ re-ranking of each recording's top 5 (by the lamv score)
    rows = read_search_results(layout.search_dir("lamv"))
    partners: dict[str, set[str]] = {}
    for a, b in gt_idx:
        partners.setdefault(items[a].video, set()).add(items[b].video)
        partners.setdefault(items[b].video, set()).add(items[a].video)
    by_video = {it.video: i for i, it in enumerate(items)}
    name = {v: next((k for k in (v, v.removesuffix(".avi")) if k in by_video), None) for v in {r.query for r in rows}}
    hits_raw, hits_draq, n_q = 0, 0, 0
    for q in sorted({r.query for r in rows}):
        qn = name.get(q)
        if qn is None or qn not in partners:
            continue
        lst = sorted((r for r in rows if r.query == q), key=lambda r: r.rank)[:5]
        if not lst:
            continue
        n_q += 1
        hits_raw += lst[0].match in partners[qn]
        fq = sampled(features.get(q), fps)[0]
        vals = []
        for r in lst:
            fr = sampled(features.get(r.match), fps)[0]
            cost = cost_matrix(fq, fr, True)
            vals.append(draq(cost, float(dtw(cost).cost[0]), layout.cfg.align.draq_paths, 0))
        hits_draq += lst[int(np.argmin(vals))].match in partners[qn]
    print(f"\nDRAQ re-ranking ({n_q} recordings with a partner; top 5 by the lamv score re-ranked by DRAQ on "
          f"contextualised features, {layout.cfg.align.draq_paths} random paths):\n")
    print("| ranking | rank 1 is an overlapping partner |")
    print("|---|---:|")
    print(f"| lamv score | {hits_raw / max(n_q, 1):.3f} |")
    print(f"| DRAQ (top 5 re-ranked) | {hits_draq / max(n_q, 1):.3f} |")
    _ = torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--candidates", type=int, default=100)
    sp.add_argument("--baseline-candidates", type=int, default=2)
    cp = sub.add_parser("copies")
    cp.add_argument("--root", type=Path, default=Path("bench_copy"))
    al = sub.add_parser("align")
    al.add_argument("--root", type=Path, default=Path("bench_align"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    {"speed": speed, "copies": copies, "align": align}[args.what](args)


if __name__ == "__main__":
    main()
