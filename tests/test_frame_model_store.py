"""The selfsup network's files: loaded with ``weights_only=True``, damaged files refused, and a
training interrupted at a checkpoint resumes (through the pipeline step) to the same network."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from extractors.frame.selfsup import CopyNet, FrameModel, TrainSettings
from extractors.runtime import failpoints
from pipeline.config.load import load_config
from pipeline.config.schema import ConfigError
from pipeline.core.errors import StepError
from pipeline.core.hdf5 import ArtifactError
from pipeline.steps.build import build
from pipeline.steps.features.fitting import train_frame_model
from pipeline.store.features import read_pack, read_video_features
from pipeline.store.fitted.frame_model import load_frame_model, load_training_state, save_frame_model
from pipeline.store.layout import Layout
from tests.test_refresh import clip

TINY = ("features.extractor=selfsup;frame_model.steps=6;frame_model.input_size=48;frame_model.width=8;"
        "frame_model.dim=16;frame_model.batch=8;frame_model.checkpoint_every=2;frame_model.frames_per_video=8;"
        "frame_model.device=cpu")


def model() -> FrameModel:
    torch.manual_seed(0)
    s = TrainSettings(dim=16, width=8, input_size=48)
    return FrameModel.from_training(CopyNet(16, 8, 48), s, {"dataset": "x"})


def test_round_trip_and_damage_detection(tmp_path):
    m = model()
    path = save_frame_model(m, tmp_path / "m.pt")
    back = load_frame_model(path)
    assert back.model_id == m.model_id and back.provenance["dataset"] == "x"
    assert back.provenance["training"]["dim"] == 16
    raw = bytearray(path.read_bytes())
    # flip one byte inside the largest tensor's storage: the recorded hash no longer matches
    data = torch.load(path, weights_only=True)
    big = max(data["state"].values(), key=lambda t: t.numel()).numpy().tobytes()
    at = bytes(raw).find(big[:64])
    assert at > 0
    raw[at + 10] ^= 0xFF
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match=r"damaged|not a readable"):
        load_frame_model(damaged)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ArtifactError, match=r"junk\.pt"):
        load_frame_model(tmp_path / "junk.pt")


def test_a_pickled_object_is_never_executed(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))

    path = tmp_path / "evil.pt"
    with path.open("wb") as f:
        pickle.dump({"schema": "videoalign/frame-model", "x": Evil()}, f)
    with pytest.raises(ArtifactError):
        load_frame_model(path)
    assert not (tmp_path / "PWNED").exists() and not __import__("pathlib").Path("PWNED").exists()


@pytest.fixture
def corpus(tmp_path):
    for i in range(3):
        clip(tmp_path / "data" / "videos" / f"v{i}.mp4", seed=60 + i, seconds=1.5)
    return tmp_path


def layout(corpus) -> Layout:
    return Layout(load_config("folder", f"dataset.root={corpus / 'data'};work_dir={corpus / 'work'};"
                                        f"reports_dir={corpus / 'reports'};{TINY}"))


@pytest.mark.slow
def test_training_interrupted_at_a_checkpoint_resumes_to_the_same_network(corpus, tmp_path, monkeypatch):
    lay = layout(corpus)
    monkeypatch.setenv(failpoints.ENV, "train_frame_model.checkpoint=raise@2")
    failpoints.reset()
    with pytest.raises(failpoints.FailpointError):
        train_frame_model(lay, show_progress=False)
    assert not lay.frame_model_path.exists()  # nothing half-written
    assert lay.frame_model_training_path.is_file()
    monkeypatch.delenv(failpoints.ENV)
    failpoints.reset()
    train_frame_model(lay, show_progress=False)
    resumed = load_frame_model(lay.frame_model_path)
    assert not lay.frame_model_training_path.exists()
    # an uninterrupted run elsewhere gives the same network
    lay.frame_model_path.rename(tmp_path / "resumed.pt")
    train_frame_model(lay, show_progress=False)
    assert load_frame_model(lay.frame_model_path).model_id == resumed.model_id
    assert load_training_state(tmp_path / "missing.pt", {}) is None


def _features(lay: Layout, video: str):
    pack = read_pack(lay.feature_shard_dir(0))
    return read_video_features(lay.feature_shard_dir(0) / pack.files[pack.video_ids.index(video)]).features


@pytest.mark.slow
def test_a_network_trained_elsewhere_is_used_as_it_is(corpus, tmp_path):
    """``frame_model.checkpoint``: another corpus uses a network trained on this one without training
    anything, and a video gets exactly the features it gets where the network was trained."""
    home = Layout(load_config("folder", f"dataset.root={corpus / 'data'};work_dir={corpus / 'work'};"
                                        f"reports_dir={corpus / 'reports'};{TINY};features.pca=none"))
    build(home, until="features", show_progress=False)
    elsewhere = tmp_path / "models" / "selfsup-from-home.pt"
    elsewhere.parent.mkdir()
    shutil.copy(home.frame_model_path, elsewhere)
    other = tmp_path / "other"
    (other / "data" / "videos").mkdir(parents=True)
    shutil.copy(corpus / "data" / "videos" / "v1.mp4", other / "data" / "videos" / "v1.mp4")
    clip(other / "data" / "videos" / "w0.mp4", seed=90, seconds=1.5)
    ov = (f"dataset.root={other / 'data'};work_dir={other / 'work'};reports_dir={other / 'reports'};{TINY};"
          f"features.pca=none;frame_model.checkpoint={elsewhere}")
    lay = Layout(load_config("folder", ov))
    summary = build(lay, until="features", show_progress=False)
    assert "TrainFrameModel" not in {n.split("(")[0] for n in summary.ran}
    assert not list((other / "work").rglob("selfsup-*.pt"))  # nothing trained here
    assert np.array_equal(_features(lay, "v1"), _features(home, "v1"))
    missing = Layout(load_config("folder", ov.replace(str(elsewhere), str(tmp_path / "nowhere.pt"))
                                 .replace(str(other / "work"), str(tmp_path / "work3"))))
    with pytest.raises(StepError, match=r"nowhere\.pt: the selfsup network 'frame_model.checkpoint' names"):
        build(missing, until="features", show_progress=False)
    with pytest.raises(ConfigError, match=r"'frame_model.checkpoint' must be trained or the path"):
        load_config("folder", f"{ov};frame_model.checkpoint=yesterday")
