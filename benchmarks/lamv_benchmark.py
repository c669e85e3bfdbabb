"""Learned LAMV kernel versus the von Mises kernel, five-fold cross-validated on held-out data.

    python benchmarks/lamv_benchmark.py                         # both benchmarks from ../shared/videos
    python benchmarks/lamv_benchmark.py --lr 0.001 --epochs 40  # the paper's settings

Two datasets generated from real clips (``pipeline/generate.py``):

* **align**: multi-camera-like recordings (5 overlapping excerpts of every clip of at least 20 s, each
  with its own crop / letterbox / picture-in-picture / rescale, colours, noise and frame rate),
  ``.align`` ground truth; the alignment protocol (every held-out item against every other):
  localisation accuracy at 0.1 / 1 / 10 s, localisation mAP, pair-level AP of "these two overlap".
* **copies**: the copy benchmark's corpus (``benchmarks/copy_benchmark.py``; reused when present):
  pair-level AP, segment max-F1, localisation accuracy of the found copies.

For each test fold ``k`` of 5 (connected components of the overlap graph), the kernel is trained on the
other four folds only (``TrainLAMV``) and both models are evaluated by the pipeline on fold ``k`` only;
the table gives every fold and the item-weighted mean.  Frame features: ``selfsup`` (+ PCA-whitening),
the best offline extractor (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("lamv_benchmark")

ALIGN_METRICS = ("localisation_accuracy_below_0.1s", "localisation_accuracy_below_1s",
                 "localisation_accuracy_below_10s", "localisation_mAP", "pair_AP")
COPY_METRICS = ("localisation_accuracy_below_0.1s", "localisation_accuracy_below_1s",
                "localisation_accuracy_below_10s", "pair_AP", "segment_max_F1")


def overrides(root: Path, kind: str, name: str, work: Path, fold: int, args: argparse.Namespace) -> str:
    gt = "dataset.gt_file=gt_align.align;" if kind == "align" else ""
    return (f"dataset.root={root.resolve()};dataset.kind={kind};{gt}dataset.name={name};dataset.max_length_s="
            f"{60 if kind == 'align' else 240};features.extractor=selfsup;features.weights=random;features.pca=auto;"
            f"shards.size=16;work_dir={work.resolve()};reports_dir={work.resolve() / 'reports' / f'seed{args.seed}' / f'fold{fold}'};"
            f"models={{lamv: {{type: tmk, preset: lamv}}, lamv_learned: {{type: lamv_learned, init: {args.init}}}}};"
            f"index.model=lamv;search.model=lamv;evaluate.models=[lamv, lamv_learned];search.top_k=20;search.keep=20;"
            f"lamv_training.test_fold={fold};lamv_training.lr={args.lr};lamv_training.epochs={args.epochs};"
            f"lamv_training.seed={args.seed}")


def run_folds(root: Path, kind: str, name: str, work: Path, args: argparse.Namespace) -> list[dict]:
    from pipeline import steps
    from pipeline.config import load_config
    from pipeline.lamv import aligned_data, train_kernel
    from pipeline.layout import Layout

    out = []
    for fold in range(5):
        layout = Layout(load_config("folder", overrides(root, kind, name, work, fold, args)))
        steps.build(layout, until="features", show_progress=False)
        t0 = time.perf_counter()
        kernel = train_kernel(layout, "lamv_learned", show_progress=False) if not \
            layout.lamv_path("lamv_learned").is_file() else None
        train_s = time.perf_counter() - t0
        steps.build(layout, until="evaluate", show_progress=False)
        row = {"fold": fold, "train_s": train_s if kernel else float("nan")}
        for m in ("lamv", "lamv_learned"):
            rep = json.loads((layout.report_dir(m) / "report.json").read_text())
            row[m] = rep["metrics"]
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


def table(title: str, rows: list[dict], metrics: tuple[str, ...]) -> str:
    lines = [f"\n{title}\n", "| fold | held-out videos | training pairs | model | "
             + " | ".join(metrics) + " |", "|---:|---:|---:|---|" + "---:|" * len(metrics)]
    for r in rows:
        for m in ("lamv", "lamv_learned"):
            lines.append(f"| {r['fold']} | {r['held_out']} | {r['train_pairs']} | {m} | "
                         + " | ".join(f"{r[m].get(k, float('nan')):.3f}" for k in metrics) + " |")
    weights = [max(1, r["held_out"] or 1) for r in rows]
    for m in ("lamv", "lamv_learned"):
        means = [sum(w * r[m].get(k, float("nan")) for w, r in zip(weights, rows, strict=True)) / sum(weights)
                 for k in metrics]
        lines.append(f"| mean | {sum(weights)} | | **{m}** | " + " | ".join(f"**{v:.3f}**" for v in means) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "videos")
    ap.add_argument("--align-root", type=Path, default=Path("bench_align"))
    ap.add_argument("--copy-root", type=Path, default=Path("bench_copy"))
    ap.add_argument("--lr", type=float, default=None, help="SGD learning rate (default: configs/base.yaml's)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--init", default="von_mises", choices=["von_mises", "uniform"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["align", "copies"], default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    py = [sys.executable, "-m", "pipeline", "generate"]
    if not (args.align_root / "gt_align.align").is_file() and args.only != "copies":
        subprocess.run([*py, "align", "--source", str(args.videos), "--out", str(args.align_root)], check=True,
                       cwd=ROOT)
    if not (args.copy_root / "truth.json").is_file() and args.only != "align":
        subprocess.run([*py, "copies", "--source", str(args.videos), "--out", str(args.copy_root), "--seed", "3"],
                       check=True, cwd=ROOT)
    if args.lr is None:
        import yaml

        args.lr = float(yaml.safe_load((ROOT / "configs" / "base.yaml").read_text())["lamv_training"]["lr"])
    settings = f"lr {args.lr}, {args.epochs} epochs, init {args.init}, seed {args.seed}"
    if args.only != "copies":
        rows = run_folds(args.align_root, "align", "alignbench", args.align_root / "work", args)
        print(table(f"Alignment benchmark ({settings}): held-out fold of 5, selfsup features", rows, ALIGN_METRICS))
    if args.only != "align":
        rows = run_folds(args.copy_root, "vcdb", "copybench-selfsup", args.copy_root / "work", args)
        print(table(f"Copy benchmark ({settings}): held-out fold of 5, selfsup features", rows, COPY_METRICS))


if __name__ == "__main__":
    main()
