"""TMK behaviour on generated sequences (no ../shared needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from extractors.decode.timestamps import sampling_timestamps
from extractors.temporal import tmk as tmk_mod
from extractors.temporal.tmk import NORMS, PRESETS, TMK, von_mises_coefficients
from tests.conftest import noisy_copy, smooth_rows, unit_rows

SPEC_TABLE = [0.0708042, 0.139378, 0.132897, 0.122766, 0.109879, 0.0952961, 0.0800987, 0.0652591,
              0.0515478, 0.0394852, 0.0293374, 0.0211493, 0.0147973, 0.0100513, 0.00663064,
              0.00424947]


def test_von_mises_coefficients_match_the_spec_table():
    a = von_mises_coefficients(32.0, 16)
    np.testing.assert_allclose(a, SPEC_TABLE, rtol=2e-5)
    assert abs(a.sum() - 0.99363) < 1e-5
    assert von_mises_coefficients(32.0, 32)[31] == pytest.approx(1e-7)  # clamped


def test_bessel_fallback_agrees_with_scipy():
    ours = tmk_mod._bessel_ive(np.arange(64), 32.0)
    from scipy.special import ive

    np.testing.assert_allclose(ours, ive(np.arange(64), 32.0), rtol=1e-10, atol=1e-300)


def test_presets_are_the_published_configurations():
    assert PRESETS["poullot"].periods == (2731, 4391, 9767, 14653)
    assert PRESETS["poullot"].norm == "freq"
    assert PRESETS["lamv"].periods == (9767, 2731, 1039, 253)
    assert PRESETS["lamv"].norm == "feat_freq"
    assert TMK.preset("lamv", m=8).m == 8
    with pytest.raises(KeyError, match="unknown TMK preset"):
        TMK.preset("nope")
    with pytest.raises(ValueError, match="norm must be one of"):
        TMK((100.0,), norm="l2")


def test_descriptor_rows_follow_the_definition(rng):
    x = unit_rows(rng, 40, 16)
    t = sampling_timestamps(40, 29.97)
    model = TMK((253.0, 1039.0), m=4, norm="freq")
    fv = model.descriptor(x, t).numpy()
    assert fv.shape == (2, 8, 16)
    np.testing.assert_array_equal(fv[:, 0], 0.0)  # sine row of k=0
    a = von_mises_coefficients(32.0, 4)
    omega = 2 * np.pi * np.arange(4)[None, :] / np.array([253.0, 1039.0])[:, None]
    ph = omega[:, :, None] * t.astype(np.float64)[None, None, :]
    direct_sin = np.sqrt(a)[None, :, None] * np.einsum("pkn,nd->pkd", np.sin(ph), x)
    direct_cos = np.sqrt(a)[None, :, None] * np.einsum("pkn,nd->pkd", np.cos(ph), x)
    np.testing.assert_allclose(fv[:, :4], direct_sin, atol=2e-6)
    np.testing.assert_allclose(fv[:, 4:], direct_cos, atol=2e-6)
    mean = model.mean_frame(torch.from_numpy(fv)).numpy()[0]
    expected = x.sum(0) / np.linalg.norm(x.sum(0))
    np.testing.assert_allclose(mean, expected, atol=1e-6)


def test_zero_padding_does_not_change_the_descriptor(rng):
    model = TMK.preset("lamv")
    x = unit_rows(rng, 90, 32)
    t = sampling_timestamps(90, 25.0)
    alone = model.descriptor(x, t)
    padded_x = np.zeros((2, 150, 32), np.float32)
    padded_x[0, :90] = x
    padded_x[1] = unit_rows(rng, 150, 32)
    padded_t = np.stack([sampling_timestamps(150, 25.0)] * 2)
    batch = model.descriptor(padded_x, padded_t)
    torch.testing.assert_close(batch[0], alone, rtol=0, atol=1e-6)
    # Garbage timestamps past the true length are ignored when lengths are given.
    padded_t[0, 90:] = np.nan
    torch.testing.assert_close(model.descriptor(padded_x, padded_t, lengths=[90, 150])[0], alone,
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize(("fps_q", "fps_db"), [(25.0, 25.0), (25.0, 29.97), (15.0, 30.0)])
def test_lamv_finds_a_planted_copy_to_the_frame(planted, fps_q, fps_db):
    model = TMK.preset("lamv")
    tq = sampling_timestamps(len(planted.query), fps_q)
    tdb = sampling_timestamps(len(planted.db), fps_db)
    fq, fdb = model.descriptor(planted.query, tq), model.descriptor(planted.db, tdb)
    offsets = np.arange(-len(planted.db), len(planted.db))
    _best, off = model.score_max(fq, fdb[None], offsets)
    # Truth: query frame 0 is db frame `start`, i.e. t_q[0] - t_db[start].
    assert float(off[0]) == np.round(tq[0] - tdb[planted.start])
    assert float(off[0]) / 15.0 == pytest.approx(-planted.start / 15.0, abs=0.1)  # seconds


def test_unrelated_video_scores_lower_than_the_copy(planted, rng):
    model = TMK.preset("lamv")
    fq = model.descriptor(planted.query, np.arange(len(planted.query)))
    other = smooth_rows(rng, 600, 64)
    fdb = torch.stack([model.descriptor(planted.db, np.arange(600)),
                       model.descriptor(other, np.arange(600))])
    best, _ = model.score_max(fq, fdb, np.arange(-600, 600))
    assert best[0] > 3 * best[1]


@pytest.mark.parametrize("norm", NORMS)
def test_chunked_max_equals_full_curve(planted, norm):
    model = TMK((253.0, 1039.0, 2731.0), m=8, norm=norm)
    fq = model.descriptor(planted.query, np.arange(200))
    fdb = torch.stack([model.descriptor(planted.db[i:], np.arange(600 - i)) for i in (0, 50, 300)])
    offsets = np.arange(-700, 650)
    curves = model.score(fq, fdb, offsets)
    best, off = model.score_max(fq, fdb, offsets, chunk_elements=97)
    torch.testing.assert_close(best, curves.max(1).values)
    np.testing.assert_array_equal(off.numpy(), offsets[curves.argmax(1).numpy()])
    pairs = model.score_pairs(fq, fdb, offsets)
    torch.testing.assert_close(pairs, curves, rtol=0, atol=1e-5 * float(curves.abs().max()))


def test_first_offset_wins_ties():
    model = TMK.preset("poullot")
    zero = torch.zeros(2, 4, 32, 8)
    _, off = model.score_max(zero[:1], zero, np.arange(-5, 5), chunk_elements=3)
    assert off.tolist() == [-5.0, -5.0]


def test_matrix_self_score_is_one_at_zero_offset(rng):
    model = TMK.preset("lamv", norm="matrix")
    fv = model.descriptor(unit_rows(rng, 120, 32), np.arange(120))
    s = model.score(fv, fv[None], [0, 40])
    assert float(s[0, 0]) == pytest.approx(1.0, abs=1e-5)
    assert float(s[0, 1]) < 1.0


def test_shift_equals_descriptor_of_shifted_timestamps(rng):
    model = TMK.preset("lamv")
    x, t = unit_rows(rng, 300, 16), sampling_timestamps(300, 29.97)
    fv = model.descriptor(x, t)
    for s in (-250, 12, 400):
        torch.testing.assert_close(model.shift(fv, s), model.descriptor(x, t + s),
                                   rtol=0, atol=5e-5 * float(fv.abs().max()))
    # score(a, shift(b, s))(delta) = score(a, b)(delta + s); exact for the "freq"
    # normalisation, which is invariant to phase rotation ("feat" mixes rows).
    model = TMK.preset("poullot")
    fv = model.descriptor(x, t)
    fb = model.descriptor(unit_rows(rng, 200, 16), np.arange(200))
    offs = np.arange(-50, 50)
    shifted = model.score(fv, model.shift(fb, 7)[None], offs)
    direct = model.score(fv, fb[None], offs + 7)
    torch.testing.assert_close(shifted, direct, rtol=1e-4, atol=1e-5)


def test_coefficients_are_learnable_when_asked(planted):
    model = TMK.preset("lamv", trainable=True)
    fq = model.descriptor(planted.query, np.arange(200))
    fdb = model.descriptor(planted.db, np.arange(600))
    loss = -model.score(fq, fdb[None], [-planted.start]).sum()
    loss.backward()
    assert model.a.grad is not None and torch.isfinite(model.a.grad).all()
    assert model.a.grad.abs().sum() > 0
    frozen = TMK.preset("lamv")
    assert not frozen.a.requires_grad


def test_noisy_copy_of_a_long_video_aligns_over_the_full_range(rng):
    """9000-frame database, 1500-frame excerpt copied at 7000: one matrix product each."""
    db = smooth_rows(rng, 3000, 32, width=4)
    db = np.concatenate([db, smooth_rows(rng, 6000, 32, width=4)])
    q = noisy_copy(rng, db[7000:8500], noise=0.5)
    model = TMK.preset("lamv")
    _best, off = model.score_max(model.descriptor(q, np.arange(1500)),
                                model.descriptor(db, np.arange(9000))[None], np.arange(-9000, 9000))
    assert float(off[0]) == -7000.0
