"""Corrected CTE on generated sequences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from extractors.decode.timestamps import sampling_timestamps
from extractors.temporal.cte import CTE, transform_length
from tests.conftest import noisy_copy, smooth_rows, unit_rows


def test_transform_length_leaves_room_for_every_offset():
    assert transform_length(600) == 2048
    assert transform_length(512) == 1024
    with pytest.raises(ValueError):
        transform_length(0)


def test_descriptor_is_the_dft_of_the_frames(rng):
    x = unit_rows(rng, 64, 8)
    fv = CTE(64, m=5).descriptor(x, check_span=False).numpy()
    ref = np.fft.fft(x.astype(np.float64), axis=0)[:5].T  # (d, m)
    np.testing.assert_allclose(fv[:, :5], ref.real, atol=1e-5)
    np.testing.assert_allclose(fv[:, 5:], ref.imag, atol=1e-5)


@pytest.mark.parametrize("start", [0, 1, 137, 399])
def test_finds_negative_offsets_exactly(rng, start):
    """The reference reports negative offsets one frame off; ours does not."""
    db = smooth_rows(rng, 600, 32)
    q = noisy_copy(rng, db[start:start + 200])
    cte = CTE.for_max_length(600)
    _, off = cte.score_max(cte.descriptor(q), cte.descriptor(db), np.arange(-600, 600))
    assert float(off[0]) == -start
    # Swapping the roles gives the opposite offset, with no off-by-one.
    _, back = cte.score_max(cte.descriptor(db), cte.descriptor(q), np.arange(-600, 600))
    assert float(back[0]) == start


def test_uses_real_timestamps_for_mixed_frame_rates(rng):
    """A 25-fps sampled query inside a 30-fps sampled video: aligned on the time axis."""
    db = smooth_rows(rng, 900, 32)
    q = noisy_copy(rng, db[300:600])
    tq, tdb = sampling_timestamps(300, 25.0), sampling_timestamps(900, 30.0)
    cte = CTE.for_max_length(900)
    _, off = cte.score_max(cte.descriptor(q, tq), cte.descriptor(db, tdb), np.arange(-900, 900))
    assert float(off[0]) == np.round(tq[0] - tdb[300])


def test_padding_invariant_on_a_common_grid(rng):
    x = unit_rows(rng, 100, 16)
    cte = CTE.for_max_length(256)
    alone = cte.descriptor(x)
    padded = np.zeros((1, 256, 16), np.float32)
    padded[0, :100] = x
    torch.testing.assert_close(cte.descriptor(padded, lengths=[100])[0], alone, rtol=0, atol=1e-5)


def test_refuses_aliasing_configurations(rng):
    cte = CTE(256, m=64)
    with pytest.raises(ValueError, match="only aligns videos within"):
        cte.descriptor(unit_rows(rng, 200, 8))
    fv = cte.descriptor(unit_rows(rng, 100, 8))
    with pytest.raises(ValueError, match="only resolves"):
        cte.score(fv, fv, np.arange(-200, 200))
    with pytest.raises(ValueError, match="non-negative bins"):
        CTE(64, m=40).score(fv[:, :80], fv[:, :80], [0])


def test_copy_scores_near_one_and_unrelated_near_zero(rng):
    db = smooth_rows(rng, 400, 32)
    other = smooth_rows(rng, 400, 32)
    cte = CTE.for_max_length(400)
    q = cte.descriptor(db[50:250])
    best, _ = cte.score_max(q, torch.stack([cte.descriptor(db), cte.descriptor(other)]),
                            np.arange(-400, 400))
    assert best[0] > 0.5
    assert best[1] < 0.5 * best[0]
