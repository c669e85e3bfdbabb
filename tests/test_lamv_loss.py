"""The learned-LAMV objective and the kernel's non-negative coefficients (issue 11: the layer and the
loss; training data, the training loop and the pipeline task are not built yet)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from extractors.temporal.tmk import TMK
from extractors.training.lamv_loss import LAMVLossSettings, in_out_maxima, lamv_loss, localisation_loss, retrieval_loss


def test_in_and_out_maxima_around_the_true_offset():
    offsets = torch.arange(-5, 6)
    curves = torch.tensor([[0.0, 1, 2, 3, 9, 4, 3, 2, 1, 0, 5],  # peak 9 at -1, 5 at +5
                           [7.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]])
    k_in, k_out = in_out_maxima(curves, offsets, torch.tensor([0.0, 0.0]), radius=1)
    assert k_in.tolist() == [9.0, 0.0] and k_out.tolist() == [5.0, 7.0]
    k_in, k_out = in_out_maxima(curves[:1], offsets, torch.tensor([0.0]), radius=10)
    assert k_in.item() == 9.0 and k_out.item() == -np.inf  # no offset outside the window


def test_losses_have_their_definitions():
    pos = torch.tensor([[0.1, 0.5, 0.2], [0.3, 0.2, 0.1]])
    neg = torch.tensor([[0.2, 0.1, 0.0], [0.0, 0.31, 0.0]])
    # max(0, 0.01 + 0.2 - 0.5) = 0, max(0, 0.01 + 0.31 - 0.3) = 0.02
    assert retrieval_loss(pos, neg, 0.01).item() == pytest.approx(0.01)
    offsets = torch.tensor([-15, 0, 15])
    true = torch.tensor([0.0, 0.0])  # window |delta| <= 1 frame: only offset 0 is inside
    # (max(0, 0.001 + 0.2 - 0.5) + max(0, 0.001 + 0.3 - 0.2)) / 2
    assert localisation_loss(pos, offsets, true, 1.0, 0.001).item() == pytest.approx(0.101 / 2)
    loss = lamv_loss(pos, neg, offsets, true, LAMVLossSettings(radius_s=1 / 15))
    assert loss.total.item() == pytest.approx(0.25 * 0.01 + 0.75 * 0.101 / 2)


@pytest.mark.parametrize("init", ["von_mises", "uniform"])
def test_softplus_coefficients_start_where_asked_and_never_go_negative(init):
    clamp = TMK.preset("lamv", trainable=True, init=init)
    soft = TMK.preset("lamv", trainable=True, init=init, parametrisation="softplus")
    torch.testing.assert_close(soft.coefficients(), clamp.coefficients(), rtol=1e-4, atol=1e-6)
    opt = torch.optim.SGD(soft.parameters(), lr=100.0)
    (soft._coeffs().sum() * 10).backward()  # a large step that pushes every coefficient down
    opt.step()
    assert bool((soft.coefficients() > 0).all())


def smooth_sequence(rng, n: int, d: int) -> np.ndarray:
    z = rng.standard_normal((n + 30, d)).cumsum(0)
    z = z[30:] - z[:-30]  # frames that change slowly, as in video
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def test_gradient_steps_teach_a_flat_kernel_to_localise_copies():
    """From uniform coefficients, SGD with Nesterov momentum on the LAMV loss over triplets with random
    true offsets lowers the localisation loss and keeps every coefficient positive."""
    rng = np.random.default_rng(0)
    n, d, batch = 300, 32, 6
    x0, xp, xn, true = [], [], [], []
    for _ in range(batch):
        src = smooth_sequence(rng, 700, d)
        s0, delta = int(rng.integers(100, 300)), int(rng.integers(-90, 90))
        x0.append(src[s0:s0 + n])
        xp.append(src[s0 + delta:s0 + delta + n] + 0.3 * rng.standard_normal((n, d)) / np.sqrt(d))
        xn.append(smooth_sequence(rng, n, d))
        true.append(-delta)  # t_X0 - t_X+ of corresponding frames
    t = np.tile(np.arange(n, dtype=np.float64), (batch, 1))
    model = TMK.preset("lamv", trainable=True, init="uniform", parametrisation="softplus")
    opt = torch.optim.SGD(model.parameters(), lr=10.0, momentum=0.9, nesterov=True)
    offsets = torch.arange(-n + 1, n)
    history = []
    for _ in range(15):
        f0, fp, fn = (model.descriptor(np.stack(v), t) for v in (x0, xp, xn))
        loss = lamv_loss(model.score_pairs(f0, fp, offsets), model.score_pairs(f0, fn, offsets), offsets,
                         torch.tensor(true, dtype=torch.float64))
        opt.zero_grad()
        loss.total.backward()
        opt.step()
        history.append(loss.localisation.item())
    assert history[-1] < 0.5 * history[0], history
    assert bool((model.coefficients() > 0).all())
