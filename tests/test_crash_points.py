"""The crash suite: a run killed (SIGKILL of its whole process group, like ``kill -9`` or the OOM
killer) at every named failpoint, then re-run, ends with exactly the artifacts of an uninterrupted
run - byte for byte for a batch build; for a refresh, the same published index, manifest and
features (its version number and paths may differ: a version never made current is skipped).

Deterministic: failpoints fire at a given pass through a named point (``extractors/runtime/failpoints.py``),
no timers. Each case runs the pipeline twice in a subprocess of its own session."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from extractors.runtime.failpoints import ENV
from pipeline.store.features import read_video_features
from pipeline.store.publish import current_version, read_manifest
from tests.test_refresh import clip, overrides

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run(args: list[str], armed: str = "") -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
    env.pop(ENV, None)
    if armed:
        env[ENV] = armed
    p = subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, env=env,
                       start_new_session=True, timeout=600)  # its own process group: only it is killed
    assert p.returncode in (0, -9), p.stderr[-3000:]
    return p.returncode


def snapshot(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file() and p.name != "task_runs.log"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("crash")
    for i in range(3):
        clip(tmp / "data" / "videos" / f"v{i}.mp4", seed=70 + i, seconds=2)
    return tmp


def build_args(tmp: Path, workers: int) -> list[str]:
    ov = overrides(tmp, work_dir=str(tmp / "work"), reports_dir=str(tmp / "reports"),
                   **{"features.decode_workers": workers})
    return ["build", "--dataset", "folder", "--overrides", ov, "--until", "evaluate", "--quiet"]


@pytest.fixture(scope="module")
def reference(corpus) -> dict[int, tuple[dict, dict]]:
    """Snapshots of uninterrupted batch builds (inline decoding, one decode worker)."""
    out = {}
    for workers in (0, 1):
        assert run(build_args(corpus, workers)) == 0
        out[workers] = (snapshot(corpus / "work"), snapshot(corpus / "reports"))
        shutil.rmtree(corpus / "work")
        shutil.rmtree(corpus / "reports")
    return out


BUILD_POINTS = [
    ("decode.chunk", 1, 0), ("decode.chunk", 2, 1),  # inline; in a decode worker (its kill takes the run)
    ("extract.batch", 2, 0), ("features.mid_write", 1, 0), ("features.mid_write", 3, 1),
    ("artifact.before_rename", 1, 0), ("artifact.before_rename", 6, 0),
    ("artifact.after_rename", 2, 0), ("artifact.after_rename", 8, 0),
    ("describe.before_write", 2, 0), ("index.built", 1, 0), ("index.between_files", 1, 0),
    ("report.file", 1, 0), ("report.file", 4, 0),
]


@pytest.mark.parametrize(("point", "hit", "workers"), BUILD_POINTS)
def test_a_build_killed_at_any_point_then_rerun_matches_an_uninterrupted_one(corpus, reference, point, hit,
                                                                              workers):
    shutil.rmtree(corpus / "work", ignore_errors=True)
    shutil.rmtree(corpus / "reports", ignore_errors=True)
    assert run(build_args(corpus, workers), f"{point}=kill@{hit}") == -9, f"{point}@{hit} was not reached"
    assert run(build_args(corpus, workers)) == 0
    work, reports = snapshot(corpus / "work"), snapshot(corpus / "reports")
    ref_work, ref_reports = reference[workers]
    assert set(work) == set(ref_work), (set(work) ^ set(ref_work))  # no leftovers, nothing missing
    assert [k for k in work if work[k] != ref_work[k]] == []
    assert reports == ref_reports


def refresh_args(tmp: Path, work: str) -> list[str]:
    return ["refresh", "--dataset", "folder", "--quiet",
            "--overrides", overrides(tmp, work_dir=str(tmp / work), reports_dir=str(tmp / "rreports"))]


def published(tmp: Path, work: str) -> dict:
    """What a reader of the published index sees: index bytes, manifest (without paths, times,
    version numbers) and every video's features."""
    cur = current_version(tmp / work / "t" / "published")
    assert cur is not None
    m = read_manifest(cur)
    videos = {v: {k: x for k, x in e.items() if k not in ("features", "descriptors")} for v, e in m["videos"].items()}
    feats = {v: read_video_features(e["features"]) for v, e in m["videos"].items()}
    return {"index": hashlib.sha256((cur / "index.faiss").read_bytes()).hexdigest(),
            "videos": json.dumps(videos, sort_keys=True),
            "features": {v: (f.features.tobytes(), f.timestamps_s.tobytes()) for v, f in feats.items()},
            "history": len(json.loads((cur.parent / "history.json").read_text())["versions"])}


@pytest.fixture(scope="module")
def refreshed(corpus) -> dict:
    assert run(refresh_args(corpus, "rref")) == 0
    return published(corpus, "rref")


REFRESH_POINTS = [
    ("decode.chunk", 2), ("extract.batch", 1), ("features.mid_write", 2), ("artifact.before_rename", 3),
    ("describe.before_write", 1), ("index.between_files", 1), ("publish.before_switch", 1),
    ("publish.current_switch", 1),
]


@pytest.mark.parametrize(("point", "hit"), REFRESH_POINTS)
def test_a_refresh_killed_at_any_point_then_rerun_publishes_what_an_uninterrupted_one_does(corpus, refreshed,
                                                                                           point, hit):
    work = f"r-{point}-{hit}"
    assert run(refresh_args(corpus, work), f"{point}=kill@{hit}") == -9, f"{point}@{hit} was not reached"
    assert run(refresh_args(corpus, work)) == 0
    got = published(corpus, work)
    assert got["index"] == refreshed["index"] and got["videos"] == refreshed["videos"]
    assert got["features"].keys() == refreshed["features"].keys()
    assert all(got["features"][v] == refreshed["features"][v] for v in got["features"])
    root = corpus / work / "t" / "published"
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporary left
    assert run(refresh_args(corpus, work)) == 0  # and the next run finds nothing to do
    assert np.all([p.name != "v000003" for p in root.iterdir()])
