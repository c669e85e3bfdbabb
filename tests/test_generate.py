"""Generated datasets (``pipeline/generate.py``): the only footage two videos share is the annotated one."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.generate import build_align_dataset
from pipeline.synthetic import write_video

SOURCE_COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0)}


def solid(path: Path, colour: tuple[int, int, int], seconds: float) -> Path:
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[:] = colour
    return write_video(path, [frame] * round(seconds * 10), 10.0)


def first_frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24").astype(np.float32)


def pip_frames(out: Path) -> list[np.ndarray]:
    truth = json.loads((out / "truth.json").read_text())
    pips = [r for r in truth if r["attacks"].startswith("pip+")]
    assert len(pips) >= 3, "the seed gives fewer than 3 picture-in-picture recordings: pick another"
    return [first_frame(out / "videos" / "align" / f"{r['name']}.mp4") for r in pips]


@pytest.mark.parametrize("spare", [True, False], ids=["spare-clip", "all-sources"])
def test_picture_in_picture_backgrounds_are_unrelated_and_never_shared(tmp_path, spare):
    """A source's footage around an inset would be an unannotated copy of that source's recordings, and
    one background behind two insets an unannotated copy between those two recordings."""
    clips = [solid(tmp_path / "src" / f"{name}.mp4", rgb, 22.0) for name, rgb in SOURCE_COLOURS.items()]
    if spare:  # too short to be a source: pip backgrounds may come from it, once
        clips.append(solid(tmp_path / "src" / "blue.mp4", (0, 0, 255), 8.0))
    out = tmp_path / "data"
    build_align_dataset(clips, out, cameras=8, seed=1, min_source_s=20, max_length_s=4)
    frames = pip_frames(out)
    # the median colour of a frame is its background's (an inset covers at most 36 % of it)
    backgrounds = [np.median(f.reshape(-1, 3), axis=0) for f in frames]
    for bg in backgrounds:
        for rgb in SOURCE_COLOURS.values():  # colour attacks move a channel by at most ~30 % + 30
            assert np.abs(bg - np.array(rgb)).max() > 100, f"background {bg} is a source's footage"
    blue = [bg[2] > 140 and bg[0] < 60 and bg[1] < 60 for bg in backgrounds]
    assert sum(blue) == (1 if spare else 0)
    for i, a in enumerate(frames):  # no two recordings over the same background
        for b in frames[i + 1:]:
            assert np.abs(a - b).mean() > 20
