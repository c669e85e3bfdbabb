"""HDF5 artifacts: round trip, schema refusal, atomicity, inspect, shard extraction."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from extractors.frame.resnet_rmac import ExtractorSettings, FrameFeatureExtractor
from pipeline.core.hdf5 import ArtifactError, atomic_h5
from pipeline.steps.features.extract import extract_shard_videos as extract_shard
from pipeline.steps.features.settings import ExtractionSettings
from pipeline.store.features import (
    FEATURES_SCHEMA,
    PACK_NAME,
    VideoFeatures,
    read_pack,
    read_video_features,
    video_filename,
    write_video_features,
)
from pipeline.store.inspect import describe
from tests.videos import make_video


def _vf(n=20, d=512):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return VideoFeatures("topic/clip one", x, np.arange(n) / 15.0, {"source_path": "/x.mp4",
                                                                    "container_fps": 25.0})


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_round_trip(tmp_path, dtype):
    vf = _vf()
    p = write_video_features(tmp_path / video_filename(vf.video_id), vf, dtype)
    back = read_video_features(p)
    assert back.video_id == vf.video_id and back.features.dtype == np.dtype(dtype)
    np.testing.assert_allclose(back.features, vf.features, atol=1e-3 if dtype == "float16" else 0)
    np.testing.assert_array_equal(back.timestamps_s, vf.timestamps_s)
    assert back.attrs["container_fps"] == 25.0 and back.attrs["schema"] == FEATURES_SCHEMA
    assert [x.name for x in tmp_path.iterdir()] == [p.name]  # no temporary left behind
    with h5py.File(p, "r") as f:  # HDF5 1.8-compatible superblock
        assert f.id.get_create_plist().get_version()[0] == 0


def test_wrong_schema_or_version_is_refused(tmp_path):
    p = write_video_features(tmp_path / "v.h5", _vf())
    with h5py.File(p, "a") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(ArtifactError, match=r"v\.h5: videoalign/features schema version 99"):
        read_video_features(p)
    with h5py.File(p, "a") as f:
        f.attrs["schema"] = "something/else"
    with pytest.raises(ArtifactError, match="schema is 'something/else'"):
        read_video_features(p)
    (tmp_path / "junk.h5").write_bytes(b"junk")
    with pytest.raises(ArtifactError, match="not a readable HDF5 file"):
        read_video_features(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "nodata.h5", "w") as f:
        f.attrs["schema"], f.attrs["schema_version"] = FEATURES_SCHEMA, 1
    with pytest.raises(ArtifactError, match="missing dataset"):
        read_video_features(tmp_path / "nodata.h5")


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.h5"
    with pytest.raises(RuntimeError), atomic_h5(target) as f:
        f.create_dataset("x", data=np.zeros(10))
        raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_video_filenames_are_safe_and_unique():
    a, b = video_filename("a/b c.mp4"), video_filename("a_b c.mp4")
    assert a != b and "/" not in a and " " not in a and a.endswith(".h5")
    assert video_filename("vidéo/ü") != video_filename("vidéo/u")


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    videos = [("clip a", make_video(d / "a b.mp4", fps=25, n_frames=40, seed=1)),
              ("clip é", make_video(d / "é.mp4", fps=30, n_frames=45, seed=2)),
              ("broken", d / "broken.mp4")]
    (d / "broken.mp4").write_bytes(b"\x00" * 1000)
    ex = FrameFeatureExtractor(ExtractorSettings(weights="random", precision="float32"))
    out = d / "shard-000"
    res = extract_shard(videos, out, ex, ExtractionSettings(decode_workers=1, progress=False))
    return videos, ex, out, res


def test_shard_extraction_reports_failures_and_packs_the_rest(shard):
    _videos, _, out, res = shard
    assert sorted(res.written) == ["clip a", "clip é"]
    assert len(res.failures) == 1 and "broken.mp4" in res.failures[0].path
    assert res.failures[0].stage == "decode"
    pack = read_pack(out)
    assert pack.video_ids == ["clip a", "clip é"]
    assert pack.frame_counts.tolist() == [24, 23]  # 1.6 s and 1.5 s at 15 fps
    np.testing.assert_allclose(np.linalg.norm(pack.mean_frames, axis=1), 1.0, atol=1e-5)
    vf = read_video_features(out / pack.files[0])
    for key in ("source_fingerprint", "weights_id", "pca_id", "level", "container_fps",
                "input_size_wh", "sampling_rule", "package_version", "precision"):
        assert key in vf.attrs
    assert "created" not in vf.attrs  # no wall-clock time: same inputs, same bytes
    assert vf.attrs["level"] == 29 and vf.attrs["weights_id"] == "random(seed=0)"


def test_rerun_skips_finished_videos_and_redoes_a_deleted_one(shard):
    videos, ex, out, _ = shard
    files = read_pack(out).files
    (out / files[1]).unlink()
    res = extract_shard(videos, out, ex, ExtractionSettings(decode_workers=0, progress=False))
    assert res.skipped == ["clip a"] and res.written == ["clip é"]
    assert (out / PACK_NAME).is_file()


def test_inspect_cli(shard):
    _, _, out, _ = shard
    run = [sys.executable, "-m", "pipeline", "inspect"]
    txt = subprocess.run([*run, str(out)], capture_output=True, text=True, check=True).stdout
    assert "videoalign/features-pack" in txt and "clip a: 24 frames" in txt
    one = subprocess.run([*run, str(out), "--video", "clip é"], capture_output=True, text=True,
                         check=True).stdout
    assert "/features: shape (23, 512) float16" in one and "@container_fps = 30.0" in one
    bad = subprocess.run([*run, str(out / "nope.h5")], capture_output=True, text=True)
    assert bad.returncode == 2 and "file not found" in bad.stderr
    assert "feature norms" in describe(Path(out) / read_pack(out).files[0])


def test_inspect_one_video_of_a_descriptors_file_and_an_index_directory(shard, tmp_path):
    from index.faiss_index import build_faiss
    from pipeline.store.descriptors import compute_shard_descriptors
    from pipeline.store.index_files import write_index

    _, _, out, _ = shard
    desc = compute_shard_descriptors(out, tmp_path / "d.h5", "lamv", {"type": "tmk", "preset": "lamv"}, 30.0)
    one = describe(desc, video="clip é")
    assert "clip é (row 1 of 2)" in one and "n_frames: 23" in one and "mean_frames: shape (512,)" in one
    with pytest.raises(ArtifactError, match="no video 'nope' in this file"):
        describe(desc, video="nope")
    vectors = np.eye(2, 8, dtype=np.float32)
    idx = write_index(tmp_path / "index", build_faiss(vectors, "Flat"), ["clip a", "clip é"],
                      {"index_type": "Flat", "model": "lamv", "dataset": "t", "config": "{}", "config_source": "-",
                       "n_videos": 2})
    text = describe(idx)
    assert "videoalign/index" in text and "index.faiss:" in text and "shard incomplete" not in text
    assert "clip é (row 1 of 2)" in describe(idx, video="clip é")
