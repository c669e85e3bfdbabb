"""The two entry points (``python -m pipeline`` and ``luigi --module pipeline``) do the same work:
byte-identical artifacts, cron-safe exit codes from any directory, retries that happen,
repairs, the demo chain from an empty directory, refresh through both, query with the
index's own settings."""

from __future__ import annotations

import filecmp
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import luigi
import pytest

from pipeline.config.load import load_config
from pipeline.store.layout import Layout
from tests.test_refresh import clip, overrides

ROOT = Path(__file__).resolve().parents[1]


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", **extra}


def run(args: list[str], cwd: Path, timeout: int = 600, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env(**extra), capture_output=True, text=True, timeout=timeout)


def fast_luigi(tmp: Path) -> Path:
    """User Luigi settings for tests: short retry delay and idle time (our defaults fill the rest)."""
    cfg = tmp / "luigi-test.cfg"
    cfg.write_text("[scheduler]\nretry_delay = 1\n[worker]\nmax_keep_alive_idle_duration = 4 seconds\n"
                   "wait_interval = 0.2\nwait_jitter = 0.1\n")
    return cfg


@pytest.fixture
def small(tmp_path):
    for i in range(4):
        clip(tmp_path / "data" / "videos" / f"v{i}.mp4", seed=60 + i, seconds=2.0)
    return tmp_path


def files_under(*roots: Path) -> dict[str, Path]:
    out = {}
    for r in roots:
        for p in sorted(r.rglob("*")):
            if p.is_file() and p.name != "task_runs.log":
                out[f"{r.name}/{p.relative_to(r)}"] = p
    return out


@pytest.mark.slow
def test_cli_and_luigi_write_byte_identical_artifacts(small):
    ov = overrides(small, **{"features.pca": "trained", "features.pca_frames_per_video": 10, "shards.size": 3,
                             "evaluate.models": "[tmk_lamv, cte]"})
    out = run([sys.executable, "-m", "pipeline", "build", "--dataset", "folder", "--overrides", ov,
               "--until", "evaluate", "--quiet"], small)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "0 already complete" in out.stdout
    assert f"work directory {small / 'work' / 't'}" in out.stderr  # every run says where it writes
    cli = files_under(small / "work", small / "reports")
    assert any("/pca-" in k for k in cli) and any("index-" in k for k in cli) and any("report.html" in k for k in cli)
    (small / "work").rename(small / "work_cli")
    (small / "reports").rename(small / "reports_cli")
    out = run(["luigi", "--module", "pipeline", "Evaluate", "--dataset", "folder", "--overrides", ov,
               "--local-scheduler"], small)
    assert out.returncode == 0, out.stderr[-3000:]
    lu = files_under(small / "work", small / "reports")
    cli = files_under(small / "work_cli", small / "reports_cli")
    assert sorted(k.replace("_cli", "") for k in cli) == sorted(lu)
    different = [k for k in lu if not filecmp.cmp(lu[k], cli[k.replace("work/", "work_cli/", 1)
                                                          .replace("reports/", "reports_cli/", 1)], shallow=False)]
    assert different == []
    # and the CLI, run again on Luigi's outputs, finds nothing to do
    again = run([sys.executable, "-m", "pipeline", "build", "--dataset", "folder", "--overrides", ov,
                 "--until", "evaluate", "--quiet"], small)
    assert again.returncode == 0 and " 0 step(s) run" in again.stdout, again.stdout


