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


def background(path: Path) -> np.ndarray:
    """The median colour of a recording's first frame (an inset covers at most 36 % of it)."""
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    return np.median(frame.reshape(-1, 3), axis=0)


def pip_backgrounds(out: Path) -> list[np.ndarray]:
    truth = json.loads((out / "truth.json").read_text())
    pips = [r for r in truth if r["attacks"].startswith("pip+")]
    assert pips, "the seed gives no picture-in-picture recording: pick another"
    return [background(out / "videos" / "align" / f"{r['name']}.mp4") for r in pips]


@pytest.mark.parametrize("spare", [True, False], ids=["spare-clip", "all-sources"])
def test_picture_in_picture_never_shows_another_source(tmp_path, spare):
    """A source's footage around an inset would be an unannotated copy of that source's recordings."""
    clips = [solid(tmp_path / "src" / f"{name}.mp4", rgb, 22.0) for name, rgb in SOURCE_COLOURS.items()]
    if spare:  # too short to be a source: the only footage pip backgrounds may come from
        clips.append(solid(tmp_path / "src" / "blue.mp4", (0, 0, 255), 8.0))
    out = tmp_path / "data"
    build_align_dataset(clips, out, cameras=6, seed=1, min_source_s=20, max_length_s=5)
    for bg in pip_backgrounds(out):
        for rgb in SOURCE_COLOURS.values():  # colour attacks move a channel by at most ~30 % + 30
            assert np.abs(bg - np.array(rgb)).max() > 100, f"background {bg} is a source's footage"
        if spare:
            assert bg[2] > 140 and bg[0] < 60 and bg[1] < 60, f"background {bg} is not the spare clip"
