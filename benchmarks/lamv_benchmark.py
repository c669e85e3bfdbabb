"""Learned LAMV kernel versus the von Mises kernel, five-fold cross-validated on held-out data.

    python benchmarks/lamv_benchmark.py                         # both benchmarks from ../shared/videos
    python benchmarks/lamv_benchmark.py --lr 0.001 --epochs 40  # the paper's settings
    python benchmarks/lamv_benchmark.py --seeds 0 1 2           # one kernel per training seed
    python benchmarks/lamv_benchmark.py --min-cycles 1          # slow frequencies keep their von Mises values
    python benchmarks/lamv_benchmark.py --only copies --retrieval-weight 0.5   # the copies' weight
    python benchmarks/lamv_benchmark.py --m 16 --parametrisation softplus --lr 10  # the tables before 2026-12-01
    python benchmarks/lamv_benchmark.py --only align --align-root bench_views10 --views --cameras 10
    python benchmarks/lamv_benchmark.py --shapes --align-root bench_views   # fixed kernels: how sharp?

Two datasets generated from real clips (``pipeline/datasets/generate.py``):

* **align**: multi-camera-like recordings (5 overlapping excerpts of every clip of at least 20 s, each
  with its own crop / letterbox / picture-in-picture / rescale, colours, noise and frame rate),
  ``.align`` ground truth; the alignment protocol (every held-out item against every other):
  localisation accuracy at 0.1 / 1 / 10 s, localisation mAP, pair-level AP of "these two overlap".
  With ``--views`` (and ``--cameras``), each recording is instead its camera's own panning window of
  40-65 % of the scene (``generate align --views``): cameras share only part of the picture.
* **copies**: the copy benchmark's corpus (``benchmarks/copy_benchmark.py``; reused when present):
  pair-level AP, segment max-F1, localisation accuracy of the found copies.

For each test fold ``k`` of 5 (connected components of the overlap graph), the kernel is trained on the
other four folds only (``Train``) and both models are evaluated by the pipeline on fold ``k`` only;
the table gives every fold and the item-weighted mean, then the learned-minus-von-Mises differences with a
paired bootstrap (items, or true and false pairs for pair AP, resampled within folds) and the exact sign
test on the items where the two disagree; with several ``--seeds``, one kernel per seed and the spread
over seeds.  Frame features: ``selfsup`` (+ PCA-whitening), the best offline extractor
(``benchmarks/RESULTS.md``).

``--shapes`` measures something else on the alignment corpus, with nothing trained: fixed von Mises kernels
of several sharpnesses (the lamv preset's periods, ``m`` harmonics, ``beta``) against the frame diagonal (the
sum of positive frame cosines along each diagonal of two items' similarity matrix: the pipeline's frame-level
verification at every frame, threshold 0), with the alignment protocol over every item and the share of all
overlapping pairs whose best offset is within 1 s.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from extractors.runtime.timebase import FPS
from extractors.temporal.tmk import TMK
from index.verification import diagonal_verify
from pipeline.config.load import load_config
from pipeline.datasets.kinds import load_ground_truth
from pipeline.metrics.localisation import accuracy_below, localization_errors
from pipeline.metrics.pair_level import pair_level
from pipeline.metrics.statistics import paired_bootstrap_accuracy, paired_bootstrap_ap
from pipeline.steps.build import build
from pipeline.steps.frames import FeatureLookup
from pipeline.steps.protocols import align_item_span
from pipeline.steps.training.lamv import aligned_data, train_kernel
from pipeline.store.descriptors import describe_video
from pipeline.store.layout import Layout
from pipeline.store.results.pair_scores import read_pair_scores

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("lamv_benchmark")

ALIGN_METRICS = ("localisation_accuracy_below_0.1s", "localisation_accuracy_below_1s",
                 "localisation_accuracy_below_10s", "localisation_mAP", "pair_AP")
MODELS = ("lamv", "lamv_learned", "lamv_sharp")  # von Mises, learned, and (--sharp-baseline) a sharper von Mises
SHAPES_GRID = ("16:32", "32:32", "32:64", "32:128", "64:256")
COPY_METRICS = ("localisation_accuracy_below_0.1s", "localisation_accuracy_below_1s",
                "localisation_accuracy_below_10s", "pair_AP", "segment_max_F1")


def overrides(root: Path, kind: str, name: str, work: Path, fold: int, args: argparse.Namespace) -> str:
    gt = "dataset.gt_file=gt_align.align;" if kind == "align" else ""
    return (f"dataset.root={root.resolve()};dataset.kind={kind};{gt}dataset.name={name};dataset.max_length_s="
            f"{60 if kind == 'align' else 240};features.extractor=selfsup;features.weights=random;features.pca=auto;"
            f"shards.size=16;work_dir={work.resolve()};"
            f"reports_dir={work.resolve() / 'reports' / settings_tag(args) / f'fold{fold}'};"
            f"models={{lamv: {{type: tmk, preset: lamv}}, lamv_learned: {{{learned_spec(args)}}}{sharp_spec(args)}}};"
            f"index.model=lamv;search.model=lamv;evaluate.models=[{', '.join(models(args))}];search.top_k=20;"
            f"search.keep=20;"
            f"lamv_training.test_fold={fold};lamv_training.lr={args.lr};lamv_training.epochs={args.epochs};"
            f"lamv_training.seed={args.seed};lamv_training.retrieval_weight={args.retrieval_weight};"
            f"lamv_training.min_cycles={args.min_cycles}")


def learned_spec(args: argparse.Namespace) -> str:
    """The ``lamv_learned`` model entry: the lamv preset's periods, ``--m`` harmonics, ``--parametrisation``."""
    return f"type: lamv_learned, init: {args.init}, m: {args.m}, parametrisation: {args.parametrisation}"


