"""Positive snippet pairs for learned-LAMV training: overlap, true offset, and the TMK peak there."""

from __future__ import annotations

import numpy as np

from extractors.temporal.tmk import TMK
from extractors.training.lamv_triplets import overlap_frames, sample_snippet_pairs


def test_snippets_overlap_enough_with_random_offsets():
    rng = np.random.default_rng(0)
    n = 2000
    len_a = rng.integers(600, 3000, n)
    len_b = rng.integers(600, 3000, n)
    offset = rng.integers(-1500, 1500, n)
    p = sample_snippet_pairs(len_a, len_b, offset, 500, 0.75, rng)
    ok = p.valid
    assert ok.mean() > 0.5  # most random pairs share 375 frames
    assert np.all(p.start_a[ok] >= 0) and np.all(p.start_a[ok] + 500 <= len_a[ok])
    assert np.all(p.start_b[ok] >= 0) and np.all(p.start_b[ok] + 500 <= len_b[ok])
    shared = np.minimum(len_a, len_b + offset) - np.maximum(0, offset)
    long_ = ok & (shared >= 500)
    assert np.all(overlap_frames(p, len_a, len_b, offset, 500)[long_] >= 375)
    assert np.all(np.abs(p.delta[long_]) <= 125)
    # a shared span shorter than a snippet: X+ shows at least 75 % of it
    short = ok & (shared < 500)
    assert short.any()
    assert np.all(overlap_frames(p, len_a, len_b, offset, 500)[short] >= np.ceil(0.75 * shared[short]))
    assert len(np.unique(p.delta[long_])) > 100  # the true offset is random, not always 0
    # pairs that share nothing are flagged
    far = sample_snippet_pairs(np.array([600]), np.array([600]), np.array([5000]), 500, 0.75, rng)
    assert not far.valid[0]


def test_the_kernel_peaks_at_the_sampled_true_offset():
    """Cut snippets from a real overlap of two synthetic videos: TMK's score curve peaks at delta."""
    rng = np.random.default_rng(1)
    d = 32
    z = rng.standard_normal((3000, d)).cumsum(0)
    frames = (z[30:] - z[:-30])
    frames /= np.linalg.norm(frames, axis=1, keepdims=True)  # slowly changing "video" content
    a = frames[200:1700]  # A = content from 200 on; B = content from 900 on
    b = frames[900:2900]
    offset = 900 - 200  # A frame i shows content 200 + i = B frame i - 700
    p = sample_snippet_pairs(np.array([len(a)] * 5), np.array([len(b)] * 5), np.array([offset] * 5), 500, 0.75,
                             rng)
    assert p.valid.all()
    model = TMK.preset("lamv")
    t = np.tile(np.arange(500, dtype=np.float64), (5, 1))
    x0 = np.stack([a[s:s + 500] for s in p.start_a])
    xp = np.stack([b[s:s + 500] for s in p.start_b])
    offsets = np.arange(-499, 500)
    curves = model.score_pairs(model.descriptor(x0, t), model.descriptor(xp, t), offsets)
    peaks = offsets[curves.argmax(dim=1).numpy()]
    assert np.all(np.abs(peaks - p.delta) <= 2), (peaks, p.delta)
