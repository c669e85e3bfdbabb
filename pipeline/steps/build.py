"""The chain without a scheduler: ``python -m pipeline build``.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.core.atomic import utc_now
from pipeline.datasets.kinds import kind_of
from pipeline.datasets.synthetic import ensure_demo_corpus
from pipeline.steps.describe import describe_shard
from pipeline.steps.evaluate import evaluate
from pipeline.steps.extract import (
    Failure,
    ShardResult,
    extract_shard,
)
from pipeline.steps.extractor import pca_needed
from pipeline.steps.fitting import train_frame_model, train_pca, train_vocabulary
from pipeline.steps.index import build_index
from pipeline.steps.search import search
from pipeline.steps.training.train import train_model
from pipeline.store import completeness
from pipeline.store.layout import Layout

STAGES = ("features", "descriptors", "index", "search", "evaluate")


@dataclass
class BuildSummary:
    ran: list[str]
    skipped: int
    failures: list[Failure]


def build(layout: Layout, until: str = "index", models: Sequence[str] | None = None,
          show_progress: bool = True) -> BuildSummary:
    """Run the chain up to ``until`` without a scheduler, skipping every complete output
    (the same completeness checks as the Luigi tasks, so both redo exactly what is missing)."""
    if until not in STAGES:
        raise ValueError(f"until must be one of {', '.join(STAGES)}, got {until!r}")
    cfg = layout.cfg
    stop = STAGES.index(until)
    summary = BuildSummary([], 0, [])

    def step(done: bool, task: str, run, **params: object) -> None:
        """Run ``run`` unless its outputs are complete; record it like a Luigi task."""
        if done:
            summary.skipped += 1
            return
        out = run()
        if isinstance(out, ShardResult):
            summary.failures.extend(out.failures)
        summary.ran.append(task + (f"({', '.join(f'{k}={v}' for k, v in params.items())})" if params else ""))
        record_run(layout, task, **params)

    if kind_of(cfg.dataset).generated:
        ensure_demo_corpus(cfg.root)
    if layout.needs_vocabulary:
        step(completeness.vocabulary_complete(layout.vocab_path), "TrainVocabulary",
             lambda: train_vocabulary(layout, show_progress))
    if layout.needs_frame_model:
        step(completeness.frame_model_complete(layout.frame_model_path), "TrainFrameModel",
             lambda: train_frame_model(layout, show_progress))
    if pca_needed(layout):
        step(completeness.pca_complete(layout.pca_path), "TrainPCA", lambda: train_pca(layout, show_progress))
    for s in range(layout.n_shards):
        step(completeness.feature_shard_complete(layout.feature_shard_dir(s)), "ExtractFeatures",
             lambda s=s: extract_shard(layout, s, show_progress), shard=s)
    if stop >= 1:
        for m in layout.trained_models:
            step(completeness.trained_model_complete(layout, m), "Train",
                 lambda m=m: train_model(layout, m, show_progress), model=m)
        for s in range(layout.n_shards):
            for m in cfg.models:
                step(completeness.descriptors_complete(layout.descriptor_path(m, s)), "ComputeDescriptors",
                     lambda s=s, m=m: describe_shard(layout, layout.feature_shard_dir(s), m), shard=s, model=m)
    if stop >= 2:
        step(completeness.index_complete(layout.index_dir), "BuildIndex", lambda: build_index(layout))
    chosen = list(models) if models else (list(cfg.evaluate.models) if stop >= 4 else [cfg.search.model])
    if stop >= 3:
        for m in chosen:
            step(completeness.search_complete(layout.search_dir(m)), "Search",
                 lambda m=m: search(layout, m, show_progress), model=m)
    if stop >= 4:
        for m in chosen:
            step(completeness.reports_complete(layout.report_dir(m), layout.search_dir(m)), "Evaluate",
                 lambda m=m: evaluate(layout, m), model=m)
    return summary


def record_run(layout: Layout, task: str, **params: object) -> None:
    """Append one line per executed step to ``task_runs.log`` (who ran what, when)."""
    line = json.dumps({"task": task, **params, "host": socket.gethostname(), "pid": os.getpid(),
                       "time": utc_now()}) + "\n"
    layout.work.mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.task_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())  # one small O_APPEND write: atomic across processes
    finally:
        os.close(fd)
