"""ResNet-34 trunk, weights handling, R-MAC + PCA frame features on generated clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from extractors.decode.reader import decode_video, to_model_input
from extractors.frame.pca import PCAError, PCAWhitening, load_published, train_pca
from extractors.frame.resnet import (
    MAX_LEVEL,
    ResNet34Trunk,
    WeightsNotFoundError,
    build_trunk,
    level_position,
    resolve_weights,
)
from extractors.frame.resnet_rmac import ExtractorSettings, FrameFeatureExtractor
from pipeline.store.fitted.pca import load_pca, save_pca
from tests.videos import make_video, pattern_frame


@pytest.mark.parametrize(("level", "channels", "stride"), [
    (1, 64, 2), (2, 64, 4), (7, 64, 4), (8, 128, 8), (10, 128, 8), (15, 128, 8),
    (16, 256, 16), (27, 256, 16), (28, 512, 32), (29, 512, 32), (33, 512, 32)])
def test_truncation_levels(level, channels, stride):
    torch.manual_seed(0)
    model = ResNet34Trunk(level).eval()
    with torch.inference_mode():
        y = model(torch.randn(1, 3, 64, 128))
    assert y.shape[1] == channels == model.out_channels
    assert y.shape[2:] == (int(np.ceil(64 / stride)), int(np.ceil(128 / stride)))


def test_level_29_is_the_output_of_layer4_block0():
    torch.manual_seed(0)
    full = ResNet34Trunk(33).eval()
    cut = ResNet34Trunk(29).eval()
    cut.load_state_dict(full.state_dict())
    x = torch.randn(2, 3, 82, 145)
    with torch.inference_mode():
        ref = full.maxpool(full.relu(full.bn1(full.conv1(x))))
        ref = full.layer4[0](full.layer3(full.layer2(full.layer1(ref))))
        out = cut(x)
    assert out.shape == (2, 512, 3, 5)  # spec: a 3x5 map for 145x82 input
    torch.testing.assert_close(out, ref)
    assert level_position(29) == (3, 0, 1)
    with pytest.raises(ValueError):
        ResNet34Trunk(MAX_LEVEL + 1)


def test_matches_torchvision_when_it_imports():
    tv = pytest.importorskip("torchvision.models")
    ref = tv.resnet34(weights=None).eval()
    ours = ResNet34Trunk(33).eval()
    ours.load_state_dict({k: v for k, v in ref.state_dict().items() if not k.startswith("fc.")})
    x = torch.randn(1, 3, 96, 128)
    with torch.inference_mode():
        r = ref.layer4(ref.layer3(ref.layer2(ref.layer1(ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))))))
        torch.testing.assert_close(ours(x), r)


def test_missing_imagenet_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFoundError) as err:
        resolve_weights("imagenet", download=False)
    msg = str(err.value)
    assert "resnet34-b627a593.pth" in msg and str(tmp_path) in msg and "weights: random" in msg
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        resolve_weights(str(tmp_path / "nope.pth"))


def test_weights_load_from_the_hub_cache_and_from_a_path(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(5)
    src = ResNet34Trunk(33)
    state = dict(src.state_dict())
    state["fc.weight"] = torch.zeros(1000, 512)  # torchvision checkpoints carry the classifier
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(state, cache / "resnet34-b627a593.pth")
    model, wid = build_trunk(29, "imagenet", download=False)
    assert wid.startswith("resnet34-b627a593.pth:sha256:")
    x = torch.randn(1, 3, 64, 64)
    src.level = 29
    with torch.inference_mode():
        torch.testing.assert_close(model(x), src.eval()(x))
    _model2, wid2 = build_trunk(29, str(cache / "resnet34-b627a593.pth"))
    assert wid2 == wid
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a ResNet-34 state dict"):
        build_trunk(29, str(tmp_path / "bad.pth"))


@pytest.fixture(scope="module")
def extractor():
    return FrameFeatureExtractor(ExtractorSettings(weights="random", precision="float32"))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    a = make_video(d / "a.mp4", fps=25, n_frames=75, seed=1)
    # the same pictures, upscaled 2x and re-encoded with another codec
    frames = [np.repeat(np.repeat(pattern_frame(i, 160, 90, seed=1, fps=25), 2, 0), 2, 1)
              for i in range(75)]
    a_big = make_video(d / "a_big.mp4", fps=25, frames=frames, width=320, height=180, codec="mpeg4")
    b = make_video(d / "b.mp4", fps=25, n_frames=75, seed=2)
    return {"a": a, "a_copy": a_big, "b": b}


def _features(extractor, path):
    return extractor(torch.from_numpy(to_model_input(decode_video(path).frames))).numpy()


def test_features_are_unit_norm_and_deterministic(extractor, clips):
    f1 = _features(extractor, clips["a"])
    f2 = _features(extractor, clips["a"])
    assert f1.shape == (45, 512)
    np.testing.assert_allclose(np.linalg.norm(f1, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(f1, f2)


@pytest.mark.slow
def test_a_reencoded_rescaled_copy_is_closer_than_another_clip(extractor, clips):
    fa, fc, fb = (_features(extractor, clips[k]) for k in ("a", "a_copy", "b"))
    # PCA trained on these clips' regional vectors (no published PCA here)
    frames = np.concatenate([decode_video(clips[k]).frames for k in ("a", "b")])
    pca = train_pca(extractor.regional(torch.from_numpy(to_model_input(frames))).numpy(),
                    {"corpus": "test clips"})
    white = FrameFeatureExtractor(ExtractorSettings(weights="random", precision="float32"), pca)
    fa, fc, fb = (_features(white, clips[k]) for k in ("a", "a_copy", "b"))
    same = (fa * fc).sum(1).mean()
    other = (fa * fb).sum(1).mean()
    assert same > other + 0.2, (same, other)


@pytest.mark.slow
def test_precision_is_a_setting_not_a_measurement(clips):
    """``auto`` means float32 on the CPU (decided from the settings, never from the frames), so a
    re-run after an interruption computes bit-identical features; bfloat16 is an explicit choice."""
    from extractors.frame.resnet_rmac import resolve_precision

    assert resolve_precision("auto", torch.device("cpu")) == "float32"
    assert resolve_precision("bfloat16", torch.device("cpu")) == "bfloat16"
    with pytest.raises(ValueError, match="precision must be"):
        resolve_precision("fast", torch.device("cpu"))
    auto = FrameFeatureExtractor(ExtractorSettings(weights="random", precision="auto"))
    ref = FrameFeatureExtractor(ExtractorSettings(weights="random", precision="float32"))
    assert auto.precision == "float32"
    # the first batch seen does not change anything: b first, then a, equals a alone
    _features(auto, clips["b"])
    np.testing.assert_array_equal(_features(auto, clips["a"]), _features(ref, clips["a"]))
    low = FrameFeatureExtractor(ExtractorSettings(weights="random", precision="bfloat16"))
    assert low.precision == "bfloat16"
    assert float((_features(low, clips["a"]) * _features(ref, clips["a"])).sum(1).min()) > 0.9


def test_pca_round_trip_and_published_format(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 16)).astype(np.float32) * np.linspace(1, 5, 16, dtype=np.float32)
    pca = train_pca(x, {"corpus": "random"})
    white = (x - pca.mean) @ pca.dvt.T
    cov = white.T @ white
    np.testing.assert_allclose(cov, np.eye(16), atol=1e-3)  # whitened on the training data
    p = save_pca(pca, tmp_path / "pca.h5")
    back = load_pca(p)
    np.testing.assert_array_equal(back.dvt, pca.dvt)
    assert back.provenance["corpus"] == "random" and back.pca_id == pca.pca_id
    torch.save(torch.from_numpy(pca.mean), tmp_path / "YFCC_mean_resnet34_29.t7")
    torch.save(torch.from_numpy(pca.dvt), tmp_path / "YFCC_Dvt_resnet34_29.t7")
    pub = load_published(tmp_path / "YFCC", 29)
    np.testing.assert_array_equal(pub.mean, pca.mean)
    with pytest.raises(PCAError, match="PCA file not found"):
        load_published(tmp_path / "NOPE", 29)
    (tmp_path / "X_mean_resnet34_29.t7").write_bytes(b"not a tensor")
    with pytest.raises(PCAError, match="not a torch tensor file"):
        load_published(tmp_path / "X", 29)
    with pytest.raises(PCAError):
        PCAWhitening(np.zeros((1, 4)), np.zeros((4, 5)))


def test_pca_trained_on_a_corpus_records_provenance(clips, tmp_path):
    from pipeline.steps.features.fitting import train_pca_on_videos
    from pipeline.steps.features.settings import ExtractionSettings

    ex = FrameFeatureExtractor(ExtractorSettings(weights="random", precision="float32"))
    (tmp_path / "bad.mp4").write_bytes(b"x")
    pca = train_pca_on_videos([clips["a"], clips["b"], tmp_path / "bad.mp4"], ex,
                              ExtractionSettings(progress=False), frames_per_video=20,
                              provenance={"dataset": "unit"})
    assert pca.dvt.shape == (512, 512)
    assert pca.provenance["videos"] == 2 and pca.provenance["dataset"] == "unit"
    assert pca.provenance["n_vectors"] == 2 * 20 * 20  # 20 regions per 82x145 frame
