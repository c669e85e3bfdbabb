"""The chain without a scheduler (``python -m pipeline build``), and the record of every step run.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.core.atomic import utc_now
from pipeline.steps.features.extract import Failure, ShardResult
from pipeline.steps.plan import plan
from pipeline.store.layout import Layout

log = logging.getLogger(__name__)


@dataclass
class BuildSummary:
    ran: list[str]
    skipped: int
    failures: list[Failure]


def build(layout: Layout, until: str = "index", models: Sequence[str] | None = None,
          show_progress: bool = True) -> BuildSummary:
    """Run the chain (:func:`pipeline.steps.plan.plan`) up to ``until`` without a scheduler, skipping every
    complete output (the same nodes and completeness checks as the Luigi tasks, so both redo exactly what
    is missing)."""
    summary = BuildSummary([], 0, [])
    log.info("%s", layout.cfg.locations)
    for node in plan(layout, until, models):
        if node.complete():
            summary.skipped += 1
            continue
        out = node.run(show_progress)
        if isinstance(out, ShardResult):
            summary.failures.extend(out.failures)
        summary.ran.append(node.name)
        record_run(layout, node.task, **node.params)
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
