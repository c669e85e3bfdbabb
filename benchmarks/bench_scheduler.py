"""Luigi's central scheduler at the task count of a large corpus.

    python benchmarks/bench_scheduler.py --videos 1000000 --shard-size 2000 --query-shard 5000
    python benchmarks/bench_scheduler.py --videos 1000000 --shard-size 500     # the default shards

Starts ``luigid`` (``python -m pipeline luigid``, loopback), then one worker schedules and runs the
graph the pipeline makes for ``--videos`` videos, task for task: ``ExtractFeatures(shard)``,
``ComputeDescriptors(shard, model)`` for each model and their ``DescriptorSet(model)``,
``SampleFrames(shard)`` and their ``FrameSet``, ``BuildIndex``, ``SearchShard(model, shard)`` for each
searched model (each requiring the index and the sets, not every shard) and ``Search(model)``, with the same
parameters (dataset, overrides, shard, model).  The tasks do no work (their outputs are kept in
memory), so what is measured is Luigi: the worker's scheduling time (``luigi.build`` until the
first task runs), the whole run, and ``luigid``'s CPU seconds.  A baseline of 1/10 of the tasks
runs first in the same process, so the growth with the task count is printed.
"""

# ruff: noqa: E402  (the repository root goes on sys.path first: run as a script)
from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import luigi

DONE: set[str] = set()
FIRST_RUN: list[float] = []


class Node(luigi.Task):
    """A task of the pipeline's shape that does no work."""

    dataset = luigi.Parameter(default="big")
    overrides = luigi.Parameter(default="shards.size=2000")

    def complete(self) -> bool:
        return self.task_id in DONE

    def run(self) -> None:
        if not FIRST_RUN:
            FIRST_RUN.append(time.perf_counter())
        DONE.add(self.task_id)


class ExtractFeatures(Node):
    shard = luigi.IntParameter()


class ComputeDescriptors(Node):
    shard = luigi.IntParameter()
    model = luigi.Parameter()

    def requires(self):
        return ExtractFeatures(shard=self.shard, dataset=self.dataset, overrides=self.overrides)


class SampleFrames(Node):
    shard = luigi.IntParameter()

    def requires(self):
        return ExtractFeatures(shard=self.shard, dataset=self.dataset, overrides=self.overrides)


class DescriptorSet(Node):
    shards = luigi.IntParameter()
    model = luigi.Parameter()

    def requires(self):
        return [ComputeDescriptors(shard=s, model=self.model, dataset=self.dataset, overrides=self.overrides)
                for s in range(self.shards)]


class FrameSet(Node):
    shards = luigi.IntParameter()

    def requires(self):
        return [SampleFrames(shard=s, dataset=self.dataset, overrides=self.overrides) for s in range(self.shards)]


class BuildIndex(Node):
    shards = luigi.IntParameter()
    models = luigi.ListParameter()

    def requires(self):
        return [DescriptorSet(shards=self.shards, model=m, dataset=self.dataset, overrides=self.overrides)
                for m in self.models]


class SearchShard(Node):
    shard = luigi.IntParameter()
    model = luigi.Parameter()
    shards = luigi.IntParameter()
    models = luigi.ListParameter()

    def requires(self):
        common = {"dataset": self.dataset, "overrides": self.overrides}
        return [BuildIndex(shards=self.shards, models=self.models, **common),
                DescriptorSet(shards=self.shards, model=self.model, **common), FrameSet(shards=self.shards, **common)]


class Search(Node):
    model = luigi.Parameter()
    shards = luigi.IntParameter()
    query_shards = luigi.IntParameter()
    models = luigi.ListParameter()

    def requires(self):
        return [SearchShard(shard=q, model=self.model, shards=self.shards, models=self.models,
                            dataset=self.dataset, overrides=self.overrides) for q in range(self.query_shards)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(videos: int, shard_size: int, query_shard: int, models: list[str], searched: int, port: int,
        luigid_pid: int) -> dict:
    DONE.clear()
    FIRST_RUN.clear()
    shards = -(-videos // shard_size)
    query_shards = -(-videos // query_shard)
    roots = [Search(model=m, shards=shards, query_shards=query_shards, models=models, dataset=f"big{videos}")
             for m in models[:searched]]  # a dataset per run: luigid remembers the tasks of the last one
    n_tasks = shards * (2 + len(models)) + len(models) + 2 + searched * (query_shards + 1)
    c0, t0 = cpu_seconds(luigid_pid), time.perf_counter()
    ok = luigi.build(roots, scheduler_host="127.0.0.1", scheduler_port=port, workers=1, log_level="ERROR")
    t1 = time.perf_counter()
    return {"videos": videos, "tasks": n_tasks, "ok": ok, "schedule_s": (FIRST_RUN[0] if FIRST_RUN else t1) - t0,
            "run_s": t1 - t0, "luigid_cpu_s": cpu_seconds(luigid_pid) - c0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=1_000_000)
    ap.add_argument("--shard-size", type=int, default=2000, help="shards.size")
    ap.add_argument("--query-shard", type=int, default=5000, help="shards.queries")
    ap.add_argument("--models", default="tmk_poullot,tmk_lamv,cte", help="models described")
    ap.add_argument("--searched", type=int, default=1, help="models searched (Search tasks)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    models = args.models.split(",")
    port = free_port()
    state = Path(tempfile.mkdtemp(prefix="bench_scheduler_"))
    luigid = subprocess.Popen([sys.executable, "-m", "pipeline", "luigid", "--address", "127.0.0.1", "--port",
                               str(port), "--state-path", str(state / "state.pickle"), "--logdir", str(state)],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):  # wait until it listens (bounded: 60 s)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.1)
        results = [run(max(1, args.videos // 10), args.shard_size, args.query_shard, models, args.searched, port,
                       luigid.pid),
                   run(args.videos, args.shard_size, args.query_shard, models, args.searched, port, luigid.pid)]
    finally:
        luigid.terminate()
        luigid.wait(timeout=60)
    print(f"\nluigid, one worker, shards.size={args.shard_size}, shards.queries={args.query_shard}, "
          f"models {len(models)} described, {args.searched} searched\n")
    print("| videos | tasks | scheduling s | whole run s | luigid CPU s |")
    print("|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['videos']} | {r['tasks']} | {r['schedule_s']:.1f} | {r['run_s']:.1f} | {r['luigid_cpu_s']:.1f} |")
    a, b = results
    def ratio(key: str) -> str:
        return f"{b[key] / max(a[key], 1e-9):.1f}x"

    print(f"\n{b['tasks'] / a['tasks']:.1f}x the tasks: scheduling {ratio('schedule_s')}, run {ratio('run_s')}, "
          f"luigid CPU {ratio('luigid_cpu_s')}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