def sharp_spec(args: argparse.Namespace) -> str:
    """``, lamv_sharp: {...}``: the fixed von Mises kernel of ``--sharp-baseline m:beta`` (or nothing)."""
    if not args.sharp_baseline:
        return ""
    m, beta = von_mises_shape(args.sharp_baseline)
    return f", lamv_sharp: {{type: tmk, preset: lamv, m: {m}, beta: {beta:g}}}"


def von_mises_shape(spec: str) -> tuple[int, float]:
    """``"m:beta"`` (``--sharp-baseline``, ``--shapes``) -> harmonics per period and von Mises beta."""
    m, beta = spec.split(":")
    return int(m), float(beta)


def models(args: argparse.Namespace) -> tuple[str, ...]:
    """The models every fold evaluates: von Mises, the learned kernel, and the sharper von Mises if asked."""
    return MODELS if args.sharp_baseline else MODELS[:2]


def settings_tag(args: argparse.Namespace) -> str:
    """The reports folder of one training setting (kernels are keyed by their settings already)."""
    cycles = f"-c{args.min_cycles:g}" if args.min_cycles else ""
    shape = f"-m{args.m}-{args.parametrisation}"
    return f"lr{args.lr:g}-e{args.epochs}-{args.init}-w{args.retrieval_weight:g}{cycles}{shape}-seed{args.seed}"


