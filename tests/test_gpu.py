"""GPU paths (run only where CUDA is available; skipped on CPU-only machines and in CI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from extractors.frame.resnet_rmac import ExtractorSettings, FrameFeatureExtractor
from extractors.temporal.tmk import TMK

pytestmark = pytest.mark.gpu


def test_cuda_features_match_cpu():
    frames = torch.randn(8, 3, 82, 145)
    cpu = FrameFeatureExtractor(ExtractorSettings(weights="random", device="cpu", precision="float32"))
    gpu = FrameFeatureExtractor(ExtractorSettings(weights="random", device="cuda"))
    assert gpu.precision in ("bfloat16", "float16")
    a, b = cpu(frames).numpy(), gpu(frames).numpy()
    assert float((a * b).sum(1).min()) > 0.99


def test_cuda_tmk_scores_match_cpu():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 900, 64)).astype(np.float32)
    t = np.tile(np.arange(900, dtype=np.float64), (2, 1))
    cpu = TMK.preset("lamv")
    gpu = TMK.preset("lamv").cuda()
    fc = cpu.descriptor(x, t)
    fg = gpu.descriptor(x, t)
    offsets = np.arange(-900, 900)
    bc, oc = cpu.score_max(fc[:1], fc, offsets)
    bg, og = gpu.score_max(fg[:1], fg, offsets)
    torch.testing.assert_close(bg.cpu(), bc, rtol=1e-4, atol=1e-4)
    assert torch.equal(og.cpu(), oc)


def test_cuda_selfsup_training_and_extraction():
    """The selfsup network trains on CUDA (deterministic for a seed there too) and its CUDA
    descriptors match the CPU ones of the same weights."""
    from extractors.frame.selfsup import FrameModel, SelfSupExtractor, TrainSettings, train_copy_net

    data = (torch.rand(64, 3, 48, 48) * 255).to(torch.uint8)
    s = TrainSettings(steps=5, batch=16, input_size=48, dim=16, width=8, warmup=2)
    a, _ = train_copy_net(data, s, device="cuda")
    b, _ = train_copy_net(data, s, device="cuda")
    ma, mb = FrameModel.from_training(a, s, {}), FrameModel.from_training(b, s, {})
    assert ma.model_id == mb.model_id
    frames = np.random.default_rng(0).integers(0, 255, (4, 60, 80, 3), dtype=np.uint8)
    on_gpu = SelfSupExtractor(ma, device="cuda").describe(frames)
    on_cpu = SelfSupExtractor(ma, device="cpu").describe(frames)
    assert float((on_gpu * on_cpu).sum(1).min()) > 0.999


def test_cuda_tca_training():
    """TCA trains with its model on CUDA (the draws stay on the CPU) and hands back a CPU state."""
    from extractors.temporal.tca import TCA, TCAConfig
    from extractors.training.tca_training import TCATrainSettings, train_tca

    rng = np.random.default_rng(0)
    videos = [rng.standard_normal((int(rng.integers(60, 300)), 64)).astype(np.float32) for _ in range(8)]
    groups, pairs = np.arange(8) // 2, np.array([[0, 1], [2, 3], [4, 5], [6, 7]])
    torch.manual_seed(0)
    model = TCA(TCAConfig(dim=64, padding_size=40, heads=4, feedforward=64))
    st = train_tca(model, videos, groups, pairs, TCATrainSettings(steps=4, batch=4, queue=32, hard_negatives=8),
                   device=torch.device("cuda"))
    assert st.step == 4 and len(st.history) == 4 and np.isfinite(st.history).all()
    assert all(t.device.type == "cpu" for t in st.model.values() if isinstance(t, torch.Tensor))
    assert st.bank.device.type == "cpu" and (st.bank_group >= 0).any()
