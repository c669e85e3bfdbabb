"""A self-contained demonstration corpus with planted copies at known offsets.

The current demo works on synthetic frame features (temporally smooth random
unit vectors standing in for CNN features), so it runs in seconds on any CPU:
each query is a noisy excerpt of one database video, sampled at another
container frame rate, and every temporal model has to find which video it
comes from and at what offset (seconds).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from extractors.cte import CTE
from extractors.timestamps import FPS, sampling_timestamps
from extractors.tmk import TMK
from pipeline import metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoVideo:
    """Frame features ``(N, d) float32`` sampled at 15 fps from a ``container_fps`` source."""

    name: str
    features: np.ndarray
    container_fps: float

    @property
    def timestamps(self) -> np.ndarray:
        return sampling_timestamps(len(self.features), self.container_fps)


@dataclass(frozen=True)
class PlantedCopy:
    query: str
    source: str
    offset_s: float
    """Ground truth ``t_query - t_source`` for corresponding content, seconds."""


def _smooth_unit_rows(rng: np.random.Generator, n: int, d: int, width: int = 6) -> np.ndarray:
    x = rng.standard_normal((n + width, d)).astype(np.float32)
    c = np.cumsum(x, axis=0)
    y = (c[width:] - c[:-width])[:n]
    return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)


def make_feature_corpus(seed: int = 0, n_db: int = 12, n_queries: int = 6, d: int = 128
                        ) -> tuple[list[DemoVideo], list[DemoVideo], list[PlantedCopy]]:
    """Database videos, queries and the planted ground truth (offsets in seconds)."""
    rng = np.random.default_rng(seed)
    rates = [25.0, 29.97, 30.0, 24.0, 15.0, 50.0]
    db = [DemoVideo(f"db{i:02d}", _smooth_unit_rows(rng, int(rng.integers(900, 1800)), d),
                    rates[i % len(rates)]) for i in range(n_db)]
    queries, truth = [], []
    for q in range(n_queries):
        src = db[int(rng.integers(0, n_db))]
        length = int(rng.integers(150, 400))
        start = int(rng.integers(0, len(src.features) - length))
        lead = int(rng.integers(0, 120))  # unrelated material before the copy
        noise = 0.4 * rng.standard_normal((length, d)).astype(np.float32) / np.sqrt(d)
        copy = src.features[start:start + length] + noise
        copy /= np.linalg.norm(copy, axis=1, keepdims=True)
        feats = np.concatenate([_smooth_unit_rows(rng, lead, d), copy]) if lead else copy
        qv = DemoVideo(f"q{q:02d}", feats.astype(np.float32), src.container_fps)
        queries.append(qv)
        # query frame `lead` shows source frame `start` (same container rate)
        t_q, t_s = qv.timestamps[lead], src.timestamps[start]
        truth.append(PlantedCopy(qv.name, src.name, float(t_q - t_s) / FPS))
    return db, queries, truth


def run_feature_demo(out_dir: Path, seed: int = 0) -> dict:
    """Describe, search and score the synthetic corpus with every model; write ``summary.json``."""
    db, queries, truth = make_feature_corpus(seed)
    max_len = max(len(v.features) for v in db + queries)
    offsets = np.arange(-max_len, max_len)
    models: dict[str, TMK | CTE] = {"tmk_poullot": TMK.preset("poullot"), "tmk_lamv": TMK.preset("lamv"),
                                    "cte": CTE.for_max_length(max_len)}
    results: dict[str, dict] = {}
    for name, model in models.items():
        fdb = torch.stack([model.descriptor(v.features, v.timestamps) for v in db])
        rows, errors, ap = [], [], []
        for q, gt in zip(queries, truth, strict=True):
            best, off = model.score_max(model.descriptor(q.features, q.timestamps), fdb, offsets)
            order = np.argsort(-best.numpy(), kind="stable")
            top = int(order[0])
            pred_s = float(off[top]) / FPS
            hit = db[top].name == gt.source
            errors.append(abs(pred_s - gt.offset_s) if hit else np.inf)
            ranked = np.array([1 if db[i].name == gt.source else 0 for i in order])
            ap.append(metrics.evve_average_precision(ranked, 1))
            rows.append({"query": q.name, "match": db[top].name, "score": float(best[top]),
                         "offset_s": round(pred_s, 3), "true_source": gt.source,
                         "true_offset_s": round(gt.offset_s, 3)})
        acc = metrics.accuracy_below(np.array(errors))
        results[name] = {"top1": rows, "mAP": float(np.mean(ap)),
                         "localisation_accuracy": {f"<{t:g}s": v for t, v in acc.items()}}
        log.info("%s: mAP %.3f, accuracy %s", name, np.mean(ap), results[name]["localisation_accuracy"])
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {"corpus": {"database_videos": len(db), "queries": len(queries), "seed": seed,
                          "units": "offsets in seconds; offset = t_query - t_match"},
               "models": results}
    tmp = out_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(out_dir / "summary.json")
    return summary


def format_summary(summary: dict) -> str:
    """Markdown table of every model's top-1 matches and metrics."""
    lines = []
    for name, res in summary["models"].items():
        acc = res["localisation_accuracy"]
        lines.append(f"## {name}: mAP {res['mAP']:.3f}, localisation accuracy "
                     + ", ".join(f"{k} {v:.0%}" for k, v in acc.items()))
        lines.append("| query | best match | score | offset (s) | truth | true offset (s) |")
        lines.append("|---|---|---:|---:|---|---:|")
        for r in res["top1"]:
            lines.append(f"| {r['query']} | {r['match']} | {r['score']:.3f} | {r['offset_s']:+.3f} | "
                         f"{r['true_source']} | {r['true_offset_s']:+.3f} |")
        lines.append("")
    return "\n".join(lines)
