"""Evaluation reports: ``report.json``, ``report.md`` and a self-contained ``report.html``.

Plots (PNG, embedded in the HTML as data URIs and saved beside the Markdown):
precision-recall curve, cumulative localisation-error curve, and the
score-versus-offset curve of a few sample queries with the ground-truth
offset marked.  Every number states its unit; the configuration that
produced the report is included.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from extractors.runtime import failpoints
from extractors.runtime.timebase import FPS
from pipeline.core.atomic import atomic_path
from pipeline.store.results.pair_scores import write_pair_scores

COUNTS = {
    "true_pairs": "count: unordered video pairs that are copies (pair-level metrics)",
    "pairs_ranked": "count: unordered video pairs ranked (all of them)",
    "ground_truth_pairs": "count: annotated (query, match) pairs of the searched queries, both directions",
    "pairs_found": "count: of those, the ones the search reported",
    "detected_pairs": "count: true pairs scoring at least the best-F1 threshold",
    "queries": "count", "results": "count",
}
"""Metrics that are counts, with what they count (a report puts them side by side)."""


def _unit(name: str) -> str:
    if name in COUNTS:
        return COUNTS[name]
    if name.startswith("copy_threshold"):
        return "segment score (seconds of matching frames, weighted by similarity above segments.frame_threshold)"
    if "accuracy" in name or "pairs_offset" in name:
        return "fraction (0-1)"
    if name.endswith("_s"):
        return "seconds"
    return "(0-1)"


def _fmt(v) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.4f}"
    if isinstance(v, list):
        return ", ".join(map(str, v))
    return "" if v is None else str(v)


def png_bytes(fig) -> bytes:
    """A figure as PNG bytes (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def make_plots(result: dict) -> dict[str, bytes]:
    plots: dict[str, bytes] = {}
    curves = result.get("curves", {})
    if curves.get("precision"):
        fig, ax = plt.subplots(figsize=(4.5, 3.5))
        ax.plot(curves["recall"], curves["precision"], drawstyle="steps-post")
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02),
               title="Precision-recall (segment detections)")
        ax.grid(alpha=0.3)
        plots["pr_curve.png"] = png_bytes(fig)
    errs = curves.get("localisation_errors_s")
    if errs:
        vals = sorted(e for e in errs if e is not None)
        fig, ax = plt.subplots(figsize=(4.5, 3.5))
        if vals:
            xs = [max(v, 1e-3) for v in vals]
            ax.step(xs, [(i + 1) / len(errs) for i in range(len(vals))], where="post")
        for t in (0.1, 1, 10):
            ax.axvline(t, color="grey", lw=0.8, ls="--")
        ax.set(xscale="log", xlabel="absolute offset error (s)", ylabel="fraction of pairs",
               ylim=(0, 1.02), title="Cumulative localisation error")
        ax.grid(alpha=0.3)
        plots["localisation_errors.png"] = png_bytes(fig)
    if curves.get("segment_scores"):
        plots["segment_scores.png"] = segment_score_plot(curves["segment_scores"])
    for i, v in enumerate(result.get("pair_views", [])):
        plots[f"similarity_{i}.png"] = pair_view_plot(v)
    if result.get("learned_kernel"):
        plots.update(kernel_plots(result["learned_kernel"]))
    for i, s in enumerate(result.get("samples", [])):
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.plot(s["offsets_s"], s["scores"], lw=0.8)
        ax.axvline(s["best_offset_s"], color="tab:orange", ls="--", label=f"best {s['best_offset_s']:.2f} s")
        if s.get("true_offset_s") is not None:
            ax.axvline(s["true_offset_s"], color="tab:green", ls=":", lw=2,
                       label=f"ground truth {s['true_offset_s']:.2f} s")
        ax.set(xlabel="offset t_query - t_match (s)", ylabel="score",
               title=f"{s['query']} vs {s['match']}")
        ax.legend(fontsize=7)
        plots[f"score_vs_offset_{i}.png"] = png_bytes(fig)
    return plots


