"""DTW, contextualised features, DRAQ and cycle consistency (index/dtw.py, pipeline/steps/alignment.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from index.dtw import Band, band_cost, banded_dtw, contextualise, cosine_cost, draq, dtw, random_path_costs, warp
from pipeline.steps.alignment import cycle_errors, path_offset
from tests.conftest import noisy_copy, smooth_rows, unit_rows


def direct_dtw(c: np.ndarray) -> float:
    """The textbook recurrence, one cell at a time."""
    n, m = c.shape
    D = np.full((n + 1, m + 1), np.inf)
    D[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            D[i, j] = c[i - 1, j - 1] + min(D[i - 1, j - 1], D[i - 1, j], D[i, j - 1])
    return float(D[n, m])


def assert_valid_path(path: np.ndarray, n: int, m: int) -> None:
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (n - 1, m - 1)
    steps = {tuple(s) for s in np.diff(path, axis=0)}
    assert steps <= {(0, 1), (1, 0), (1, 1)}


@pytest.mark.parametrize("shape", [(7, 7), (5, 11), (13, 4), (1, 6)])
def test_dtw_cost_and_path_match_the_textbook_recurrence(rng, shape):
    c = rng.uniform(0, 1, shape)
    res = dtw(torch.from_numpy(c))
    assert res.cost[0] == pytest.approx(direct_dtw(c), rel=1e-12)
    path = res.cells(0)
    assert_valid_path(path, *shape)
    assert c[path[:, 0], path[:, 1]].sum() == pytest.approx(res.cost[0], rel=1e-12)


def test_batched_pairs_of_different_lengths_equal_one_at_a_time(rng):
    costs = [rng.uniform(0, 1, (n, m)) for n, m in ((6, 9), (9, 4), (3, 3))]
    N, M = 9, 9
    dense = torch.full((3, N, M), 5.0, dtype=torch.float64)
    for b, c in enumerate(costs):
        dense[b, : c.shape[0], : c.shape[1]] = torch.from_numpy(c)
    band = Band(start=-(N - 1), width=N + M - 1)
    res = banded_dtw(band_cost(dense, band), band, np.array([6, 9, 3]), np.array([9, 4, 3]))
    for b, c in enumerate(costs):
        assert res.cost[b] == pytest.approx(direct_dtw(c), rel=1e-12)
        assert_valid_path(res.cells(b), *c.shape)


def test_a_narrow_band_keeps_the_path_near_the_diagonal(rng):
    c = rng.uniform(0, 1, (30, 30))
    c[np.arange(30), np.clip(np.arange(30) + 8, 0, 29)] = 0.0  # a cheap diagonal outside the band
    band = Band(start=-2, width=5)
    res = banded_dtw(band_cost(torch.from_numpy(c)[None], band), band, np.array([30]), np.array([30]))
    path = res.cells(0)
    assert np.abs(path[:, 1] - path[:, 0]).max() <= 2
    assert res.cost[0] > dtw(torch.from_numpy(c)).cost[0]  # the full DTW takes the cheap diagonal


def test_contextualised_features_concatenate_the_running_mean_and_are_centred(rng):
    x = torch.from_numpy(unit_rows(rng, 20, 8))
    y = contextualise(x)
    assert y.shape == (20, 16)
    assert torch.allclose(y.mean(dim=0), torch.zeros(16), atol=1e-6)
    raw = torch.cat([x, torch.cumsum(x, 0) / 20], dim=1)
    assert torch.allclose(y, raw - raw.mean(0), atol=1e-6)


def test_unwarped_first_sequence_gets_exactly_one_position_per_frame():
    path = np.array([[0, 0], [0, 1], [1, 2], [2, 2], [2, 3], [3, 4]])
    assert warp(path, 4, unwarped="first").tolist() == [0, 2, 2, 4]
    assert warp(path, 4).tolist() == [0.5, 2, 2.5, 4]


def test_random_paths_are_monotone_and_biased_as_specified():
    g = torch.Generator().manual_seed(0)
    # a path visits exactly n + m - 1 cells (a step out of the matrix is not taken)
    assert torch.all(random_path_costs(torch.ones(6, 9), 200, g) == 14)
    # 3 x 2: the path visits cell (2, 2) (1-based) iff its first step from (3, 2) is up: p = 3 / 5
    c = torch.zeros(3, 2)
    c[1, 1] = 1.0
    share = float(random_path_costs(c, 20000, g).mean())
    assert share == pytest.approx(0.6, abs=0.02)


def test_draq_prefers_the_alignable_partner(rng):
    a = smooth_rows(rng, 80, 32)
    copy = noisy_copy(rng, a)
    other = smooth_rows(rng, 80, 32)
    scores = []
    for b in (copy, other):
        cost = cosine_cost(contextualise(torch.from_numpy(a)), contextualise(torch.from_numpy(b)))
        scores.append(draq(cost, float(dtw(cost).cost[0]), k=50))
    assert scores[0] < 0.3 < scores[1]


def test_cycle_consistency_of_a_sequence_with_itself_is_perfect(rng):
    a = smooth_rows(rng, 40, 16)
    phases = np.repeat([0, 1, 2, 3], 10)
    e = cycle_errors(a, a, 0.5, contextualised=True, query_phases=phases, match_phases=phases)
    assert (e.fpe_s2, e.cpe, e.apa) == (0.0, 0.0, 1.0)
    # a match in the wrong phase order: agreement drops
    e2 = cycle_errors(a, a, 0.5, contextualised=True, query_phases=phases, match_phases=phases[::-1])
    assert e2.apa < 0.5


def test_path_offset_reads_the_shift_from_the_diagonal_steps(rng):
    a = smooth_rows(rng, 60, 16)
    b = np.concatenate([smooth_rows(rng, 10, 16), a[:40]])  # a's first 40 frames, 10 frames late in b
    res = dtw(cosine_cost(torch.from_numpy(a[:40]), torch.from_numpy(b)))
    t = np.arange(60) * 0.5
    assert path_offset(res.cells(0), t, t) == pytest.approx(-5.0)


def test_draq_order_ranks_the_alignable_candidate_first(rng):
    from pipeline.config.schema import AlignConfig
    from pipeline.steps.alignment import draq_order
    from pipeline.store.features import VideoFeatures

    t = np.arange(300) / 15.0
    a = smooth_rows(rng, 300, 32, width=30)
    cands = [smooth_rows(rng, 300, 32, width=30), noisy_copy(rng, a, 0.4), smooth_rows(rng, 300, 32, width=30)]
    order, values = draq_order(VideoFeatures("a", a, t, {}), [VideoFeatures(f"c{i}", c, t, {})
                                                             for i, c in enumerate(cands)],
                               AlignConfig(fps=5.0, contextualise=True, unwarped="none", draq_paths=50, draq_top=3,
                                           seed=0))
    assert order[0] == 1 and values[1] < values[0] and values[1] < values[2]
