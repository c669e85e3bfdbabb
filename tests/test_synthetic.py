"""The synthetic material of the demo and the tests (``pipeline/datasets/synthetic.py``)."""

from __future__ import annotations

import hashlib

import pytest

from pipeline.datasets.synthetic import Segment, make_demo_corpus, render, write_video


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_same_frames_encode_to_the_same_file(tmp_path):
    # libx264's AVX-512 kernels gave a different bitstream on most encodes of the same frames: a
    # generated corpus, and every figure measured on it, changed from run to run.
    frames = render([Segment(101, 3.0, 3.0)], 24.0, 480, 270)
    digests = {_digest(write_video(tmp_path / f"v{k}.mp4", frames, 24.0)) for k in range(6)}
    assert len(digests) == 1


@pytest.mark.slow
def test_the_demo_corpus_is_the_same_bytes_on_every_generation(tmp_path):
    first = make_demo_corpus(tmp_path / "a")
    second = make_demo_corpus(tmp_path / "b")
    assert first == second
    videos = sorted((tmp_path / "a" / "videos" / "demo").glob("*.mp4"))
    assert len(videos) == 11
    for v in videos:
        assert _digest(v) == _digest(tmp_path / "b" / "videos" / "demo" / v.name), v.name
    assert (tmp_path / "a" / "annotation" / "demo.txt").read_text() == \
        (tmp_path / "b" / "annotation" / "demo.txt").read_text()
