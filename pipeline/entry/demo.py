"""The bundled demo: generate a small corpus with planted copies, run the whole chain.

``python -m pipeline demo`` runs ``Evaluate --dataset demo`` with Luigi's local
scheduler: the chain's first task generates ``demo_data/`` (synthetic scenes,
copies with realistic attacks at known offsets, VCDB-format ground truth), then
features, PCA trained on the corpus, TMK/CTE descriptors, FAISS index,
re-ranking with offsets, reports under ``reports/demo/<model>/``.
(An entry point: it drives Luigi.)
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.config.load import load_config
from pipeline.datasets.synthetic import DEMO_MARKER, ensure_demo_corpus
from pipeline.store.layout import Layout
from tasks import Evaluate

__all__ = ["DEMO_MARKER", "ensure_demo_corpus", "run_demo", "summarize"]

SHOWN = 8  # queries printed per model; the report has them all


def run_demo(root: Path, overrides: str = "", workers: int = 1, regenerate: bool = False) -> list[Path]:
    """Generate (if needed) and evaluate the demo corpus; returns the report.json paths."""
    import luigi

    if regenerate:
        ensure_demo_corpus(root, regenerate=True)
    ov = ";".join(x for x in (f"dataset.root={root.resolve()}", overrides) if x)
    task = Evaluate(dataset="demo", overrides=ov)
    ok = luigi.build([task], local_scheduler=True, workers=workers, log_level="WARNING")
    if not ok:
        raise RuntimeError("the demo pipeline failed (see the log above)")
    cfg = load_config("demo", ov)
    layout = Layout(cfg)
    return [layout.report_dir(m) / "report.json" for m in cfg.evaluate.models]


def summarize(reports: list[Path]) -> str:
    lines = []
    for p in reports:
        doc = json.loads(p.read_text())
        lines.append(f"## {doc['dataset']} / {doc['model']}  ({p.parent / 'report.html'})")
        for k, v in doc["metrics"].items():
            lines.append(f"  {k}: {v:.3f}" if isinstance(v, float) else f"  {k}: {v}")
        rows = doc.get("per_query", [])
        for row in rows[:SHOWN]:
            if row.get("top_match") is not None:
                err = row.get("offset_error_s")
                lines.append(f"    {row['query']} -> {row['top_match']}  score {row['score']:.3f}  "
                             f"offset {row['offset_s']:+.2f} s"
                             + (f"  (error {err:.2f} s)" if err is not None else ""))
        if len(rows) > SHOWN:
            lines.append(f"    ... {len(rows) - SHOWN} more queries in {p}")
    return "\n".join(lines)
