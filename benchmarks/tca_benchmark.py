"""TCA versus the mean-frame component and TMK on the copy benchmark, five-fold held out.

    python benchmarks/tca_benchmark.py --root bench_copy      # after benchmarks/copy_benchmark.py

For each test fold ``k`` of 5 (connected components of the copy graph, ``lamv_training.test_fold``), a
TCA model is trained on the other four folds only (``Train``: the default ``tca_training``
settings, selfsup features + PCA-whitening, 1 frame per second, 300 frames) and everything is judged on
fold ``k``'s videos only:

* **candidate stage**: for every held-out video with a copy (its copies are held out too), the share of
  its copies in its top k of the whole corpus (the training folds' videos are distractors; k = 1, 5,
  10; a query with fewer than k copies counts recall over its copies: ``hits / min(k, copies)``) by
  TCA_c vs by the mean-frame component (``tmk_lamv``'s), exact inner-product search (the flat index
  both use at this size);
* **re-ranking**: the pipeline's held-out reports for ``search.model: tca`` (TCA_f chamfer) and
  ``search.model: tmk_lamv`` over the same candidates (``index.model: tmk_lamv``, top 20): pair-level AP
  over all unordered held-out pairs, and mAP of each query's ranked list;
* **cost per query**: re-ranking 20 candidates with each model (descriptors in memory), median over the
  held-out queries; TCA training time per fold.

The table gives every fold and the video-weighted mean.  With ``--align-root``, also an event-retrieval
style evaluation on the alignment benchmark (the recordings of one source clip are one event): mAP of
TCA_c vs the mean frame and of TCA_f vs the TMK score, held-out recordings as queries.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from extractors.runtime.timebase import FPS
from index.rerank import offset_range, rerank
from pipeline.config.load import load_config
from pipeline.datasets.kinds import load_ground_truth
from pipeline.metrics.events import evve_average_precision
from pipeline.steps.build import build
from pipeline.steps.describe import configured_model, descriptor_store
from pipeline.steps.training.folds import held_out
from pipeline.store.fitted.tca import load_tca
from pipeline.store.layout import Layout
from pipeline.store.results.search import read_search_results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("tca_benchmark")


def overrides(root: Path, fold: int, extra: str) -> str:
    return (f"dataset.root={root.resolve()};dataset.kind=vcdb;dataset.name=copybench-selfsup;"
            f"features.remove_black_bars=false;dataset.max_length_s=240;features.extractor=selfsup;"
            f"features.weights=random;features.pca=auto;shards.size=16;search.top_k=20;search.keep=20;"
            f"work_dir={root.resolve() / 'work'};reports_dir={root.resolve() / 'reports' / 'tca' / f'fold{fold}'};"
            f"models={{tmk_lamv: {{type: tmk, preset: lamv}}, tca: {{type: tca}}}};index.model=tmk_lamv;"
            f"search.model=tmk_lamv;evaluate.models=[tmk_lamv, tca];lamv_training.test_fold={fold}"
            + (f";{extra}" if extra else ""))


def recall_at(vectors: dict[str, np.ndarray], queries: list[str], partners: dict[str, set[str]],
              ks: tuple[int, ...]) -> dict[int, float]:
    """Mean over the held-out ``queries`` with partners of the share of their (held-out) partners in
    their top k of the whole corpus (every other video: the training folds' are distractors)."""
    ids = list(vectors)
    x = np.stack([vectors[v] for v in ids])
    pos = {v: i for i, v in enumerate(ids)}
    qs = [q for q in queries if q in pos and partners.get(q)]
    sim = x[[pos[q] for q in qs]] @ x.T
    sim[np.arange(len(qs)), [pos[q] for q in qs]] = -np.inf
    order = np.argsort(-sim, axis=1, kind="stable")
    out = {}
    for k in ks:
        vals = [len({ids[j] for j in order[i, :k]} & partners[q]) / min(k, len(partners[q]))
                for i, q in enumerate(qs)]
        out[k] = float(np.mean(vals)) if vals else float("nan")
    return out


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """The EVVE protocol's AP (``pipeline.metrics.events.evve_average_precision``, the pipeline's own event metric)
    of the list ranked by ``scores``; NaN when nothing is relevant."""

    hits = relevant[np.argsort(-scores, kind="stable")]
    if not hits.any():
        return float("nan")
    return evve_average_precision(hits.astype(np.int64), int(hits.sum()))


def events(root: Path, folds: int, extra: str) -> None:
    """Event retrieval on the alignment benchmark: each held-out recording queries the whole corpus;
    relevant: the other recordings of the same source clip (event); mAP of TCA_c vs the mean frame
    (candidate stage) and of TCA_f chamfer vs the TMK score (re-ranking), every pair scored."""

    truth = {f"align/{t['name']}": t["source"] for t in json.loads((root / "truth.json").read_text())}
    out = []
    for fold in range(folds):
        ov = (f"dataset.root={root.resolve()};dataset.kind=align;dataset.gt_file=gt_align.align;"
              f"dataset.name=alignbench;dataset.max_length_s=60;features.extractor=selfsup;features.weights=random;"
              f"features.pca=auto;shards.size=16;work_dir={root.resolve() / 'work'};"
              f"reports_dir={root.resolve() / 'reports' / 'tca' / f'fold{fold}'};"
              f"models={{lamv: {{type: tmk, preset: lamv}}, tca: {{type: tca}}}};index.model=lamv;search.model=lamv;"
              f"evaluate.models=[lamv, tca];lamv_training.test_fold={fold}" + (f";{extra}" if extra else ""))
        layout = Layout(load_config("folder", ov))
        build(layout, until="descriptors", show_progress=False)
        held = held_out(layout)
        assert held is not None
        stores = {m: descriptor_store(layout, m) for m in ("lamv", "tca")}
        ids = [v for v in stores["lamv"].ids if v in truth]
        queries = [v for v in ids if v in held.videos]
        ev = np.array([truth[v] for v in ids])
        models = {m: configured_model(layout, m) for m in stores}
        L = round(layout.cfg.dataset.max_length_s * FPS)
        aps: dict[str, list[float]] = {"mean frame": [], "TCA_c": [], "TMK": [], "TCA_f": []}
        vec = {m: dict(zip(*stores[m].mean_frames(), strict=True)) for m in stores}
        table = {m: np.stack([vec[m][v] for v in ids]) for m in stores}
        allf = {m: stores[m].get(ids) for m in stores}
        for q in queries:
            others = np.array([v != q for v in ids])
            rel = (ev == truth[q]) & others
            for label, m in (("mean frame", "lamv"), ("TCA_c", "tca")):
                aps[label].append(average_precision((table[m] @ vec[m][q])[others], rel[others]))
            for label, m in (("TMK", "lamv"), ("TCA_f", "tca")):
                sc, _ = models[m].score_max(stores[m].get([q]), allf[m], np.arange(-L, L))
                aps[label].append(average_precision(sc.numpy()[others], rel[others]))
        out.append((fold, len(queries), {k: float(np.nanmean(v)) for k, v in aps.items()}))
    print(f"\nEvent retrieval on the alignment benchmark ({root}): held-out recordings query all 70; relevant: "
          f"the other recordings of the same source clip; selfsup features\n")
    print("| fold | queries | mAP mean frame | TCA_c | mAP TMK (lamv) | TCA_f |")
    print("|---|---:|---:|---:|---:|---:|")
    for fold, n, m in out:
        print(f"| {fold} | {n} | {m['mean frame']:.3f} | {m['TCA_c']:.3f} | {m['TMK']:.3f} | {m['TCA_f']:.3f} |")
    w = np.array([n for _, n, _ in out], dtype=np.float64)
    mean = {k: float(sum(m[k] * n for _, n, m in out) / w.sum()) for k in out[0][2]}
    print(f"| **mean** | {int(w.sum())} | {mean['mean frame']:.3f} | {mean['TCA_c']:.3f} | {mean['TMK']:.3f} | "
          f"{mean['TCA_f']:.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("bench_copy"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--overrides", default="", help="extra config overrides for every run")
    ap.add_argument("--align-root", type=Path, default=None, help="also: event retrieval on this alignment "
                                                                   "benchmark (benchmarks/lamv_benchmark.py builds it)")
    ap.add_argument("--only-events", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    import torch

    torch.set_num_threads(2)
    if args.align_root is not None:
        events(args.align_root, args.folds, args.overrides)
    if args.only_events:
        return
    rows = []
    for fold in range(args.folds):
        layout = Layout(load_config("folder", overrides(args.root, fold, args.overrides)))
        t0 = time.perf_counter()
        build(layout, until="descriptors", show_progress=False)
        build(layout, until="evaluate", show_progress=False)
        took = time.perf_counter() - t0
        ck = load_tca(layout.trained_path("tca"))
        held = held_out(layout)
        assert held is not None
        videos = sorted(held.videos & {v.id for v in layout.videos})
        gt = load_ground_truth(layout.cfg.dataset, [v.id for v in layout.videos])
        partners: dict[str, set[str]] = {}
        for p in gt.pairs:
            if p.video_a in held.videos and p.video_b in held.videos and p.video_a != p.video_b:
                partners.setdefault(p.video_a, set()).add(p.video_b)
                partners.setdefault(p.video_b, set()).add(p.video_a)
        stores = {m: descriptor_store(layout, m) for m in ("tmk_lamv", "tca")}
        vecs = {}
        for m, st in stores.items():
            ids, means = st.mean_frames()
            vecs[m] = dict(zip(ids, means, strict=True))
        rec = {m: recall_at(vecs[m], videos, partners, (1, 5, 10)) for m in vecs}
        reports = {m: json.loads((layout.report_dir(m) / "report.json").read_text())["metrics"] for m in stores}
        # re-ranking cost: each held-out query against its 20 candidates, descriptors in memory
        cost = {}
        res = read_search_results(layout.search_dir("tmk_lamv"))
        for m, st in stores.items():
            model = configured_model(layout, m)
            times = []
            for q in videos:
                cands = [r.match for r in res if r.query == q][:20]
                if not cands:
                    continue
                qfv, cfv = st.get([q]), st.get(cands)
                offs = offset_range(model, st.n_frames[q], max(st.n_frames[c] for c in cands))
                t1 = time.perf_counter()
                rerank(model, qfv, cfv, offs)
                times.append(time.perf_counter() - t1)
            cost[m] = float(np.median(times)) * 1000 if times else float("nan")
        rows.append({"fold": fold, "videos": len(videos), "queries": sum(1 for v in videos if partners.get(v)),
                     "recall": rec, "reports": reports, "cost_ms": cost,
                     "train_s": ck.provenance.get("seconds_this_run"), "train_pairs": ck.provenance["train_pairs"],
                     "final_loss": ck.history[-1], "wall_s": took})
        log.warning("fold %d: %s", fold, {m: round(reports[m]["pair_AP"], 3) for m in reports})
    w = np.array([r["videos"] for r in rows], dtype=np.float64)

    def mean(get) -> float:
        v = np.array([get(r) for r in rows], dtype=np.float64)
        ok = ~np.isnan(v)
        return float((v[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else float("nan")

    print(f"\nTCA vs mean frame / TMK, copy benchmark ({args.root}), selfsup features, five-fold held out\n")
    print("| fold | held-out videos | queries | recall@1 mean frame | TCA_c | recall@5 mean frame | TCA_c | "
          "recall@10 mean frame | TCA_c | pair AP TMK | TCA_f | mAP TMK | TCA_f | ms/query TMK | TCA_f | "
          "TCA training s (pairs) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def line(label: str, get) -> str:
        return (f"| {label} | " + " | ".join(get(k) for k in (
            "videos", "queries", "r1m", "r1t", "r5m", "r5t", "r10m", "r10t", "apm", "apt", "mapm", "mapt", "cm", "ct",
            "train")) + " |")

    for r in rows:
        vals = {"videos": str(r["videos"]), "queries": str(r["queries"]),
                "r1m": f"{r['recall']['tmk_lamv'][1]:.3f}", "r1t": f"{r['recall']['tca'][1]:.3f}",
                "r5m": f"{r['recall']['tmk_lamv'][5]:.3f}", "r5t": f"{r['recall']['tca'][5]:.3f}",
                "r10m": f"{r['recall']['tmk_lamv'][10]:.3f}", "r10t": f"{r['recall']['tca'][10]:.3f}",
                "apm": f"{r['reports']['tmk_lamv']['pair_AP']:.3f}", "apt": f"{r['reports']['tca']['pair_AP']:.3f}",
                "mapm": f"{r['reports']['tmk_lamv']['mAP']:.3f}", "mapt": f"{r['reports']['tca']['mAP']:.3f}",
                "cm": f"{r['cost_ms']['tmk_lamv']:.1f}", "ct": f"{r['cost_ms']['tca']:.1f}",
                "train": f"{r['train_s']} ({r['train_pairs']})"}
        print(line(str(r["fold"]), vals.__getitem__))
    means = {"videos": str(int(w.sum())), "queries": str(sum(r["queries"] for r in rows)), "train": ""}
    for key, get in (("r1m", lambda r: r["recall"]["tmk_lamv"][1]), ("r1t", lambda r: r["recall"]["tca"][1]),
                     ("r5m", lambda r: r["recall"]["tmk_lamv"][5]), ("r5t", lambda r: r["recall"]["tca"][5]),
                     ("r10m", lambda r: r["recall"]["tmk_lamv"][10]), ("r10t", lambda r: r["recall"]["tca"][10]),
                     ("apm", lambda r: r["reports"]["tmk_lamv"]["pair_AP"]),
                     ("apt", lambda r: r["reports"]["tca"]["pair_AP"]),
                     ("mapm", lambda r: r["reports"]["tmk_lamv"]["mAP"]),
                     ("mapt", lambda r: r["reports"]["tca"]["mAP"]),
                     ("cm", lambda r: r["cost_ms"]["tmk_lamv"]), ("ct", lambda r: r["cost_ms"]["tca"])):
        means[key] = f"{mean(get):.3f}" if key not in ("cm", "ct") else f"{mean(get):.1f}"
    print(line("**mean**", means.__getitem__))


if __name__ == "__main__":
    main()
