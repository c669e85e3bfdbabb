"""The storage abstraction: local targets, and object storage through Luigi's S3 targets."""

from __future__ import annotations

import shutil
from pathlib import Path

import luigi
import pytest

from pipeline.config.load import load_config
from pipeline.store.layout import Layout
from tasks.storage import storage_for
from tests.test_refresh import clip, overrides


def test_local_storage_is_the_work_directory(tmp_path):
    clip(tmp_path / "data" / "videos" / "v0.mp4", seed=1)
    cfg = load_config("folder", overrides(tmp_path))
    store = storage_for(cfg)
    p = Layout(cfg).feature_shard_dir(0) / "_pack.h5"
    t = store.target(p)
    assert isinstance(t, luigi.LocalTarget) and Path(t.path) == p
    assert store.fetch(p) == p and not store.remote
    assert store.key(p).endswith("/work/t/" + p.relative_to(cfg.work_dir).as_posix())
    with pytest.raises(ValueError, match="neither under work_dir"):
        store.key(Path("/elsewhere/x.h5"))


@pytest.mark.slow
def test_pipeline_on_object_storage(tmp_path, monkeypatch):
    moto = pytest.importorskip("moto")
    boto3 = pytest.importorskip("boto3")
    from tasks import BuildIndex

    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    for i in range(3):
        clip(tmp_path / "data" / "videos" / f"v{i}.mp4", seed=300 + i)
    ov = overrides(tmp_path, storage="s3://bench-bucket/videoalign")
    with moto.mock_aws():
        boto3.client("s3").create_bucket(Bucket="bench-bucket")
        assert luigi.build([BuildIndex(dataset="folder", overrides=ov)], local_scheduler=True, log_level="WARNING")
        cfg = load_config("folder", ov)
        keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="bench-bucket")["Contents"]}
        meta = "videoalign/" + storage_for(cfg).key(Layout(cfg).index_dir / "meta.h5").split("/videoalign/", 1)[1]
        assert meta in keys
        assert any(k.endswith("/_pack.h5") for k in keys) and any("/descriptors/" in k for k in keys)
        # the scratch copy can go: completion is judged on the object store
        shutil.rmtree(cfg.work_dir)
        assert BuildIndex(dataset="folder", overrides=ov).complete()
        # a fresh machine stages the index back in
        local = storage_for(cfg).fetch(Layout(cfg).index_dir)
        assert (local / "meta.h5").is_file() and (local / "index.faiss").is_file()
