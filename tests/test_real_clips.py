"""Checks on the real footage of ../shared/videos (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from extractors.decode.reader import decode_video, to_model_input
from extractors.decode.timestamps import sampling_timestamps
from extractors.frame.pca import train_pca
from extractors.frame.resnet_rmac import ExtractorSettings, FrameFeatureExtractor

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not VIDEOS.is_dir(), reason=f"{VIDEOS} not present")]


def clip(prefix: str) -> Path:
    found = sorted(VIDEOS.glob(f"{prefix}_*.mp4"))
    if not found:
        pytest.skip(f"clip {prefix} not in {VIDEOS}")
    return found[0]


@pytest.mark.parametrize(("prefix", "fps", "size"), [("22", 30.0, (95, 126)), ("01", 10.0, (95, 126)),
                                                     ("18", 25.0, (82, 145))])
def test_real_clips_follow_the_sampling_rule(prefix, fps, size):
    d = decode_video(clip(prefix))
    assert d.info.container_fps == pytest.approx(fps, rel=1e-3)
    expected = sampling_timestamps(len(d.timestamps_s), d.info.container_fps) / 15
    np.testing.assert_allclose(d.timestamps_s, expected, atol=1e-3)
    assert d.frames.shape[1:3] == size
    assert len(d.timestamps_s) == pytest.approx(d.info.duration_s * 15, abs=2)


def _reencode(src: Path, dst: Path, scale: float) -> Path:
    """A copy attack: rescaled and re-encoded with another codec."""
    with av.open(str(src)) as inp:
        frames = [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]
        rate = inp.streams.video[0].average_rate
    h, w = frames[0].shape[:2]
    W, H = int(w * scale) // 2 * 2, int(h * scale) // 2 * 2
    with av.open(str(dst), "w") as out:
        s = out.add_stream("mpeg4", rate=rate)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        for img in frames:
            f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(width=W, height=H)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return dst


def test_reencoded_real_copy_is_closer_than_another_clip(tmp_path):
    a, b = clip("21"), clip("22")
    copy = _reencode(a, tmp_path / "copy.mp4", 0.5)
    ex = FrameFeatureExtractor(ExtractorSettings(weights="random", precision="float32"))
    frames = {k: decode_video(p).frames for k, p in (("a", a), ("b", b), ("c", copy))}
    regional = [ex.regional(torch.from_numpy(to_model_input(frames[k]))).numpy() for k in ("a", "b")]
    pca = train_pca(np.concatenate(regional), {"corpus": "real clips 21, 22"})
    white = FrameFeatureExtractor(ExtractorSettings(weights="random", precision="float32"), pca)
    f = {k: white(torch.from_numpy(to_model_input(v))).numpy() for k, v in frames.items()}
    n = min(len(f["a"]), len(f["c"]), len(f["b"]))
    same = float((f["a"][:n] * f["c"][:n]).sum(1).mean())
    other = float((f["a"][:n] * f["b"][:n]).sum(1).mean())
    assert same > other + 0.2, (same, other)