def run_folds(root: Path, kind: str, name: str, work: Path, args: argparse.Namespace) -> list[dict]:
    """Every fold for seed ``args.seed``: train (or reuse) the kernel, evaluate both models on the fold."""

    out = []
    for fold in range(5):
        layout = Layout(load_config("folder", overrides(root, kind, name, work, fold, args)))
        build(layout, until="features", show_progress=False)
        t0 = time.perf_counter()
        kernel = train_kernel(layout, "lamv_learned", show_progress=False) if not \
            layout.trained_path("lamv_learned").is_file() else None
        train_s = time.perf_counter() - t0
        build(layout, until="evaluate", show_progress=False)
        row = {"fold": fold, "train_s": train_s if kernel else float("nan"), "reports": {}}
        for m in models(args):
            rep = json.loads((layout.report_dir(m) / "report.json").read_text())
            if "file" in rep["curves"]["pair_scores"]:  # the ranking lives beside it (reports before: inline)
                rep["curves"]["pair_scores"] = read_pair_scores(layout.report_dir(m), rep["curves"]["pair_scores"])
            row[m] = rep["metrics"]
            row["reports"][m] = rep
            row["held_out"] = rep.get("held_out", {}).get("videos")
            if m == "lamv_learned":
                hist = rep["learned_kernel"]["history"]
                row["train_pairs"] = rep["learned_kernel"]["provenance"]["train_pairs"]
                row["final_val_loc_1s"] = hist[-1]["val_localisation_1s"]
                row["first_val_loc_1s"] = hist[0]["val_localisation_1s"]
        data = aligned_data(layout)
        row["pairs_total"] = len(data.pairs)
        out.append(row)
        log.warning("%s fold %d: lamv %s | learned %s", name, fold,
                    {k: round(v, 3) for k, v in row["lamv"].items() if k in ALIGN_METRICS + COPY_METRICS},
                    {k: round(v, 3) for k, v in row["lamv_learned"].items() if k in ALIGN_METRICS + COPY_METRICS})
    return out


def fold_weights(rows: list[dict]) -> list[int]:
    """Each fold's weight in the means: its held-out videos."""
    return [max(1, r["held_out"] or 1) for r in rows]


def weighted_means(rows: list[dict], model: str, metrics: tuple[str, ...]) -> list[float]:
    """``model``'s metrics averaged over the folds, weighted by :func:`fold_weights`."""
    weights = fold_weights(rows)
    return [sum(w * r[model].get(k, float("nan")) for w, r in zip(weights, rows, strict=True)) / sum(weights)
            for k in metrics]


def evaluated(rows: list[dict]) -> list[str]:
    """The models the folds evaluated, in table order."""
    return [m for m in MODELS if m in rows[0]]


def table(title: str, rows: list[dict], metrics: tuple[str, ...]) -> str:
    lines = [f"\n{title}\n", "| fold | held-out videos | training pairs | model | "
             + " | ".join(metrics) + " |", "|---:|---:|---:|---|" + "---:|" * len(metrics)]
    for r in rows:
        for m in evaluated(rows):
            lines.append(f"| {r['fold']} | {r['held_out']} | {r['train_pairs']} | {m} | "
                         + " | ".join(f"{r[m].get(k, float('nan')):.3f}" for k in metrics) + " |")
    for m in evaluated(rows):
        lines.append(f"| mean | {sum(fold_weights(rows))} | | **{m}** | "
                     + " | ".join(f"**{v:.3f}**" for v in weighted_means(rows, m, metrics)) + " |")
    return "\n".join(lines)


def right_at_1s(report: dict) -> np.ndarray:
    """Per held-out item (alignment) or ground-truth copy (copies): offset error below 1 s."""
    return np.array([e is not None and e < 1.0 for e in report["curves"]["localisation_errors_s"]], dtype=bool)


