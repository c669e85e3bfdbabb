"""Frame-level verification (index/verify.py): the best diagonal of the frame similarity matrix."""

from __future__ import annotations

import numpy as np

from index.verification import diagonal_verify, refine_offsets


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def direct(q: np.ndarray, m: np.ndarray, step: int, threshold: float) -> tuple[float, int]:
    """Straightforward double loop over sampled frames and offsets (the definition)."""
    qs, ms = q[::step], m[::step]
    votes = {}
    for i in range(len(qs)):
        for j in range(len(ms)):
            votes[i - j] = votes.get(i - j, 0.0) + max(0.0, float(qs[i] @ ms[j]) - threshold)
    smooth = {d: votes[d] + 0.5 * (votes.get(d - 1, 0.0) + votes.get(d + 1, 0.0)) for d in votes}
    best = max(sorted(smooth), key=lambda d: smooth[d])
    return smooth[best], best * step


def test_matches_the_direct_definition_for_every_candidate_and_block_size():
    rng = np.random.default_rng(0)
    q = unit(rng.standard_normal((40, 8)))
    cands = [unit(rng.standard_normal((n, 8))) for n in (30, 55, 12)]
    cands[1][20:45] = unit(q[5:30] + 0.2 * rng.standard_normal((25, 8)))  # a copy: q[5 + k] = c[20 + k]
    for chunk in (8 << 20, 300):  # one block, then blocks of one candidate
        v = diagonal_verify(q, cands, step=3, threshold=0.1, chunk_elements=chunk)
        for c, m in enumerate(cands):
            score, off = direct(q, m, 3, 0.1)
            assert abs(v.score[c] - score) < 1e-4 and v.offset_frames[c] == off
    assert v.offset_frames[1] == -15 and v.score[1] > 3 * max(v.score[0], v.score[2])


def test_a_partial_copy_outscores_unrelated_material_and_gives_its_offset():
    rng = np.random.default_rng(1)
    source = unit(rng.standard_normal((300, 64)))
    copy = unit(rng.standard_normal((200, 64)))
    copy[50:150] = unit(source[120:220] + 0.1 * rng.standard_normal((100, 64)))  # t_copy - t_source = -70 frames
    unrelated = unit(rng.standard_normal((400, 64)))
    v = diagonal_verify(copy, [unrelated, source], step=7, threshold=0.2)
    assert v.score[1] > 5 * v.score[0]
    assert abs(v.offset_frames[1] - (-70)) <= 7  # within one sampling step
    assert diagonal_verify(copy, []).score.shape == (0,)


def test_the_models_finer_offset_is_kept_only_where_it_agrees():
    np.testing.assert_array_equal(refine_offsets(np.array([70, 70]), np.array([73, 20]), step=7), [73, 70])
