"""Shared fixtures: synthetic frame-feature sequences with planted copies."""

from __future__ import annotations

from dataclasses import dataclass

import extractors  # noqa: F401  (first: its reproducible-MKL settings must precede torch's import)

# isort: split
import numpy as np
import pytest
import torch


def run_cli(args: list[str], armed: str = ""):
    """``python -m pipeline ARGS`` in its own process group (a failpoint's ``kill`` ends only it), with
    the failpoints ``armed`` (``name=action@hit``) and progress bars off."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from extractors.runtime.failpoints import ENV

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "TQDM_DISABLE": "1"}
    env.pop(ENV, None)
    if armed:
        env[ENV] = armed
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, env=env,
                          start_new_session=True, timeout=600)


def align_dataset(tmp, overrides: str):
    """Three recordings of each of two synthetic 22-s scenes (``pipeline.datasets.generate``: ``.align`` ground
    truth) under ``tmp / "data"``, their features extracted with the config ``overrides(root)`` gives."""
    from pipeline.config.load import load_config
    from pipeline.datasets.generate import build_align_dataset
    from pipeline.datasets.synthetic import Segment, render, write_video
    from pipeline.steps.build import build
    from pipeline.store.layout import Layout

    clips = [write_video(tmp / "src" / f"scene{seed}.mp4", render([Segment(seed, 0.0, 22.0)], 10.0, 160, 120), 10.0)
             for seed in (5, 6)]
    root = tmp / "data"
    build_align_dataset(clips, root, cameras=3, seed=0, min_source_s=20, max_length_s=14)
    build(Layout(load_config("folder", overrides(root))), until="features", show_progress=False)
    return root


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """``(n, d) float32`` random unit vectors."""
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def noisy_copy(rng: np.random.Generator, x: np.ndarray, noise: float = 0.3) -> np.ndarray:
    """Re-normalised ``x + noise * N(0, 1/d)``: what a re-encoded copy looks like."""
    y = x + noise * rng.standard_normal(x.shape).astype(np.float32) / np.sqrt(x.shape[1])
    return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)


def smooth_rows(rng: np.random.Generator, n: int, d: int, width: int = 8) -> np.ndarray:
    """Temporally correlated unit features (neighbouring frames look alike, like video)."""
    x = rng.standard_normal((n + width, d)).astype(np.float32)
    kernel = np.ones(width, dtype=np.float32) / width
    y = np.stack([np.convolve(x[:, c], kernel, mode="valid")[:n] for c in range(d)], axis=1)
    return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)


@dataclass
class PlantedPair:
    """``query`` is a noisy copy of ``db[start:start+len(query)]``: true offset ``-start``."""

    query: np.ndarray
    db: np.ndarray
    start: int

    @property
    def true_offset(self) -> int:
        return -self.start


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def planted(rng: np.random.Generator) -> PlantedPair:
    db = smooth_rows(rng, 600, 64)
    start = 137
    return PlantedPair(noisy_copy(rng, db[start:start + 200]), db, start)


@pytest.fixture(autouse=True)
def _torch_threads() -> None:
    torch.manual_seed(0)


def pytest_collection_modifyitems(config, items):
    """``gpu`` tests run only where CUDA is available."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