def paired_pair_scores(a: dict, b: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both models' scores on the same pairs: every pair either reported or true (0 when a model did not
    report it), plus a 0 / 0 entry for each false pair neither reported."""
    ra, rb = a["curves"]["pair_scores"], b["curves"]["pair_scores"]
    score_a = {tuple(k): s for k, s in zip(ra["pairs"], ra["scores"], strict=True)}
    score_b = {tuple(k): s for k, s in zip(rb["pairs"], rb["scores"], strict=True)}
    true = {tuple(k) for r in (ra, rb) for k, t in zip(r["pairs"], r["true"], strict=True) if t} | \
        {tuple(k) for r in (ra, rb) for k in r["true_unreported"]}
    keys = sorted(set(score_a) | set(score_b) | true)
    rest = ra["n_pairs"] - len(keys)
    sa = np.r_[[score_a.get(k, 0.0) for k in keys], np.zeros(rest)]
    sb = np.r_[[score_b.get(k, 0.0) for k in keys], np.zeros(rest)]
    return sa, sb, np.r_[[k in true for k in keys], np.zeros(rest, dtype=bool)].astype(bool)


def statistics(rows: list[dict], baseline: str = "lamv") -> str:
    """Paired bootstrap (2000 rounds, items resampled within folds) and sign test, learned minus
    ``baseline`` (von Mises, or the sharper von Mises ``lamv_sharp``)."""

    weights = fold_weights(rows)
    acc = paired_bootstrap_accuracy(
        [(right_at_1s(r["reports"][baseline]), right_at_1s(r["reports"]["lamv_learned"])) for r in rows], weights)
    ap = paired_bootstrap_ap(
        [paired_pair_scores(r["reports"][baseline], r["reports"]["lamv_learned"]) for r in rows], weights,
        rounds=500)
    name = "von Mises" if baseline == "lamv" else f"{baseline} (von Mises, sharper)"
    return (f"learned minus {name}: localisation at 1 s {acc.difference:+.3f} (95 % paired bootstrap "
            f"[{acc.low:+.3f}, {acc.high:+.3f}]; {acc.wins} items won, {acc.losses} lost, sign test p = "
            f"{acc.p_sign:.3f}); pair AP {ap.difference:+.3f} ([{ap.low:+.3f}, {ap.high:+.3f}])")


def seeds_summary(title: str, per_seed: dict[int, list[dict]], metrics_: tuple[str, ...]) -> str:
    """The held-out-video-weighted means of every seed, and their mean and range over seeds."""
    lines = [f"\n{title}\n", "| seed | model | " + " | ".join(metrics_) + " |", "|---:|---|" + "---:|" * len(metrics_)]
    means: dict[str, list[list[float]]] = {"lamv": [], "lamv_learned": []}
    for seed, rows in per_seed.items():
        for m in ("lamv", "lamv_learned"):
            v = weighted_means(rows, m, metrics_)
            means[m].append(v)
            lines.append(f"| {seed} | {m} | " + " | ".join(f"{x:.3f}" for x in v) + " |")
    for m in ("lamv", "lamv_learned"):
        arr = np.array(means[m])
        lines.append(f"| mean (min-max) | **{m}** | " + " | ".join(
            f"**{arr[:, j].mean():.3f}** ({arr[:, j].min():.3f}-{arr[:, j].max():.3f})"
            for j in range(len(metrics_))) + " |")
    return "\n".join(lines)


def report(title: str, per_seed: dict[int, list[dict]], metrics_: tuple[str, ...]) -> None:
    for seed, rows in per_seed.items():
        print(table(f"{title}, seed {seed}", rows, metrics_))
        print(f"\nseed {seed}: {statistics(rows)}")
        if "lamv_sharp" in rows[0]:
            print(f"\nseed {seed}: {statistics(rows, 'lamv_sharp')}")
    if len(per_seed) > 1:
        print(seeds_summary(f"{title}: every seed", per_seed, metrics_))


def frame_diagonal(items: list[np.ndarray], pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best diagonal sum of positive frame cosines and its offset ``t_first - t_second`` (1/15-s frames)
    of every pair ``(a, b)`` of ``items`` (``(n_i, d)`` unit rows): the pipeline's frame-level verification
    at every frame and threshold 0 (``index/verification.py``), each item against all its later partners."""

    best = np.zeros(len(pairs))
    offset = np.zeros(len(pairs), dtype=np.int64)
    for a in np.unique(pairs[:, 0]):
        rows = np.flatnonzero(pairs[:, 0] == a)
        v = diagonal_verify(items[a], [items[b] for b in pairs[rows, 1]], step=1, threshold=0.0)
        best[rows], offset[rows] = v.score, v.offset_frames
    return best, offset


