"""No Docker engine runs here: check that the docker files name paths and commands that exist."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from pipeline.entry.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"


def test_images_copy_existing_paths_and_install_like_the_readme():
    readme = (ROOT / "README.md").read_text()
    for name, extra in (("Dockerfile.cpu", "cpu"), ("Dockerfile.gpu", "gpu")):
        text = (DOCKER / name).read_text()
        for src in re.findall(r"^COPY (.+) \S+$", text, flags=re.M):
            for part in src.split():
                assert (ROOT / part).exists(), f"{name}: COPY {part} does not exist"
        assert f'pip install --no-cache-dir -e ".[{extra}]"' in text
        assert f'-e ".[{extra}]"' in readme


def test_compose_and_cron_name_real_commands():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert set(compose["services"]) == {"luigid", "worker"}
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    daemon = compose["services"]["luigid"]["entrypoint"]
    assert daemon[:4] == ["python", "-m", "pipeline", "luigid"] and "luigid" in commands and shutil.which("luigid")
    worker = compose["services"]["worker"]["entrypoint"]
    assert worker[:5] == ["python", "-m", "pipeline", "luigi", "BuildIndex"] and "luigi" in commands
    import tasks

    assert hasattr(tasks, worker[4])
    for f in ("crontab", "videoalign-refresh.service"):
        for cmd in re.findall(r"python -m pipeline (\w+)", (DOCKER / f).read_text()):
            assert cmd in commands, f"{f}: unknown command {cmd}"
    assert "OnCalendar" in (DOCKER / "videoalign-refresh.timer").read_text()
