"""Dataset metrics computed from the pipeline's outputs (search results, features), and the
evaluation step that writes a model's reports.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from extractors.runtime.timebase import FPS, frame_count_seconds
from index.rerank import Match, offset_range
from pipeline.config.load import Config
from pipeline.datasets.ground_truth import GroundTruth
from pipeline.datasets.kinds import kind_of, load_ground_truth
from pipeline.metrics.segments import Box
from pipeline.steps.describe import configured_model, descriptor_store
from pipeline.steps.frames import FeatureLookup
from pipeline.steps.protocols import PROTOCOLS, Evaluation, pair_index
from pipeline.steps.report import write_report
from pipeline.steps.thresholds import applied, calibrated
from pipeline.steps.training.folds import held_out
from pipeline.store.descriptors import (
    DescriptorStore,
    TemporalModel,
)
from pipeline.store.layout import Layout
from pipeline.store.results.search import read_search_results, read_segments


def evaluate(layout: Layout, model_name: str) -> Path:
    """Metrics and reports (JSON, Markdown, HTML) of one model's search results."""

    t = calibrated(layout)
    cfg = applied(layout.cfg, t)
    rows = read_search_results(layout.search_dir(model_name))
    segments, _ = read_segments(layout.search_dir(model_name))
    store = descriptor_store(layout, model_name)
    durations = {v: frame_count_seconds(n) for v, n in store.n_frames.items()}
    result = evaluate_results(cfg, model_name, configured_model(layout, model_name), rows,
                              FeatureLookup.of_layout(layout), durations, store, [v.id for v in layout.videos],
                              held_out(layout), segments)
    result["metrics"] = {k: (float(v) if isinstance(v, np.floating) else v) for k, v in result["metrics"].items()}
    result["search_results"] = str(layout.search_dir(model_name))
    if t is not None:  # how the copy decision's thresholds were set (no label read)
        result["calibration"] = {"file": str(layout.thresholds_path), **dataclasses.asdict(t.thresholds),
                                 "background": dataclasses.asdict(t.background), "frame_units": t.frame_units,
                                 "copy_units": t.copy_units}
    trainable = layout.trainable(model_name)
    if trainable is not None and trainable.report is not None:  # e.g. the learned kernel's shape
        key, summary = trainable.report
        path = layout.model_file(model_name)
        result[key] = {"file": str(path), **summary(path)}
    return write_report(layout.report_dir(model_name), cfg.name, model_name, result, cfg.data)


def evaluate_results(cfg: Config, model_name: str, model: TemporalModel, rows: list[Match], features,
                     durations: dict[str, float], store: DescriptorStore, ids: list[str], held=None,
                     segments: list[Box] | None = None) -> dict:
    """Run the dataset kind's evaluation protocol (:data:`PROTOCOLS`); with ``held``
    (:class:`pipeline.steps.training.folds.HeldOut`: the dataset trains a model) only on the held-out fold."""
    protocol = PROTOCOLS[kind_of(cfg.dataset).protocol]
    gt = load_ground_truth(cfg.dataset, ids)
    if held is not None:
        if protocol.held_out_items:
            gt = dataclasses.replace(gt, align=[it for i, it in enumerate(gt.align) if i in held.items])
        else:
            keep = held.videos
            rows = [r for r in rows if r.query in keep and r.match in keep]
            segments = [b for b in segments or [] if b.query in keep and b.ref in keep]
            gt = dataclasses.replace(gt, pairs=[p for p in gt.pairs if p.video_a in keep and p.video_b in keep])
            ids = [v for v in ids if v in keep]
    out = protocol.run(Evaluation(cfg, model, rows, segments, features, durations, gt, ids))
    out["samples"] = sample_curves(model, rows, gt, store)
    if held is not None:
        out["held_out"] = {"fold": held.fold, "folds": held.folds,
                           "videos": len(held.items) if protocol.held_out_items else len(ids),
                           "note": "this dataset trains a model (LAMV kernel or TCA): every model is evaluated "
                                   "on the held-out fold only"}
    return out


def sample_curves(model: TemporalModel, rows: list[Match], gt: GroundTruth, store: DescriptorStore,
                  n: int = 3) -> list[dict]:
    """Score-versus-offset curves of a few top results, with the ground-truth offset when known (none
    for TCA, which scores pairs without offsets)."""
    if not hasattr(model, "score"):
        return []
    pairs = pair_index(gt)
    chosen = [r for r in rows if r.rank == 1][:n]
    out = []
    for r in chosen:
        offs = offset_range(model, store.n_frames.get(r.query, 1), store.n_frames.get(r.match, 1))
        step = max(1, len(offs) // 2000)
        offs = offs[::step]
        curve = model.score(store.get([r.query]), store.get([r.match]), torch.from_numpy(offs))[0].numpy()
        g = pairs.get((r.query, r.match))
        out.append({"query": r.query, "match": r.match, "offsets_s": (offs / FPS).tolist(),
                    "scores": curve.astype(float).tolist(), "best_offset_s": r.offset_s,
                    "true_offset_s": (g[0][0] - g[0][2]) if g else None})
    return out