def shape_metrics(n: int, pairs: np.ndarray, best: np.ndarray, offset_s: np.ndarray, gt_index: np.ndarray,
            gt_offset_s: np.ndarray) -> dict[str, float]:
    """The alignment protocol's metrics of one scorer's best scores and offsets over every pair."""

    errors = localization_errors(n, pairs, best, offset_s, gt_index, gt_offset_s)
    acc = accuracy_below(errors)
    at = {(int(a), int(b)): k for k, (a, b) in enumerate(pairs)}
    # offset_s is t_first - t_second; the ground truth is start(first) - start(second) = -(t_first - t_second)
    pair_ok = [abs(offset_s[at[(int(a), int(b))]] + o) < 1.0 for (a, b), o in zip(gt_index, gt_offset_s,
                                                                                    strict=True)]
    true = {frozenset((int(a), int(b))) for a, b in gt_index}
    pl = pair_level({frozenset((int(a), int(b))): float(s) for (a, b), s in zip(pairs, best, strict=True)},
                            true, n)
    return {**{f"items_below_{t:g}s": v for t, v in acc.items()}, "pairs_within_1s": float(np.mean(pair_ok)),
            "pair_AP": pl.ap}


def kernel_shapes(root: Path, grid: list[str], args: argparse.Namespace) -> str:
    """``--shapes``: every pair of the alignment corpus at ``root`` scored with fixed von Mises kernels of
    the lamv preset's periods (``grid``: ``m:beta`` each; the first row is the baseline of the differences)
    and with the frame diagonal; the alignment protocol over every item, and the share of all overlapping
    pairs whose best offset is within 1 s. Nothing is trained or fitted with labels: every item is a test item."""

    layout = Layout(load_config("folder", overrides(root, "align", "alignbench", root / "work", 0, args)))
    build(layout, until="features", show_progress=False)
    gt = load_ground_truth(layout.cfg.dataset, [v.id for v in layout.videos])
    features = FeatureLookup.of_layout(layout)
    spans = [align_item_span(it, features) for it in gt.align]
    if any(s is None for s in spans):
        raise SystemExit(f"{root}: some items have no features")
    gt_index, gt_offset_s = gt.align_pairs()
    n = len(spans)
    pairs = np.array(list(itertools.combinations(range(n), 2)), dtype=np.int64).reshape(-1, 2)
    offsets = np.arange(-round(layout.cfg.dataset.max_length_s * FPS), round(layout.cfg.dataset.max_length_s * FPS))
    rows: list[tuple[str, dict[str, float]]] = []
    preset = TMK.preset("lamv")
    for spec in grid:
        m, beta = von_mises_shape(spec)
        model = TMK(preset.config.periods, m=m, beta=beta, norm=preset.config.norm)
        descs = [describe_video(model, f, (t - t[0]) * FPS) for f, t in spans]
        best, off = np.zeros(len(pairs)), np.zeros(len(pairs))
        for k, (a, b) in enumerate(pairs):  # one pair at a time, like the pipeline's alignment protocol
            s, o = model.score_max(descs[a][None], descs[b][None], offsets)
            best[k], off[k] = float(s[0]), float(o[0])
        rows.append((f"von Mises m {m}, beta {beta:g}", shape_metrics(n, pairs, best, off / FPS, gt_index,
                                                                     gt_offset_s)))
        log.warning("%s: %s", rows[-1][0], {k: round(v, 3) for k, v in rows[-1][1].items()})
    unit = [f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12) for f, _ in spans]
    best, off = frame_diagonal(unit, pairs)
    rows.append(("frame diagonal", shape_metrics(n, pairs, best, off / FPS, gt_index, gt_offset_s)))
    keys, base = list(rows[0][1]), rows[0][1]
    lines = [f"\n{root}: {n} items, {len(gt_index)} overlapping pairs, {len(pairs)} pairs scored; difference to "
             f"the first row (the lamv preset when the grid starts with 16:32)\n",
             "| kernel | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    lines += [f"| {name} | " + " | ".join(f"{vals[k]:.3f} ({vals[k] - base[k]:+.3f})" for k in keys) + " |"
              for name, vals in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "videos")
    ap.add_argument("--align-root", type=Path, default=Path("bench_align"))
    ap.add_argument("--copy-root", type=Path, default=Path("bench_copy"))
    ap.add_argument("--views", action="store_true", help="generate the alignment benchmark with camera views "
                                                         "(generate align --views) when it is missing")
    ap.add_argument("--cameras", type=int, default=5, help="recordings per clip when generating it")
    ap.add_argument("--lr", type=float, default=None, help="SGD learning rate (default: configs/base.yaml's)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--init", default="von_mises", choices=["von_mises", "uniform"])
    ap.add_argument("--retrieval-weight", type=float, default=None,
                    help="w of L = w L_r + (1 - w) L_l (default: configs/base.yaml's, the paper's 1/4)")
    ap.add_argument("--min-cycles", type=float, default=None,
                    help="freeze the coefficients of frequencies with fewer cycles per snippet (default: "
                         "configs/base.yaml's, 0: train all)")
    ap.add_argument("--m", type=int, default=32, help="harmonics per period of the learned kernel (the lamv "
                                                      "preset has 16; 32, the default, lets it get sharper)")
    ap.add_argument("--parametrisation", choices=["softplus", "clamp"], default="clamp",
                    help="how the learned coefficients stay non-negative (softplus wants --lr 10)")
    ap.add_argument("--sharp-baseline", metavar="M:BETA", default=None,
                    help="also evaluate a fixed, sharper von Mises kernel (e.g. 64:256; see --shapes)")
    ap.add_argument("--shapes", nargs="*", metavar="M:BETA", default=None,
                    help="instead: fixed von Mises kernels of several sharpnesses and the frame diagonal on the "
                         f"alignment corpus, nothing trained (default grid: {' '.join(SHAPES_GRID)})")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (one kernel per seed)")
    ap.add_argument("--only", choices=["align", "copies"], default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    py = [sys.executable, "-m", "pipeline", "generate"]
    if not (args.align_root / "gt_align.align").is_file() and args.only != "copies":
        subprocess.run([*py, "align", "--source", str(args.videos), "--out", str(args.align_root), "--cameras",
                        str(args.cameras), *(["--views"] if args.views else [])], check=True, cwd=ROOT)
    if not (args.copy_root / "truth.json").is_file() and args.only != "align" and args.shapes is None:
        subprocess.run([*py, "copies", "--source", str(args.videos), "--out", str(args.copy_root), "--seed", "3"],
                       check=True, cwd=ROOT)
    base = yaml.safe_load((ROOT / "configs" / "base.yaml").read_text())["lamv_training"]
    args.lr = float(base["lr"]) if args.lr is None else args.lr
    args.retrieval_weight = float(base["retrieval_weight"]) if args.retrieval_weight is None else args.retrieval_weight
    args.min_cycles = float(base["min_cycles"]) if args.min_cycles is None else args.min_cycles
    settings = (f"lr {args.lr:g}, {args.epochs} epochs, init {args.init}, retrieval weight {args.retrieval_weight:g}"
                f", min cycles {args.min_cycles:g}, m {args.m}, {args.parametrisation}")

    if args.shapes is not None:
        print(kernel_shapes(args.align_root, args.shapes or list(SHAPES_GRID),
                            argparse.Namespace(**{**vars(args), "seed": args.seeds[0]})))
        return

    def per_seed(root: Path, kind: str, name: str) -> dict[int, list[dict]]:
        return {s: run_folds(root, kind, name, root / "work", argparse.Namespace(**{**vars(args), "seed": s}))
                for s in args.seeds}

    if args.only != "copies":
        report(f"Alignment benchmark ({settings}): held-out fold of 5, selfsup features",
               per_seed(args.align_root, "align", "alignbench"), ALIGN_METRICS)
    if args.only != "align":
        report(f"Copy benchmark ({settings}): held-out fold of 5, selfsup features",
               per_seed(args.copy_root, "vcdb", "copybench-selfsup"), COPY_METRICS)


if __name__ == "__main__":
    main()