@pytest.mark.slow
def test_luigi_exits_non_zero_from_any_directory_with_one_line_that_says_what_to_do(small, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("cwd")
    ov = overrides(small, **{"features.weights": str(small / "missing-resnet34.pth")})
    out = run(["luigi", "--module", "pipeline", "BuildIndex", "--dataset", "folder", "--overrides", ov,
               "--local-scheduler"], elsewhere, LUIGI_CONFIG_PATH=str(fast_luigi(elsewhere)))
    text = out.stdout + out.stderr
    assert out.returncode == 35, text[-3000:]  # [retcode] scheduling_error, applied without a luigi.cfg here
    lines = [ln for ln in text.splitlines() if ln.startswith("CANNOT SCHEDULE BuildIndex")]
    assert lines and 'missing-resnet34.pth does not exist' in lines[0]
    assert '--overrides "features.weights=/path/to/resnet34-b627a593.pth"' in lines[0]
    assert '--overrides "features.extractor=selfsup;search.model=cte"' in lines[0]  # the offline alternative
    assert "DEBUG:" not in text  # INFO logging by default
    # a task that fails on every attempt: task_failed
    out = run(["luigi", "--module", "pipeline", "BuildIndex", "--dataset", "folder", "--overrides",
               overrides(small), "--local-scheduler"], elsewhere, LUIGI_CONFIG_PATH=str(fast_luigi(elsewhere)),
              VIDEOALIGN_FAILPOINTS="describe.before_write=raise*")
    text = out.stdout + out.stderr
    assert out.returncode == 30, text[-3000:]
    assert "FAILED ComputeDescriptors" in text and "FailpointError: failpoint describe.before_write" in text
    # bad configuration: immediate, named key, non-zero
    out = run(["luigi", "--module", "pipeline", "BuildIndex", "--dataset", "folder", "--overrides",
               overrides(small) + ";search.top_k=abc", "--local-scheduler"], elsewhere)
    assert out.returncode != 0 and "'search.top_k' must be an integer" in out.stdout + out.stderr


@pytest.mark.slow
def test_a_failed_task_is_retried_and_the_run_succeeds(small):
    ov = overrides(small)
    out = run(["luigi", "--module", "pipeline", "BuildIndex", "--dataset", "folder", "--overrides", ov,
               "--local-scheduler"], small, LUIGI_CONFIG_PATH=str(fast_luigi(small)),
              VIDEOALIGN_FAILPOINTS="describe.before_write=raise@1")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert text.count("FAILED ComputeDescriptors") == 1  # the first attempt failed ...
    cfg = load_config("folder", ov)
    runs = [json.loads(x) for x in (cfg.work_dir / "task_runs.log").read_text().splitlines()]
    n_desc = sum(r["task"] == "ComputeDescriptors" for r in runs)
    assert n_desc == Layout(cfg).n_shards * len(cfg.models)  # ... and its retry completed every one
    assert (Layout(cfg).index_dir / "meta.h5").is_file()


@pytest.mark.slow
def test_refresh_task_and_cli_are_one_behaviour_with_a_trained_pca(small):
    """``RefreshCorpus`` on a fresh work dir with ``features.pca: trained`` trains the PCA first,
    exactly like ``python -m pipeline refresh``; both publish the same index."""
    from tasks import RefreshCorpus

    ov_task = overrides(small, **{"features.pca": "trained", "features.pca_frames_per_video": 10,
                                  "work_dir": str(small / "w_task")})
    ov_cli = overrides(small, **{"features.pca": "trained", "features.pca_frames_per_video": 10,
                                 "work_dir": str(small / "w_cli")})
    assert luigi.build([RefreshCorpus(dataset="folder", overrides=ov_task)], local_scheduler=True,
                       log_level="WARNING")
    out = run([sys.executable, "-m", "pipeline", "refresh", "--dataset", "folder", "--overrides", ov_cli,
               "--quiet"], small)
    assert out.returncode == 0, out.stderr[-2000:]
    a = Layout(load_config("folder", ov_task))
    b = Layout(load_config("folder", ov_cli))
    va, vb = a.published_root / "current", b.published_root / "current"
    assert filecmp.cmp(va / "index.faiss", vb / "index.faiss", shallow=False)
    assert filecmp.cmp(a.pca_path, b.pca_path, shallow=False)
    assert RefreshCorpus(dataset="folder", overrides=ov_task).complete()


@pytest.mark.slow
def test_the_demo_chain_runs_from_an_empty_directory(tmp_path):
    """``luigi --module pipeline Evaluate --dataset demo`` generates the demo corpus itself and runs the
    whole chain: the shards and query slices a generated corpus lists only once it exists are dynamic
    dependencies (a regression: Search once failed with "Unfulfilled dependency at run time")."""
    ov = ("shards.size=20;features.pca_frames_per_video=10;features.image_area=6000;frame_model.steps=40;"
          "evaluate.models=[tmk_lamv]")
    out = run(["luigi", "--module", "pipeline", "Evaluate", "--dataset", "demo", "--overrides", ov,
               "--local-scheduler"], tmp_path, timeout=900, VIDEOALIGN_PROGRESS_S="0", TQDM_DISABLE="")
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    # long steps say where they are in a Luigi run's log: done / total, rate, ETA
    assert "frame model: training: 40/40 step (" in out.stderr and "ETA" in out.stderr, out.stderr[-3000:]
    # a feature shard counts its videos to the end (shards are balanced: 22 demo videos make 11 + 11)
    assert re.search(r"shard-\d+-\w+: (\d+)/\1 video \(.*ETA 00:00\)$", out.stderr, re.M), out.stderr[-3000:]
    assert "FAILED" not in out.stdout + out.stderr  # no task failed, not even once before a retry
    assert (tmp_path / "demo_data" / "annotation" / "demo.txt").is_file()
    where = f"work directory {tmp_path / 'work' / 'demo'}, reports {tmp_path / 'reports' / 'demo'}"
    assert where in out.stdout + out.stderr  # a run from another directory says where it writes
    assert list((tmp_path / "work" / "demo").glob("index-*/meta.h5"))
    assert list((tmp_path / "work" / "demo").glob("selfsup-*.pt"))  # the demo's offline network
    assert (tmp_path / "reports" / "demo" / "tmk_lamv" / "report.json").is_file()
    assert "Unfulfilled" not in out.stderr


def test_program_name_and_progress_bars(tmp_path, monkeypatch, caplog):
    from extractors.runtime.progress import bars_disabled, progress

    script = shutil.which("videoalign")
    if script is not None:
        out = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
        assert out.stdout.startswith("usage: videoalign ")
    out = run([sys.executable, "-m", "pipeline", "--help"], tmp_path)
    assert out.stdout.startswith("usage: python -m pipeline ")
    # not a terminal (pytest captures stderr): no bar, whatever the caller wants; lines at INFO instead
    assert bars_disabled(True)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setenv("VIDEOALIGN_PROGRESS_S", "0")
    with caplog.at_level(logging.INFO, logger="extractors.runtime.progress"):
        for _ in progress(range(3), wanted=True, unit="video", desc="shard-00002"):
            pass
        assert list(progress(range(3), wanted=False, desc="quiet")) == [0, 1, 2]  # not wanted: no line
    lines = [r.getMessage() for r in caplog.records]
    assert lines[-1].startswith("shard-00002: 3/3 video (") and "ETA" in lines[-1] and len(lines) == 4
    assert not any("quiet" in line for line in lines)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress(range(3), wanted=True).disable  # TQDM_DISABLE: no bar, no lines


def test_tqdm_disable_is_honoured_even_on_a_terminal(monkeypatch):
    from extractors.runtime import progress as mod

    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(mod.sys, "stderr", Tty())
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert not mod.bars_disabled(True) and mod.bars_disabled(False)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert mod.bars_disabled(True)


@pytest.mark.slow
@pytest.mark.parametrize("extractor", ["selfsup", "mvlad", "pdqf"])
def test_offline_extractors_find_planted_copies_without_weights(tmp_path, extractor):
    """Selecting an offline extractor alone gives its recommended configuration (vocabularies,
    network and PCA fitted on the corpus by their own tasks), needs no weights even when the config
    names ImageNet weights that are absent, and finds the planted copies at their offsets."""
    from pipeline.datasets.synthetic import make_demo_corpus
    from pipeline.store.results.search import read_search_results
    from tasks import Evaluate

    copies = make_demo_corpus(tmp_path / "data", n_sources=3, n_copies=2, n_distractors=1, source_s=12, copy_s=6)
    ov = (f"dataset.root={tmp_path / 'data'};work_dir={tmp_path / 'work'};reports_dir={tmp_path / 'reports'};"
          f"features.extractor={extractor};features.weights=imagenet;features.download_weights=false;"
          "features.pca=auto;features.pca_frames_per_video=20;search.model=cte;evaluate.models=[cte];"
          # a small network, briefly trained, keeps this test quick (the defaults train for ~20 min)
          "frame_model.steps=40;frame_model.input_size=64;frame_model.width=16;frame_model.dim=64;"
          "frame_model.batch=32;frame_model.frames_per_video=30")
    assert luigi.build([Evaluate(dataset="demo", overrides=ov)], local_scheduler=True, log_level="WARNING")
    lay = Layout(load_config("demo", ov))
    assert lay.pca_path.is_file() and (lay.vocab_path.is_file() == (extractor == "mvlad"))
    assert lay.frame_model_path.is_file() == (extractor == "selfsup")
    assert not lay.frame_model_training_path.exists()  # the resumable state goes once the network is saved
    rows = read_search_results(lay.search_dir("cte"))  # CTE: the offline extractors' best model (RESULTS.md)
    for c in copies:
        top = next(r for r in rows if r.query == c.query and r.rank == 1)
        assert top.match == c.source and abs(top.offset_s - c.offset_s) < 0.2, (c, top)


@pytest.mark.slow
def test_the_luigi_wrapper_names_an_unknown_task_in_one_line(tmp_path):
    out = run([sys.executable, "-m", "pipeline", "luigi", "NoSuchTask", "--local-scheduler"], tmp_path)
    assert out.returncode == 2 and out.stderr.startswith("luigi: No task NoSuchTask.")
    assert len(out.stderr.strip().splitlines()) == 1 and "BuildIndex" in out.stderr
    helped = run([sys.executable, "-m", "pipeline", "luigi", "--help"], tmp_path)
    assert helped.returncode == 0 and helped.stdout.count("usage:") == 1


def test_the_demo_summary_says_how_many_queries_it_left_out(tmp_path):
    from pipeline.entry.demo import SHOWN, summarize

    rows = [{"query": f"q{i}", "top_match": f"m{i}", "score": 0.5, "offset_s": 1.0} for i in range(11)]
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"dataset": "demo", "model": "cte", "metrics": {"pair_AP": 0.9},
                                  "per_query": rows}))
    text = summarize([report])
    assert text.count(" -> ") == SHOWN and f"... {11 - SHOWN} more queries in {report}" in text


@pytest.mark.parametrize(("overrides", "says"), [
    ("search.top_k=abc", "'search.top_k' must be an integer, got 'abc'"),
    ("", "no data root"),
])
def test_a_configuration_error_through_luigi_is_one_cannot_schedule_line(tmp_path, overrides, says):
    """Not a page of chained tracebacks: one ``CANNOT SCHEDULE <task>: <what to do>`` line, exit 35."""
    ov = f"dataset.root={tmp_path};{overrides}" if overrides else ""
    extra = {"VIDEOALIGN_DATA": "", "VIDEOALIGN_FOLDER": ""}
    out = run(["luigi", "--module", "pipeline", "BuildIndex", "--dataset", "folder", "--overrides", ov,
               "--local-scheduler"], tmp_path, timeout=300, **extra)
    text = out.stdout + out.stderr
    lines = [ln for ln in text.splitlines() if "CANNOT SCHEDULE" in ln]
    assert out.returncode == 35 and len(lines) == 1 and says in lines[0], text[-3000:]
    assert "Traceback" not in text
