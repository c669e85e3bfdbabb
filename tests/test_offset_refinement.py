"""Offsets resolved at frame level where the model's peak is wide (index/offset_refinement.py)."""

from __future__ import annotations

import numpy as np
import torch

from extractors.runtime.timebase import FPS
from extractors.temporal.cte import CTE
from extractors.temporal.tmk import TMK
from index.offset_refinement import band_mass, model_peak_halfwidths, peak_halfwidths, refined_offsets


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def direct_mass(q: np.ndarray, m: np.ndarray, offset: int, threshold: float) -> float:
    """The definition: query frame i against candidate frame i - offset, wherever both exist."""
    return sum(max(0.0, float(q[i] @ m[i - offset]) - threshold) for i in range(len(q)) if 0 <= i - offset < len(m))


def planted_copy(seed: int = 0, offset: int = -40, d: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A 200-frame query holding frames 60..179 of a 300-frame source at ``t_q - t_s = offset``... a
    slowly changing source (neighbouring frames alike, as in video) so that diagonals near the true one
    also collect similarity."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.standard_normal((300, d)), axis=0)
    source = unit(walk)
    query = unit(rng.standard_normal((200, d)))
    start = 60 + offset  # query frame (60 + offset + k) shows source frame 60 + k
    query[start:start + 120] = unit(walk[60:180] + 0.3 * rng.standard_normal((120, d)))
    return query, source


def test_band_mass_is_the_diagonal_sum_for_every_candidate_offset_and_chunk():
    rng = np.random.default_rng(3)
    q = unit(rng.standard_normal((25, 6)))
    refs = [unit(rng.standard_normal((n, 6))) for n in (10, 40, 1)]
    centres = np.array([0, -12, 30])  # the last one's band lies partly outside both videos
    for chunk in (1 << 24, 6 * 25):  # one chunk, then one diagonal at a time
        got = band_mass(q, refs, centres, band=4, threshold=0.1, max_elements=chunk)
        assert got.shape == (3, 9)
        for b, (m, c) in enumerate(zip(refs, centres, strict=True)):
            want = [direct_mass(q, m, c + k, 0.1) for k in range(-4, 5)]
            np.testing.assert_allclose(got[b], want, atol=1e-5)
    assert band_mass(q, [], np.zeros(0, int), 2, 0.1).shape == (0, 5)


def test_an_offset_a_second_off_is_brought_back_to_the_planted_one():
    query, source = planted_copy()
    off = refined_offsets(query, [source, source], np.array([-40 + 15, -40 - 22]), band=30, threshold=0.2)
    np.testing.assert_array_equal(off, [-40, -40])
    # a band too narrow to reach it keeps the best diagonal inside the band, not the planted one
    assert refined_offsets(query, [source], np.array([-40 + 15]), band=5, threshold=0.2)[0] != -40


def test_peak_halfwidths_measure_each_curve_from_its_peak():
    x = np.arange(-20, 21, dtype=np.float64)
    narrow = np.exp(-(x / 2) ** 2)  # falls below half-way within 2 frames
    wide = np.exp(-(x / 12) ** 2)  # within ~7 (half-way between 1 and the window's median, 0.5)
    lopsided = np.where(x < 0, narrow, wide)  # the wider side counts
    flat = np.ones_like(x)  # never falls below: the whole window
    with_gaps = lopsided.copy()
    with_gaps[23:] = np.nan  # undefined offsets (outside a CTE's range) count as below
    w = peak_halfwidths(np.stack([narrow, wide, lopsided, flat, with_gaps]), centre=20)
    assert w[0] <= 2 and 6 <= w[1] <= 8 and w[2] >= w[1] and w[3] == 21 and w[4] == 3, w


def test_poullots_peak_is_the_wide_one_on_the_same_copy():
    """The reason for the gate: on the same pair, TMK-Poullot's score-vs-offset peak is wider than a
    second while the LAMV periods and CTE resolve the offset more sharply."""
    query, source = planted_copy(seed=1, d=64)
    tq, ts = np.arange(len(query)) * 1.0, np.arange(len(source)) * 1.0
    widths = {}
    for name, model in (("tmk_poullot", TMK.preset("poullot")), ("tmk_lamv", TMK.preset("lamv")),
                        ("cte", CTE.for_max_length(400))):
        fq = model.descriptor(torch.from_numpy(query), torch.from_numpy(tq))[None]
        fs = model.descriptor(torch.from_numpy(source), torch.from_numpy(ts))[None]
        widths[name] = int(model_peak_halfwidths(model, fq, fs, np.array([-40]), round(3 * FPS))[0])
    assert widths["tmk_poullot"] > FPS, widths
    assert widths["tmk_lamv"] < widths["tmk_poullot"] and widths["cte"] < widths["tmk_poullot"], widths
    assert model_peak_halfwidths(TMK.preset("poullot"), fq, fs[:0], np.zeros(0, int), 10).shape == (0,)
