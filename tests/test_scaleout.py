"""Scale-out on Luigi's central scheduler: luigid on loopback, two worker processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from pipeline.config.load import load_config
from pipeline.store.index_files import read_index
from pipeline.store.layout import Layout
from tests.test_refresh import clip, overrides

ROOT = Path(__file__).resolve().parents[1]


def start_luigid(tmp_path: Path, env: dict, config: Path | None = None) -> tuple[subprocess.Popen, int]:
    """``python -m pipeline luigid`` on a free loopback port; returns once it accepts connections."""
    port = free_port()
    (tmp_path / "logs").mkdir(exist_ok=True)
    denv = {**env, "LUIGI_CONFIG_PATH": str(config)} if config else env
    daemon = subprocess.Popen([sys.executable, "-m", "pipeline", "luigid", "--address", "127.0.0.1", "--port",
                               str(port), "--state-path", str(tmp_path / "luigid-state"), "--logdir",
                               str(tmp_path / "logs")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=denv)
    deadline = time.time() + 60  # a readiness poll (luigid announces nothing), not a synchronisation delay
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return daemon, port
        if daemon.poll() is not None:
            break
        time.sleep(0.2)
    daemon.kill()
    pytest.fail("luigid did not start")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_workers_on_luigid_process_each_shard_once(tmp_path):
    vdir = tmp_path / "data" / "videos"
    for i in range(8):
        clip(vdir / f"v{i}.mp4", seed=200 + i, seconds=1.5)
    ov = overrides(tmp_path, **{"shards.size": 2})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    daemon, port = start_luigid(tmp_path, env)
    try:
        cmd = ["luigi", "--module", "pipeline", "BuildIndex", "--dataset", "folder", "--overrides", ov,
               "--workers", "2", "--scheduler-host", "127.0.0.1", "--scheduler-port", str(port), "--no-lock"]
        workers = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True) for _ in range(2)]
        outs = [w.communicate(timeout=600)[0] for w in workers]
        assert all(w.returncode == 0 for w in workers), outs[0][-3000:] + outs[1][-3000:]
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    cfg = load_config("folder", ov)
    runs = [json.loads(line) for line in (cfg.work_dir / "task_runs.log").read_text().splitlines()]
    extract = Counter(r["shard"] for r in runs if r["task"] == "ExtractFeatures")
    assert Layout(cfg).n_shards == 4 and extract == {0: 1, 1: 1, 2: 1, 3: 1}  # every shard exactly once
    desc = Counter((r["shard"], r["model"]) for r in runs if r["task"] == "ComputeDescriptors")
    assert set(desc.values()) == {1} and len(desc) == 4 * len(cfg["models"])
    assert len({r["pid"] for r in runs if r["task"] != "BuildIndex"}) >= 2  # the work was shared
    assert sum(r["task"] == "BuildIndex" for r in runs) == 1
    assert len(read_index(Layout(cfg).index_dir).video_ids) == 8


@pytest.mark.slow
def test_a_worker_killed_while_holding_a_shard_does_not_stop_the_batch(tmp_path):
    """kill -9 of a worker process in the middle of a shard: the scheduler (``python -m pipeline
    luigid``, configs/luigid.cfg) declares it dead and hands its shard to the surviving worker,
    which waits for it (keep_alive) and finishes the batch: exit 0, every shard done once."""
    from extractors.runtime.failpoints import ENV

    vdir = tmp_path / "data" / "videos"
    for i in range(6):
        clip(vdir / f"v{i}.mp4", seed=300 + i, seconds=1.5)
    ov = overrides(tmp_path, **{"shards.size": 2})
    fast = tmp_path / "luigid.cfg"  # the shipped settings, with shorter delays for a test
    fast.write_text("[scheduler]\nworker_disconnect_delay = 3\nretry_delay = 1\nretry_count = 3\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(ENV, None)
    daemon, port = start_luigid(tmp_path, env, fast)
    cmd = ["luigi", "--module", "pipeline", "BuildIndex", "--dataset", "folder", "--overrides", ov,
           "--workers", "1", "--scheduler-host", "127.0.0.1", "--scheduler-port", str(port), "--no-lock"]
    try:
        doomed = subprocess.run(cmd, cwd=tmp_path, env={**env, ENV: "extract.batch=kill@1"},
                                start_new_session=True, capture_output=True, text=True, timeout=600)
        assert doomed.returncode == -9  # killed while its first shard was running
        survivor = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    assert survivor.returncode == 0, (survivor.stdout + survivor.stderr)[-3000:]
    cfg = load_config("folder", ov)
    runs = [json.loads(line) for line in (cfg.work_dir / "task_runs.log").read_text().splitlines()]
    assert Counter(r["shard"] for r in runs if r["task"] == "ExtractFeatures") == {0: 1, 1: 1, 2: 1}
    assert len(read_index(Layout(cfg).index_dir).video_ids) == 6


@pytest.mark.slow
def test_a_worker_that_leaves_an_unfinished_batch_says_so(tmp_path):
    """Luigi exits 0 when the tasks it did not run were "being run by another worker", even when
    that worker is dead. ``python -m pipeline luigi`` checks the root task afterwards: incomplete ->
    one INCOMPLETE line and exit 50; run again (with a scheduler that noticed the death), it finishes."""
    from extractors.runtime.failpoints import ENV

    vdir = tmp_path / "data" / "videos"
    for i in range(4):
        clip(vdir / f"v{i}.mp4", seed=320 + i, seconds=1.5)
    ov = overrides(tmp_path, **{"shards.size": 2})
    slow = tmp_path / "slow.cfg"  # a scheduler that will not notice the death during this test
    slow.write_text("[scheduler]\nworker_disconnect_delay = 3600\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(ENV, None)

    def worker(port: int, extra_env: dict | None = None, *flags: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pipeline", "luigi", "BuildIndex", "--dataset", "folder",
                               "--overrides", ov, "--workers", "1", "--scheduler-host", "127.0.0.1",
                               "--scheduler-port", str(port), "--no-lock", *flags], cwd=tmp_path,
                              env={**env, **(extra_env or {})}, start_new_session=True, capture_output=True,
                              text=True, timeout=600)

    daemon, port = start_luigid(tmp_path, env, slow)
    try:
        assert worker(port, {ENV: "extract.batch=kill@1"}).returncode == -9
        leave = tmp_path / "impatient.cfg"  # a worker that does not wait for tasks held elsewhere
        leave.write_text("[worker]\nkeep_alive = false\n")
        impatient = worker(port, {"LUIGI_CONFIG_PATH": str(leave)})
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    assert impatient.returncode == 50, (impatient.stdout + impatient.stderr)[-3000:]
    assert "INCOMPLETE BuildIndex" in impatient.stderr
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    daemon, port = start_luigid(fresh, env)
    try:
        again = worker(port)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert len(read_index(Layout(load_config("folder", ov)).index_dir).video_ids) == 4


@pytest.mark.slow
def test_luigid_is_found_beside_the_interpreter_when_its_folder_is_not_on_path(tmp_path):
    """Cron runs ``venv/bin/python -m pipeline luigid`` with a PATH that lacks ``venv/bin``: the scheduler
    that came with the interpreter's luigi is used (here it only prints its usage)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PATH", "LUIGI_CONFIG_PATH")}
    env["PATH"] = "/usr/bin:/bin"
    out = subprocess.run([sys.executable, "-m", "pipeline", "luigid", "--port", "1", "--help"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage: luigid" in out.stdout and "luigid.cfg" in out.stderr