def segment_score_plot(sc: dict) -> bytes:
    """Best segment score of every copy pair and of the non-copy pairs that had a segment, with the
    copy threshold (non-copies without any segment are counted in the title)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    top = max([*sc["copies"], *sc["non_copies"], sc["threshold"], 1e-3])
    bins = np.linspace(0, top * 1.05, 40)
    ax.hist(sc["non_copies"], bins=bins, alpha=0.6, label=f"non-copies ({len(sc['non_copies'])})", color="tab:red")
    ax.hist(sc["copies"], bins=bins, alpha=0.6, label=f"copies ({len(sc['copies'])})", color="tab:green")
    ax.axvline(sc["threshold"], color="black", ls="--", label=f"copy threshold {sc['threshold']:g}")
    ax.set(xlabel="best segment score (s of similarity above the frame threshold)", ylabel="pairs",
           title=f"Copies vs non-copies ({sc['non_copies_without_segment']} non-copies without a segment)")
    ax.legend(fontsize=7)
    return png_bytes(fig)


def pair_view_plot(v: dict) -> bytes:
    """A pair's frame similarity matrix with its detected segments (boxes), the ground truth (dashed)
    and the DTW path."""
    ta, tb = np.asarray(v["query_times_s"]), np.asarray(v["ref_times_s"])
    fig, ax = plt.subplots(figsize=(5.5, 5))
    im = ax.imshow(np.asarray(v["similarity"]), cmap="magma", aspect="auto", interpolation="nearest",
                   extent=(0, float(tb[-1]) + 1e-9, float(ta[-1]) + 1e-9, 0), vmin=-0.2, vmax=1)
    fig.colorbar(im, ax=ax, label="frame cosine")
    for q0, q1, r0, r1, sc in v["segments"]:
        ax.add_patch(plt.Rectangle((r0, q0), r1 - r0, q1 - q0, fill=False, color="cyan", lw=1.5))
        ax.text(r0, q0, f"{sc:.2f}", color="black", fontsize=9, va="bottom",
                bbox={"facecolor": "cyan", "edgecolor": "none", "pad": 1.5, "alpha": 0.9})
    for q0, q1, r0, r1 in v["ground_truth"]:
        ax.add_patch(plt.Rectangle((r0, q0), r1 - r0, q1 - q0, fill=False, color="lime", lw=1.2, ls="--"))
    if v["dtw_path_s"]:
        p = np.asarray(v["dtw_path_s"])
        ax.plot(p[:, 1], p[:, 0], color="white", lw=0.7, alpha=0.8)
    ax.set(xlabel=f"{v['match']} (s)", ylabel=f"{v['query']} (s)",
           title=f"{'copy' if v['copy'] else 'no copy'}: segments (cyan, score), ground truth (green),\n"
                 f"DTW path (white)")
    ax.title.set_fontsize(10)
    return png_bytes(fig)


def kernel_curve(coefficients: np.ndarray, period: float, offsets: np.ndarray) -> np.ndarray:
    """``kappa(delta) = sum_k a_k cos(2 pi k delta / T)`` of one period's coefficients (delta in frames)."""
    k = np.arange(len(coefficients))
    return (np.asarray(coefficients)[None, :] * np.cos(2 * np.pi * offsets[:, None] * k[None, :] / period)).sum(1)


def kernel_plots(lk: dict) -> dict[str, bytes]:
    """A learned LAMV kernel against its initialisation: coefficients per period, the kernel as a function
    of the offset (the paper's figure 4), and the training curves."""
    out: dict[str, bytes] = {}
    periods = lk["periods_frames"]
    learned, init = np.asarray(lk["coefficients"]), np.asarray(lk["init_coefficients"])
    fig, axes = plt.subplots(2, len(periods), figsize=(3.2 * len(periods), 5.5), squeeze=False)
    for p, T in enumerate(periods):
        ax = axes[0, p]
        ax.plot(init[p], "o-", ms=3, label=f"initial ({lk['init']})")
        ax.plot(learned[p], "o-", ms=3, label="learned")
        ax.set(title=f"T = {T / FPS:.1f} s", xlabel="frequency k", ylabel="a_k" if p == 0 else None)
        ax.grid(alpha=0.3)
        ax = axes[1, p]
        d = np.linspace(-T / 2, T / 2, 801)
        for name, c in (("initial", init[p]), ("learned", learned[p])):
            ax.plot(d / FPS, kernel_curve(c, T, d) / max(1e-12, float(c.sum())), label=name)
        ax.set(xlabel="offset (s)", ylabel="kernel (normalised)" if p == 0 else None)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    out["lamv_kernel.png"] = png_bytes(fig)
    hist = lk.get("history") or []
    if hist:
        ep = [h["epoch"] for h in hist]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(ep, [h["loss"] for h in hist], label="training loss")
        ax.set(xlabel="epoch", ylabel="loss", title="Training")
        ax2 = ax.twinx()
        val = [h["val_localisation_1s"] for h in hist]
        if any(v == v for v in val):
            ax2.plot(ep, val, color="tab:green", label="held-out localisation < 1 s")
            ax2.set(ylabel="accuracy", ylim=(0, 1.02))
            ax2.legend(fontsize=7, loc="lower right")
        ax.legend(fontsize=7, loc="upper right")
        out["lamv_training.png"] = png_bytes(fig)
    return out


