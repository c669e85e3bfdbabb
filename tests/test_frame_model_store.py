"""The selfsup network's files: loaded with ``weights_only=True``, damaged files refused, and a
training interrupted at a checkpoint resumes (through the pipeline step) to the same network."""

from __future__ import annotations

import pytest
import torch

from extractors.frame.selfsup import CopyNet, FrameModel, TrainSettings
from extractors.runtime import failpoints
from pipeline.config.load import load_config
from pipeline.core.hdf5 import ArtifactError
from pipeline.steps.features.fitting import train_frame_model
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
