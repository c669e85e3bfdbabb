"""15-fps decoding of generated clips: sampling rule, resize, rotation, bad input."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest

from extractors.decode.reader import DecodeError, decode_video, probe, resized_size
from extractors.decode.timestamps import sampling_timestamps
from tests.videos import make_video, set_rotation, write_audio_only, write_image


@pytest.mark.parametrize("fps", [10, 12, 24, 25, 29.97, 30, 60])
def test_timestamps_follow_the_spec_rule(tmp_path, fps):
    path = make_video(tmp_path / "v.mp4", fps=fps, n_frames=round(fps * 3))
    d = decode_video(path)
    assert d.info.container_fps == pytest.approx(fps, rel=1e-3)
    expected = sampling_timestamps(len(d.timestamps_s), d.info.container_fps) / 15
    np.testing.assert_allclose(d.timestamps_s, expected, atol=1e-6)
    assert len(d.timestamps_s) == 45  # 3 s at 15 fps
    assert d.frames.shape == (45, 82, 145, 3) and d.frames.dtype == np.uint8
    if fps < 15:  # sources below 15 fps repeat frames
        assert len(np.unique(d.source_index)) < len(d.source_index)


def test_non_zero_start_pts_is_ignored(tmp_path):
    a = decode_video(make_video(tmp_path / "a.mp4", fps=25, n_frames=40))
    b = decode_video(make_video(tmp_path / "b.mp4", fps=25, n_frames=40, start_pts=5 * 90000))
    np.testing.assert_allclose(a.timestamps_s, b.timestamps_s)
    np.testing.assert_array_equal(a.source_index, b.source_index)


def test_variable_frame_rate_picks_the_nearest_frame(tmp_path):
    rng = np.random.default_rng(3)
    times = np.cumsum(np.r_[0, rng.uniform(0.01, 0.12, 59)])
    d = decode_video(make_video(tmp_path / "vfr.mp4", times=times))
    tb = 1 / 90000
    real = np.round(times / tb) * tb
    for n, (t, src) in enumerate(zip(d.timestamps_s, d.source_index, strict=True)):
        assert t == pytest.approx(real[src], abs=1e-9)
        dist = np.abs(real - n / 15)
        assert dist[src] <= dist.min() + 1e-9


def test_resize_rule_and_decoder_scaler(tmp_path):
    assert resized_size(1280, 720) == (145, 82)
    assert resized_size(640, 480) == (126, 95)
    assert resized_size(720, 1280) == (82, 145)
    d = decode_video(make_video(tmp_path / "v.mp4", fps=15, n_frames=3, width=640, height=480))
    assert d.frames.shape[1:] == (95, 126, 3)
    d = decode_video(make_video(tmp_path / "v.mp4", fps=15, n_frames=3), image_area=48000)
    assert d.frames.shape[1:] == (*resized_size(160, 90, 48000)[::-1], 3)


def test_rotation_metadata_is_applied(tmp_path):
    frames = []
    for _ in range(5):
        img = np.zeros((90, 160, 3), np.uint8)
        img[:, :40] = 255  # white band on the left
        frames.append(img)
    path = make_video(tmp_path / "r.mp4", frames=frames)
    set_rotation(path, 90)  # display: rotate 90 degrees clockwise (a portrait phone video)
    d = decode_video(path)
    assert d.frames.shape[1:3] == (145, 82)  # portrait
    grey = d.frames[0].mean(-1)
    assert grey[:30].mean() > 200 and grey[-30:].mean() < 50  # the band is now on top


def test_probe_reports_container_facts(tmp_path):
    info = probe(make_video(tmp_path / "v.mp4", fps=30, n_frames=60))
    assert (info.width, info.height, info.codec) == (160, 90, "h264")
    assert info.container_fps == 30.0 and info.duration_s == pytest.approx(2.0, abs=0.05)


@pytest.mark.parametrize(("kind", "cause"), [
    ("missing", "file not found"),
    ("empty", "empty file"),
    ("random", "cannot read the container"),
    ("text", "cannot read the container"),
    ("audio", "no video stream (streams: audio)"),
    ("image", "an image, not a video"),
    ("truncated", "cannot read the container: not a video, truncated"),
])
def test_bad_input_gives_one_clear_error(tmp_path, kind, cause):
    path = tmp_path / f"bad {kind} é.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(50_000))
    elif kind == "text":
        path.write_text("hello, I am not a video\n" * 100)
    elif kind == "audio":
        write_audio_only(path)
    elif kind == "image":
        write_image(path)
    elif kind == "truncated":
        good = make_video(tmp_path / "good.mp4", fps=25, n_frames=50).read_bytes()
        path.write_bytes(good[: len(good) // 3])  # header only, moov atom gone
    with pytest.raises(DecodeError) as err:
        decode_video(path)
    msg = str(err.value)
    assert msg.startswith(str(path) + ": ") and cause in msg
    assert "\n" not in msg


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path):
    path = make_video(tmp_path / "v.mp4")
    path.chmod(0)
    with pytest.raises(DecodeError, match="permission denied"):
        decode_video(path)


def test_corrupt_packets_in_the_middle_are_skipped(tmp_path):
    path = make_video(tmp_path / "v.mp4", fps=25, n_frames=100, codec="mpeg4")
    data = bytearray(path.read_bytes())
    mid = data.find(b"mdat") + len(data) // 2
    rng = np.random.default_rng(0)
    for k in range(5):
        pos = mid + k * 1500
        data[pos:pos + 300] = rng.bytes(300)
    path.write_bytes(bytes(data))
    d = decode_video(path)  # warns, does not raise
    assert len(d.timestamps_s) >= 50
    assert d.frames.shape[1:] == (82, 145, 3)


def test_truncated_mid_stream_keeps_what_decodes(tmp_path):
    path = make_video(tmp_path / "v.mp4", fps=25, n_frames=100, faststart=True)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    d = decode_video(path)
    assert 10 <= len(d.timestamps_s) < 60


def test_one_frame_video(tmp_path):
    d = decode_video(make_video(tmp_path / "one.mp4", fps=25, n_frames=1))
    assert len(d.timestamps_s) == 1 and d.timestamps_s[0] == 0.0


def test_huge_declared_resolution_is_refused(tmp_path):
    path = make_video(tmp_path / "v.mp4", fps=25, n_frames=2)
    with pytest.raises(DecodeError, match="exceeds the limit"):
        decode_video(path, max_pixels=100 * 50)


def test_frame_rate_fraction_is_kept(tmp_path):
    info = probe(make_video(tmp_path / "v.mp4", fps=Fraction(30000, 1001), n_frames=10))
    assert info.container_fps == pytest.approx(29.97, abs=1e-3)


def test_hardware_decoding_request_falls_back_to_software(tmp_path, caplog, monkeypatch):
    """No GPU here: software fallback with the same frames, and the fallback is said once per process (a
    corpus of a million files gets one warning, not a million)."""
    paths = [make_video(tmp_path / f"v{i}.mp4", fps=25, n_frames=30, seed=i) for i in range(3)]
    ref = decode_video(paths[0])
    import extractors.decode

    for kind in ("cuda", "no-such-device"):
        monkeypatch.setattr(extractors.decode.reader, "_WARNED", set())  # a fresh process
        with caplog.at_level("WARNING", logger="extractors.decode.reader"):
            caplog.clear()
            for p in paths:
                d = decode_video(p, hwaccel=kind)
        np.testing.assert_array_equal(d.timestamps_s, ref.timestamps_s)
        assert np.abs(d.frames.astype(int) - decode_video(paths[-1]).frames.astype(int)).mean() < 2
        warned = [r for r in caplog.records if "decoding in software" in r.getMessage()]
        assert len(warned) == 1, [r.getMessage() for r in warned]