def write_report(out_dir: Path, dataset: str, model: str, result: dict, config: dict) -> Path:
    """Write ``report.json``, ``report.md``, ``report.html``, the plots and ``pair_scores.csv``
    (``pipeline.store.results.pair_scores``, when the result ranks pairs); returns the JSON path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = result.get("curves", {})
    if isinstance(curves.get("pair_scores"), dict) and "pairs" in curves["pair_scores"]:  # into its own CSV
        result = {**result, "curves": {**curves, "pair_scores": write_pair_scores(out_dir, curves["pair_scores"])}}
    plots = make_plots(result)
    for name, data in plots.items():
        with atomic_path(out_dir / name) as tmp:
            tmp.write_bytes(data)
    doc = {"dataset": dataset, "model": model, "units": "offsets and errors in seconds",
           **{k: v for k, v in result.items() if k not in ("samples", "pair_views")},
           "pair_views": [{k: v for k, v in s.items() if k not in ("similarity", "query_times_s", "ref_times_s",
                                                                     "dtw_path_s")}
                          for s in result.get("pair_views", [])],
           "samples": [{k: v for k, v in s.items() if k not in ("offsets_s", "scores")}
                       for s in result.get("samples", [])],
           "plots": sorted(plots), "config": config}
    with atomic_path(out_dir / "report.json") as tmp:
        tmp.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
    failpoints.hit("report.file")
    md = render_markdown(doc, plots)
    with atomic_path(out_dir / "report.md") as tmp:
        tmp.write_text(md, encoding="utf-8")
    failpoints.hit("report.file")
    with atomic_path(out_dir / "report.html") as tmp:
        tmp.write_text(render_html(doc, plots), encoding="utf-8")
    return out_dir / "report.json"


def _metric_rows(doc: dict) -> list[tuple[str, str, str]]:
    return [(k, _fmt(v), _unit(k)) for k, v in doc.get("metrics", {}).items()]


def _table_rows(doc: dict, limit: int = 200) -> tuple[list[str], list[list[str]]]:
    rows = doc.get("per_query", [])[:limit]
    cols = list(rows[0].keys()) if rows else []
    return cols, [[_fmt(r.get(c)) for c in cols] for r in rows]


def render_markdown(doc: dict, plots: dict[str, bytes]) -> str:
    lines = [f"# {doc['dataset']} — {doc['model']}", "",
             "Offsets are `t_query - t_match` in seconds; scores are the model's (dimensionless).", "",
             "| metric | value | unit |", "|---|---:|---|"]
    lines += [f"| {k} | {v} | {u} |" for k, v, u in _metric_rows(doc)]
    lines.append("")
    lk = doc.get("learned_kernel")
    if lk:
        lines += ["## Learned LAMV kernel", "", f"File `{lk['file']}` (kernel id {lk['kernel_id']}), init "
                  f"{lk['init']}, {lk['parametrisation']} parametrisation; trained on "
                  f"{lk['provenance'].get('train_pairs')} pairs, fold {lk['provenance'].get('test_fold')} of "
                  f"{lk['provenance'].get('folds')} held out.", "",
                  "| period (s) | learned a_0..a_5 | initial a_0..a_5 |", "|---:|---|---|"]
        lines += [f"| {T / FPS:.1f} | {', '.join(f'{a:.4f}' for a in c[:6])} | "
                  f"{', '.join(f'{a:.4f}' for a in i[:6])} |"
                  for T, c, i in zip(lk["periods_frames"], lk["coefficients"], lk["init_coefficients"], strict=True)]
        lines.append("")
    if doc.get("held_out"):
        lines += [f"Evaluated on the held-out fold {doc['held_out']['fold']} of {doc['held_out']['folds']} only "
                  f"({doc['held_out']['videos']} videos): {doc['held_out']['note']}.", ""]
    for name in plots:
        lines.append(f"![{name}]({name})")
    cols, rows = _table_rows(doc)
    if cols:
        lines += ["", "## Per query", "", "| " + " | ".join(cols) + " |",
                  "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "## Configuration", "", "```json", json.dumps(doc["config"], indent=2, default=str),
              "```", ""]
    return "\n".join(lines)


def render_html(doc: dict, plots: dict[str, bytes]) -> str:
    e = html.escape
    metric_rows = "".join(f"<tr><td>{e(k)}</td><td class=num>{e(v)}</td><td>{e(u)}</td></tr>"
                          for k, v, u in _metric_rows(doc))
    imgs = "".join(f'<figure><img alt="{e(n)}" src="data:image/png;base64,'
                   f'{base64.b64encode(b).decode()}"><figcaption>{e(n)}</figcaption></figure>'
                   for n, b in plots.items())
    cols, rows = _table_rows(doc)
    table = ""
    if cols:
        table = ("<h2>Per query</h2><table><tr>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>"
                 + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
                 + "</table>")
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>{e(doc['dataset'])} — {e(doc['model'])}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px}}
td.num{{text-align:right}}figure{{display:inline-block;margin:0.5em}}img{{max-width:520px}}
pre{{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}}</style></head><body>
<h1>{e(doc['dataset'])} — {e(doc['model'])}</h1>
<p>Offsets are <code>t_query - t_match</code> in seconds; scores are the model's (dimensionless).</p>
<table><tr><th>metric</th><th>value</th><th>unit</th></tr>{metric_rows}</table>
{imgs}{table}
<h2>Configuration</h2><pre>{e(json.dumps(doc['config'], indent=2, default=str))}</pre>
</body></html>"""
