"""``python -m pipeline align A B``: the warping of two real (generated) videos, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.videos import make_video, pattern_frame

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_align_prints_the_warping_in_seconds_and_plots_it(tmp_path):
    w, h, fps = 160, 90, 25.0
    scene = [pattern_frame(i, w, h, seed=3, fps=fps) for i in range(150)]  # 6 s
    lead = [pattern_frame(i, w, h, seed=9, fps=fps) for i in range(50)]  # 2 s of other material
    a = make_video(tmp_path / "a.mp4", fps=fps, frames=scene)
    b = make_video(tmp_path / "b.mp4", fps=fps, frames=lead + scene)
    plot = tmp_path / "warp.png"
    out = subprocess.run([sys.executable, "-m", "pipeline", "align", str(a), str(b), "--overrides",
                          f"dataset.root={tmp_path};features.extractor=pdqf;features.pca=none",
                          "--fps", "5", "--plot", str(plot), "--unwarped", "first"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["units"] == "seconds" and doc["unwarped"] == "first"
    assert abs(doc["offset_s"] - (-2.0)) <= 0.25  # a's content appears 2 s later in b
    path = np.asarray(doc["path"])
    assert (np.diff(path, axis=0) >= 0).all()  # monotone in both videos
    assert (np.diff(path[:, 0]) > 0).all()  # a unwarped: one cell per frame of a
    assert path[-1, 0] <= 6.0 and path[-1, 1] <= 8.0
    assert 0 <= doc["draq"] < 1
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_align_names_a_missing_file_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pipeline", "align", str(tmp_path / "nope.mp4"),
                          str(tmp_path / "nope2.mp4"), "--overrides",
                          f"dataset.root={tmp_path};features.extractor=pdqf;features.pca=none"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "nope.mp4" in out.stderr.strip().splitlines()[-1]
