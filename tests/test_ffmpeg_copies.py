"""Copies made by ffmpeg filter graphs (pipeline/datasets/ffmpeg_copies.py): every edit renders, and the
ground truth points at the copied content."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from pipeline.config.load import load_config
from pipeline.datasets.ffmpeg_copies import EDITS, SPEED, build_ffmpeg_copy_dataset
from pipeline.datasets.kinds import load_ground_truth
from pipeline.datasets.synthetic import Segment, render, write_video

W, H, RATE = 160, 96, 10.0


def ffmpeg_or_skip() -> str:
    from extractors.decode.ffmpeg_frames import FFmpegMissingError, find_ffmpeg

    try:
        return find_ffmpeg()
    except FFmpegMissingError as exc:
        pytest.skip(str(exc))


def luma_at(path, times_s: np.ndarray) -> np.ndarray:
    """``(len(times_s), 24, 40)`` standardised luma of the frames shown at ``times_s``."""
    with av.open(str(path)) as c:
        frames = [(float(f.time), f.to_ndarray(format="gray")) for f in c.decode(video=0)]
    t = np.array([x for x, _ in frames])
    out = []
    for want in times_s:
        img = frames[int(np.searchsorted(t, want + 1e-6) - 1)][1].astype(np.float32)
        h, w = img.shape
        small = img[: h // 24 * 24, : w // 40 * 40].reshape(24, h // 24, 40, w // 40).mean(axis=(1, 3))
        out.append((small - small.mean()) / (small.std() + 1e-6))
    return np.stack(out)


def duration(path) -> float:
    with av.open(str(path)) as c:
        return c.duration / 1e6


@pytest.mark.slow
def test_every_edit_renders_and_the_annotation_points_at_the_copied_content(tmp_path):
    ffmpeg = ffmpeg_or_skip()
    clips = tmp_path / "clips"
    clips.mkdir()
    sources, fillers = [], []
    for i in range(3):  # sources: 40 s of moving synthetic scenes; fillers: other scenes
        p = clips / f"source{i}.mp4"
        write_video(p, render([Segment(10 + i, 0.0, 40.0)], RATE, W, H), RATE)
        sources.append(p)
    for i in range(3):
        p = clips / f"filler{i}.mp4"
        write_video(p, render([Segment(50 + i, 0.0, 60.0)], RATE, W, H), RATE)
        fillers.append(p)
    out = tmp_path / "bench"
    truth = build_ffmpeg_copy_dataset(sources, fillers, out, len(EDITS), 1, seed=4, ffmpeg=ffmpeg)

    made = {t["attack"].split("+")[0] for t in truth}
    assert made == set(EDITS)
    assert any(t["copy"].startswith("hard") for t in truth)
    two = [c for c in {t["copy"] for t in truth} if len({t["source"] for t in truth if t["copy"] == c}) > 1]
    assert two, "a video with excerpts of two sources"
    for name in {t["copy"] for t in truth}:
        parts = [t for t in truth if t["copy"] == name]
        end = max(t["copy_start"] + t["copy_length"] for t in parts)
        tails = duration(out / "videos" / "bench" / f"{name}.mp4") - end  # the tail: 1 or 2 s, exactly
        assert min(abs(tails - 1), abs(tails - 2)) < 0.1, (name, tails)
    speed = next(t for t in truth if t["attack"].startswith("speed"))
    assert speed["copy_length"] == pytest.approx(speed["source_length"] / SPEED)

    # the annotation reads with the VCDB reader and pairs every copy with its source
    cfg = load_config("folder", f"dataset.root={out};dataset.kind=vcdb")
    gt = load_ground_truth(cfg.dataset, [p.stem and f"bench/{p.stem}" for p in (out / "videos" / "bench").iterdir()])
    pairs = {frozenset((p.video_a, p.video_b)) for p in gt.pairs}
    for t in truth:
        assert frozenset((f"bench/{t['copy']}", f"bench/{t['source'].split('.')[0]}")) in pairs
    assert json.loads((out / "truth.json").read_text()) == truth

    # where the annotation says, the copy shows the source's frames (edits without geometry: speed,
    # frame rate): closer to the annotated moment than to any other moment of the source
    for t in [t for t in truth if t["attack"].split("+")[0] in ("speed", "framerate")]:
        rate = t["source_length"] / t["copy_length"]
        u = np.linspace(0.5, t["copy_length"] - 0.5, 5)
        copy = luma_at(out / "videos" / "bench" / f"{t['copy']}.mp4", t["copy_start"] + u)
        src_path = out / "videos" / "bench" / t["source"]
        grid = np.arange(0.0, 39.5, 0.1)
        src = luma_at(src_path, grid)
        corr = np.einsum("qhw,shw->qs", copy, src) / copy[0].size  # (5 moments, source times)
        found = grid[corr.argmax(axis=1)]
        assert np.abs(found - (t["source_start"] + u * rate)).max() <= 0.5, (t, found)
