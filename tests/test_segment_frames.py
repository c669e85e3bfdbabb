"""The segment-frame store (pipeline/store/segment_frames.py): frames at the compared rate, by id."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from index.localise import sample_frames
from pipeline.core.hdf5 import ArtifactError
from pipeline.steps.operations.verify import verify_path
from pipeline.store.segment_frames import SegmentFrames, write_sampled


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, 32)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize(("precision", "tol"), [("float16", 1e-3), ("int8", 1 / 254 + 1e-6)])
def test_frames_come_back_by_id_with_their_times_and_durations(tmp_path, precision, tol):
    videos = {f"v{i}": unit(n, i) for i, n in enumerate((45, 16, 31))}
    parts = [sample_frames(x, np.arange(len(x)) / 15.0, 8) for x in videos.values()]
    p = write_sampled(tmp_path / "frames" / "shard-0.h5", list(videos), parts, 8, precision)
    store = SegmentFrames([p], 8)
    got = store.sampled("v1", 8, 32)
    np.testing.assert_allclose(got.features, videos["v1"][::8], atol=tol)
    np.testing.assert_allclose(got.times_s, np.arange(0, 16, 8) / 15.0)
    assert got.duration_s == pytest.approx(16 / 15.0) and "v2" in store and "v9" not in store
    with pytest.raises(ArtifactError, match="32-dimensional frames, expected 64"):
        store.sampled("v0", 8, 64)
    with pytest.raises(ArtifactError, match="samples every 8 frames, not 4"):
        store.sampled("v0", 4)
    assert verify_path(tmp_path / "frames")[0] == []
    with h5py.File(p, "a") as f:  # a damaged row table is reported by verify
        f["start"][-1] = 3
    problems, _ = verify_path(tmp_path / "frames")
    assert len(problems) == 1 and "row table does not match" in problems[0]
