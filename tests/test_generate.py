"""Generated datasets (``pipeline/datasets/generate.py``): the only footage two videos share is the annotated one."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.datasets.generate import Clip, UnrelatedFootage, build_align_dataset, build_copy_dataset
from pipeline.datasets.synthetic import write_video

SOURCE_COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0)}


def solid(path: Path, colour: tuple[int, int, int], seconds: float) -> Path:
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[:] = colour
    return write_video(path, [frame] * round(seconds * 10), 10.0)


def numbered_video(path: Path, k: int, seconds: float) -> Path:
    """Unrelated footage whose colour says which clip (red) and which frame (green) it is; blue 200 marks
    it (the sources have no blue)."""
    frames = [np.full((48, 64, 3), (120 * k, 2 * i, 200), np.uint8) for i in range(round(seconds * 10))]
    return write_video(path, frames, 10.0)


def frame_colours(path: Path) -> list[np.ndarray]:
    """The median colour of every frame (an inset covers at most 36 % of a frame)."""
    with av.open(str(path)) as c:
        return [np.median(f.to_ndarray(format="rgb24").reshape(-1, 3), axis=0) for f in c.decode(video=0)]


def numbered_moments(colours: list[np.ndarray]) -> set[tuple[int, int]]:
    """(clip, frame number) of the frames that show numbered footage."""
    return {(int(r > 60), round(float(g) / 2)) for r, g, b in colours if abs(b - 200) < 25}


def assert_no_moment_shared(moments: dict[str, set[tuple[int, int]]]) -> None:
    """No two videos show the same moment (give or take a frame of compression noise)."""
    names = sorted(moments)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = {(k, n + d) for k, n in moments[a] for d in (-1, 0, 1)} & moments[b]
            assert len(shared) <= 4, f"{a} and {b} both show moments {sorted(shared)}"


@pytest.mark.slow
@pytest.mark.parametrize("spare", [True, False], ids=["spare-clip", "all-sources"])
def test_picture_in_picture_backgrounds_are_unrelated_and_never_shared(tmp_path, spare):
    """A source's footage around an inset would be an unannotated copy of that source's recordings, and
    one background behind two insets an unannotated copy between those two recordings."""
    clips = [solid(tmp_path / "src" / f"{name}.mp4", rgb, 22.0) for name, rgb in SOURCE_COLOURS.items()]
    if spare:  # too short to be a source: pip backgrounds come from it first
        clips.append(numbered_video(tmp_path / "src" / "spare.mp4", 0, 10.0))
    out = tmp_path / "data"
    build_align_dataset(clips, out, cameras=8, seed=4, min_source_s=20, max_length_s=4)
    pips = [r["name"] for r in json.loads((out / "truth.json").read_text()) if r["attacks"].startswith("pip+")]
    assert len(pips) >= 2, "the seed gives fewer than 2 picture-in-picture recordings: pick another"
    colours = {n: frame_colours(out / "videos" / "align" / f"{n}.mp4") for n in pips}
    for n, cs in colours.items():
        for rgb in SOURCE_COLOURS.values():  # colour attacks move a channel by at most ~30 % + 30
            assert np.abs(cs[0] - np.array(rgb)).max() > 100, f"{n}: the background is a source's footage"
    if spare:
        moments = {n: numbered_moments(cs) for n, cs in colours.items()}
        assert moments[pips[0]], "the first background is not the spare clip"
        assert_no_moment_shared(moments)
    else:  # rendered scenes, one per recording
        for i, a in enumerate(pips):
            for b in pips[i + 1:]:
                assert np.abs(colours[a][0] - colours[b][0]).max() > 20, f"{a} and {b}: one background"


def numbered_clip(n: int, fps: float = 10.0) -> Clip:
    """``n`` tiny frames whose pixels hold their frame number (two bytes: high, low)."""
    frames = [np.full((4, 4, 3), (i // 256, i % 256, 0), np.uint8) for i in range(n)]
    return Clip(Path(f"numbered-{n}"), frames, fps)


def frame_numbers(clip: Clip) -> set[int]:
    return {int(f[0, 0, 0]) * 256 + int(f[0, 0, 1]) for f in clip.frames}


def test_unrelated_footage_hands_out_every_moment_once():
    footage = UnrelatedFootage([numbered_clip(300), numbered_clip(200)], seed=0)
    rng = np.random.default_rng(0)
    seen: dict[str, set[int]] = {}
    spans = [footage.take(s, rng) for s in (3, 2.5, 4, 1, 3, 2)]
    for c in spans:
        got = frame_numbers(c)
        assert got.isdisjoint(seen.get(str(c.path), set())), "a moment was handed out twice"
        seen.setdefault(str(c.path), set()).update(got)
    assert [round(c.duration, 1) for c in spans] == [3, 2.5, 4, 1, 3, 2]  # exact lengths while free
    long = footage.take(30, rng)  # no free 30 s: the longest free span instead, not a used moment
    assert footage.MIN_S <= long.duration < 30 and frame_numbers(long).isdisjoint(seen[str(long.path)])
    while not str(long.path).startswith("synthetic"):  # used up: rendered scenes, each its own
        long = footage.take(5, rng)
    other = footage.take(5, rng)
    assert str(other.path).startswith("synthetic") and other.path != long.path
    assert not np.array_equal(other.frames[0], long.frames[0])


@pytest.mark.slow
def test_copies_never_share_unrelated_footage(tmp_path):
    """Fillers around copies and picture-in-picture backgrounds: no moment of a filler clip in two videos."""
    sources = [solid(tmp_path / "src" / f"{n}.mp4", rgb, 20.0) for n, rgb in SOURCE_COLOURS.items()]
    fillers = [numbered_video(tmp_path / "fill" / f"f{k}.mp4", k, 12.0) for k in range(2)]
    out = tmp_path / "data"
    assert build_copy_dataset(sources, fillers, out, n_copies=6, n_hard=1, seed=0)
    moments = {v.stem: numbered_moments(frame_colours(v)) for v in sorted((out / "videos" / "bench").glob("*.mp4"))
               if not v.is_symlink()}
    assert sum(map(len, moments.values())) > 50, "the fillers are not in the copies"
    assert_no_moment_shared(moments)


def test_a_camera_view_is_a_panning_window_of_the_scene():
    """``view``: each camera films part of the scene (a zoomed window), its own part, and pans."""
    from pipeline.datasets.generate import geometric

    h, w = 60, 80
    xs, ys = np.meshgrid(np.arange(w), np.arange(h))
    scene = np.stack([xs * 3, ys * 4, np.zeros_like(xs)], axis=-1).astype(np.uint8)  # each pixel says where it is
    frames = [scene.copy() for _ in range(30)]

    def window(f: np.ndarray) -> tuple[float, float, float, float]:
        """The scene columns and rows a frame shows: (x0, x1, y0, y1)."""
        return f[..., 0].min() / 3, f[..., 0].max() / 3, f[..., 1].min() / 4, f[..., 1].max() / 4

    views = [geometric("view", frames, 15.0, None, np.random.default_rng(s)) for s in range(4)]
    for v in views:
        assert len(v) == 30 and v[0].shape == (h, w, 3)
        x0, x1, y0, y1 = window(v[0])
        assert 0.3 * w <= x1 - x0 <= 0.7 * w and 0.3 * h <= y1 - y0 <= 0.7 * h  # 40-65 % of each side
        assert window(v[0]) != window(v[-1])  # it pans
    starts = {tuple(round(c) for c in window(v[0])) for v in views}
    assert len(starts) == 4  # every camera has its own viewpoint


@pytest.mark.slow
def test_views_give_every_camera_its_own_viewpoint(tmp_path):
    clips = [solid(tmp_path / "src" / f"{name}.mp4", rgb, 22.0) for name, rgb in SOURCE_COLOURS.items()]
    recs = build_align_dataset(clips, tmp_path / "data", cameras=3, seed=1, min_source_s=20, max_length_s=3,
                               views=True)
    assert len(recs) == 6 and all(r.attacks.startswith("view+") for r in recs)
    assert (tmp_path / "data" / "gt_align.align").read_text().count("\n") == 6


def test_a_video_that_fails_half_way_leaves_nothing_behind(tmp_path):
    """The generators' videos are written to a temporary sibling and renamed: an encoder that fails after
    some frames (here a frame with 4 channels) leaves neither the video nor a temporary file."""
    good = np.zeros((32, 48, 3), np.uint8)
    with pytest.raises(ValueError):
        write_video(tmp_path / "v.mp4", [good] * 5 + [np.zeros((32, 48, 4), np.uint8)], 10.0)
    assert list(tmp_path.iterdir()) == []
    out = write_video(tmp_path / "v.mkv", [good] * 5, 10.0)
    assert [p.name for p in tmp_path.iterdir()] == ["v.mkv"]
    with av.open(str(out)) as c:
        assert c.format.name.startswith("matroska") and sum(1 for _ in c.decode(video=0)) == 5
    with pytest.raises(ValueError, match="unknown video suffix"):
        write_video(tmp_path / "v.xyz", [good], 10.0)
