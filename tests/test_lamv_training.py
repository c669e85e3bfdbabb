"""Learned-LAMV training on planted data: exact gradients, hard negatives, better localisation, resumption."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from extractors.temporal.tmk import TMK
from extractors.training.lamv_loss import LAMVLossSettings
from extractors.training.lamv_training import (
    LAMVTrainSettings,
    SnippetBank,
    TrainingPairs,
    batch_loss,
    components,
    draw_positives,
    frozen_coefficients,
    hardest_negatives,
    localisation_accuracy,
    scaled,
    snippet_offsets,
    train_lamv,
)


def planted(seed: int, sources: int = 10, cameras: int = 4, d: int = 16, noise: float = 1.0,
            window: int = 200) -> tuple[list[np.ndarray], TrainingPairs]:
    """Multi-camera-like feature sequences: slowly changing content of each source, every camera an
    excerpt of it under its own linear distortion plus noise; every overlapping pair with its offset."""
    rng = np.random.default_rng(seed)
    videos: list[np.ndarray] = []
    a, b, off = [], [], []
    for _ in range(sources):
        z = rng.standard_normal((1500 + window, d)).cumsum(0)
        content = z[window:] - z[:-window]
        content /= np.linalg.norm(content, axis=1, keepdims=True)
        placed = []
        for _ in range(cameras):
            n = int(rng.integers(500, 900))
            start = int(rng.integers(0, 1500 - n))
            distortion = np.eye(d) + rng.standard_normal((d, d)) / np.sqrt(d)
            videos.append((content[start:start + n] @ distortion + noise * rng.standard_normal((n, d)))
                          .astype(np.float32))
            placed.append((len(videos) - 1, start))
        for i, (vi, si) in enumerate(placed):
            for vj, sj in placed[i + 1:]:
                shared = min(len(videos[vi]), len(videos[vj]) + sj - si) - max(0, sj - si)
                if shared > 400:  # frame k of vi shows content si + k = frame k - (sj - si) of vj
                    a.append(vi)
                    b.append(vj)
                    off.append(sj - si)
    return videos, TrainingPairs(np.array(a), np.array(b), np.array(off))


@pytest.fixture(scope="module")
def data():
    return planted(0), planted(1)


def test_loss_gradient_matches_finite_differences(data):
    (videos, pairs), _ = data
    model = TMK.preset("lamv", trainable=True, parametrisation="softplus")
    s = LAMVTrainSettings(batch=16)
    bank = SnippetBank(videos, model, s.snippet_frames)
    trip = draw_positives(bank, pairs, s, np.random.default_rng(0))
    r0 = bank.describe(trip.video0, trip.start0)
    rp = bank.describe(trip.video_pos, trip.start_pos)
    rn = bank.describe(trip.video_pos[::-1].copy(), trip.start_pos[::-1].copy())  # other sources' snippets
    delta, offsets = torch.from_numpy(trip.delta.astype(np.float64)), snippet_offsets(s.snippet_frames)

    def loss() -> torch.Tensor:
        return batch_loss(model, r0, rp, rn, delta, offsets, LAMVLossSettings())[0].total

    value = loss()
    assert float(value.detach()) > 0  # the hinges are active: the gradient is not trivially zero
    value.backward()
    grad = model.a.grad.clone()
    direction = torch.randn(grad.shape, generator=torch.Generator().manual_seed(3))
    eps = 1e-2
    with torch.no_grad():
        model.a += eps * direction
        up = float(loss())
        model.a -= 2 * eps * direction
        down = float(loss())
        model.a += eps * direction
    numeric, analytic = (up - down) / (2 * eps), float((grad * direction).sum())
    assert analytic != 0
    assert abs(numeric - analytic) <= 0.05 * abs(analytic), (numeric, analytic)


def test_the_hardest_negative_is_kept():
    rng = np.random.default_rng(0)
    model = TMK([97.0, 31.0], m=4)
    x = rng.standard_normal((6, 2, 8, 5)).astype(np.float32)
    pool = model.normalize(torch.from_numpy(x))
    anchors = pool[:1].repeat(2, 1, 1, 1)
    offsets = torch.arange(-5, 6, dtype=torch.float64)
    pool_video = np.arange(6)
    eligible = np.ones((2, 6), bool)
    eligible[0, 0] = False  # triplet 0 may not use video 0 (its own); triplet 1 may
    rows = hardest_negatives(model, anchors, pool, pool_video, eligible, 6, offsets, rng)
    best = model.score_pairs(anchors[:1].repeat(6, 1, 1, 1), pool, offsets, normalized=True).amax(1)
    assert rows[1] == 0  # the anchor itself scores highest of all
    assert rows[0] == int(torch.argmax(torch.where(torch.from_numpy(eligible[0]), best, -torch.inf)))
    with pytest.raises(ValueError, match="no negative"):
        hardest_negatives(model, anchors, pool, pool_video, np.zeros((2, 6), bool), 6, offsets, rng)


def test_components_group_overlapping_videos():
    pairs = TrainingPairs(np.array([0, 1, 3]), np.array([1, 2, 4]), np.zeros(3))
    comp = components(6, pairs)
    assert comp[0] == comp[1] == comp[2] and comp[3] == comp[4]
    assert len({comp[0], comp[3], comp[5]}) == 3


@pytest.mark.slow
def test_training_localises_planted_offsets_better_than_its_initialisation(data):
    (videos, pairs), (held_videos, held_pairs) = data
    model = TMK.preset("lamv", trainable=True, parametrisation="softplus", init="uniform")
    s = LAMVTrainSettings(epochs=30, lr=100.0, batch=32)
    before = localisation_accuracy(model, held_videos, held_pairs, s)
    state = train_lamv(model, videos, pairs, s)
    after = localisation_accuracy(model, held_videos, held_pairs, s)
    n = len(held_pairs)
    assert after >= before + 2 / n, (before, after)  # at least two more held-out pairs within 1 s
    assert (model.coefficients() >= 0).all()
    assert not torch.allclose(model.coefficients(), torch.full_like(model.coefficients(), 1 / 16))
    assert len(state.history) == 30 and state.history[-1].loss < state.history[0].loss


@pytest.mark.slow
def test_training_is_deterministic_and_resumes_to_the_same_kernel(data):
    (videos, pairs), (held_videos, held_pairs) = data
    s = LAMVTrainSettings(epochs=4, lr=10.0, batch=16)

    def fresh() -> TMK:
        return TMK.preset("lamv", trainable=True, parametrisation="softplus")

    full = fresh()
    train_lamv(full, videos, pairs, s, validation=(held_videos, held_pairs))
    saved = []
    half = fresh()
    train_lamv(half, videos, pairs, LAMVTrainSettings(**{**s.__dict__, "epochs": 2}), on_epoch=saved.append)
    assert [st.epoch for st in saved] == [1, 2]
    resumed = fresh()
    state = train_lamv(resumed, videos, pairs, s, validation=(held_videos, held_pairs), state=saved[-1])
    assert torch.equal(full.coefficients(), resumed.coefficients())
    assert [h.epoch for h in state.history] == [1, 2, 3, 4]
    assert np.isfinite(state.history[-1].val_localisation_1s)
    other = fresh()
    train_lamv(other, videos, pairs, LAMVTrainSettings(**{**s.__dict__, "seed": 1}))
    assert not torch.equal(other.coefficients(), full.coefficients())


@pytest.mark.slow
def test_min_cycles_keeps_the_slow_frequencies_at_their_initial_values(data):
    """With ``min_cycles = 1`` every frequency completing less than one cycle over a 500-frame snippet
    (all of period 9767; k <= 5 of 2731; k <= 2 of 1039; the constant term of 253) keeps its von Mises
    coefficient exactly, and the others are trained."""
    (videos, pairs), _ = data
    model = TMK.preset("lamv", trainable=True, parametrisation="softplus")
    init = model.coefficients().clone()
    s = LAMVTrainSettings(epochs=3, lr=100.0, batch=32, min_cycles=1.0)
    frozen = frozen_coefficients(model, s)
    assert frozen.tolist() == [[True] * 16, [k <= 5 for k in range(16)], [k <= 2 for k in range(16)],
                               [k == 0 for k in range(16)]]  # periods 9767, 2731, 1039, 253
    train_lamv(model, videos, pairs, s)
    after = model.coefficients()
    assert torch.equal(after[frozen], init[frozen])
    assert (after[~frozen] != init[~frozen]).float().mean() > 0.9
    with pytest.raises(ValueError, match="min_cycles"):
        LAMVTrainSettings(min_cycles=-1.0)


@pytest.mark.slow
def test_clamp_lets_training_sharpen_a_kernel_beyond_its_von_mises_harmonics(data):
    """The alignment setting (m 32, clamp, lr 1): von Mises (beta 32) leaves harmonics k >= 20 below 1e-3;
    training with the clamp grows them (a sharper kernel), while under softplus a coefficient's step is
    scaled by about the coefficient itself, so they stay where they started. Used coefficients stay >= 0."""
    (videos, pairs), _ = data
    high = (slice(None), slice(20, None))
    grown = {}
    for parametrisation, lr in (("clamp", 1.0), ("softplus", 10.0)):
        model = TMK.preset("lamv", m=32, trainable=True, parametrisation=parametrisation)
        assert (model.coefficients()[high] < 1e-3).all()
        train_lamv(model, videos, pairs, LAMVTrainSettings(epochs=5, lr=lr, batch=32))
        after = model.coefficients()
        assert (after >= 0).all()
        grown[parametrisation] = int((after[high] > 1e-2).sum())
    assert grown["clamp"] >= 8, grown
    assert grown["softplus"] == 0, grown


def test_scaled_descriptors_equal_the_tmk_descriptor():
    """The coefficient-free snippet descriptor rescaled by sqrt(a) is exactly TMK's own descriptor."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 8)).astype(np.float32)
    model = TMK([97.0, 31.0], m=6, norm="feat_freq")
    bank = SnippetBank([x], model, 50)
    mine = scaled(model, bank.describe(np.array([0]), np.array([30])))
    ref = model.normalize(model.descriptor(x[30:80], np.arange(50, dtype=np.float64))[None])
    torch.testing.assert_close(mine, ref, rtol=1e-4, atol=1e-6)
