"""Copied segments of candidate pairs from their frame-to-frame similarity matrices.

Three localisers over the same inputs (a query and a block of candidates, frame features sub-sampled
by the caller, unit rows):

* :func:`hough_segments` (HV): every frame pair votes for its offset ``i - j`` with its similarity
  above ``threshold``; the best offsets within ``band`` of the seed offset (the TMK / CTE one) win;
  along each winning diagonal, runs of matching frames (gaps up to ``max_gap`` bridged) are segments.
* :func:`temporal_network_segments` (TN, the VCSL baseline): each query frame's ``top_k`` most
  similar reference frames above ``threshold`` are nodes; a node links to the nodes at most
  ``max_step`` frames later on both axes; the heaviest paths (summed similarity above the threshold)
  are segments, from their first node to their last.
* :func:`dtw_segments`: DTW (``index.dtw``) on the (optionally contextualised) features inside the
  band around the seed diagonal; the runs of the warping path whose frames match are segments.

Every localiser returns :class:`FrameSegments` in sampled-frame indices (end exclusive) with a score
``sum(similarity - threshold)`` over the segment's matched frames: zero for unrelated material, larger
for a longer or closer copy; the caller divides by its sampling rate to get seconds.  Overlapping
segments of one pair are suppressed (intersection over the smaller box above ``max_overlap``), the
best ``max_segments`` kept.

Batched over candidates (a padded ``(B, n, L)`` similarity block whose size the caller bounds with
:func:`blocks`); the loops that remain run over the query's rows or a DTW's anti-diagonals (each
depends on the previous one), over at most ``max_segments`` picks, never over cells or candidates.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from index.dtw import Band, banded_dtw

NEG = -1e9


@dataclass(frozen=True)
class FrameSegments:
    """Segments of a block of pairs, one row each: candidate ``pair (S,)`` (index in the block),
    query span ``[q0, q1)``, reference span ``[r0, r1)`` (sampled frames), ``score (S,)``."""

    pair: np.ndarray
    q0: np.ndarray
    q1: np.ndarray
    r0: np.ndarray
    r1: np.ndarray
    score: np.ndarray

    @classmethod
    def empty(cls) -> FrameSegments:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z, z, z, z, np.zeros(0))

    def __len__(self) -> int:
        return len(self.pair)

    def take(self, keep: np.ndarray) -> FrameSegments:
        return FrameSegments(self.pair[keep], self.q0[keep], self.q1[keep], self.r0[keep], self.r1[keep],
                             self.score[keep])

    def shifted(self, pair_offset: int) -> FrameSegments:
        return FrameSegments(self.pair + pair_offset, self.q0, self.q1, self.r0, self.r1, self.score)

    @classmethod
    def concat(cls, parts: list[FrameSegments]) -> FrameSegments:
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("pair", "q0", "q1", "r0", "r1",
                                                                                "score")))


@dataclass(frozen=True)
class SimilarityBlock:
    """``sim (B, n, L)`` cosine similarities of the query's ``n`` frames with each candidate's first
    ``lengths[b]`` frames (padding: ``NEG``); ``first`` is the block's first candidate index."""

    sim: torch.Tensor
    lengths: np.ndarray
    first: int


def blocks(query: np.ndarray, candidates: list[np.ndarray], max_elements: int = 1 << 25
           ) -> Iterator[SimilarityBlock]:
    """Similarity matrices of ``query (n, d)`` with every ``candidates[c] (L_c, d)``, as padded blocks
    of at most ``max_elements`` similarities (one batched matrix product per block)."""
    q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32))
    n = max(1, q.shape[0])
    lengths = np.array([len(c) for c in candidates], dtype=np.int64)
    c0 = 0
    while c0 < len(candidates):
        c1 = c0 + 1
        while c1 < len(candidates) and (c1 + 1 - c0) * n * int(lengths[c0:c1 + 1].max()) <= max_elements:
            c1 += 1
        L = max(1, int(lengths[c0:c1].max()))
        pad = padded(candidates[c0:c1], L, q.shape[1])
        sim = torch.einsum("nd,bld->bnl", q, pad)
        valid = torch.arange(L)[None, :] < torch.from_numpy(lengths[c0:c1])[:, None]
        sim = torch.where(valid[:, None, :], sim, torch.full((), NEG))
        yield SimilarityBlock(sim, lengths[c0:c1], c0)
        c0 = c1


# --------------------------------------------------------------------------- shared helpers


def padded(seqs: list[np.ndarray], length: int, dim: int) -> torch.Tensor:
    """``(B, length, dim)`` float32: each ``(L_b, dim)`` sequence, zero rows after it."""
    out = torch.nn.utils.rnn.pad_sequence(
        [torch.from_numpy(np.ascontiguousarray(s, dtype=np.float32).reshape(-1, dim)) for s in seqs]
        + [torch.zeros((length, dim))], batch_first=True)[:-1]
    return out[:, :length]


def contextualise_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """:func:`index.dtw.contextualise` of every sequence of ``x (B, N, d)`` over its first
    ``lengths[b]`` rows (zero rows after them) -> ``(B, N, 2d)``."""
    N = x.shape[1]
    valid = (torch.arange(N)[None, :] < lengths[:, None]).to(x.dtype)[..., None]
    x = x * valid
    n = lengths.clamp_min(1).to(x.dtype)[:, None, None]
    ctx = torch.cat([x, torch.cumsum(x, dim=1) / n], dim=2)
    mean = (ctx * valid).sum(dim=1, keepdim=True) / n
    return (ctx - mean) * valid


def bridge_gaps(mask: np.ndarray, max_gap: int) -> np.ndarray:
    """``(R, n)`` booleans with every run of at most ``max_gap`` False between two True set True."""
    R, n = mask.shape
    idx = np.broadcast_to(np.arange(n), (R, n))
    last = np.maximum.accumulate(np.where(mask, idx, -1), axis=1)
    nxt = np.minimum.accumulate(np.where(mask, idx, n + max_gap + 1)[:, ::-1], axis=1)[:, ::-1]
    return mask | ((last >= 0) & (nxt < n) & (nxt - last - 1 <= max_gap))


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal True runs of every row of ``(R, n)``: ``row, start, end`` (end exclusive)."""
    R, n = mask.shape
    padded = np.zeros((R, n + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)
    sr, sc = np.nonzero(d == 1)
    _, ec = np.nonzero(d == -1)
    return sr, sc, ec


def suppress(seg: FrameSegments, max_overlap: float, max_segments: int, min_score: float = 0.0) -> FrameSegments:
    """Per pair, greedily keep the best-scoring segments whose box overlaps every kept one by at most
    ``max_overlap`` of the smaller box (a path's own prefixes are suppressed), at most ``max_segments``
    of them, each scoring above ``min_score``."""
    seg = seg.take(seg.score > min_score)
    if len(seg) == 0:
        return seg
    order = np.lexsort((-seg.score, seg.pair))
    seg = seg.take(order)
    alive = np.ones(len(seg), dtype=bool)
    kept = np.zeros(len(seg), dtype=bool)
    area = (seg.q1 - seg.q0) * (seg.r1 - seg.r0)
    for _ in range(max_segments):  # one pick per pair per round, all pairs at once
        cand = np.flatnonzero(alive)
        if len(cand) == 0:
            break
        first = cand[np.r_[True, seg.pair[cand][1:] != seg.pair[cand][:-1]]]  # best alive of each pair
        kept[first] = True
        alive[first] = False
        owner = np.full(int(seg.pair.max()) + 1, -1)
        owner[seg.pair[first]] = first
        chosen = owner[seg.pair]
        has = (chosen >= 0) & alive
        ch = chosen[has]
        iw = np.clip(np.minimum(seg.q1[has], seg.q1[ch]) - np.maximum(seg.q0[has], seg.q0[ch]), 0, None)
        ih = np.clip(np.minimum(seg.r1[has], seg.r1[ch]) - np.maximum(seg.r0[has], seg.r0[ch]), 0, None)
        inter = iw * ih
        overlap = inter / np.maximum(np.minimum(area[has], area[ch]), 1)  # over the smaller box
        alive[np.flatnonzero(has)[overlap > max_overlap]] = False
    return seg.take(kept)


def diagonal_segments(sim: torch.Tensor, lengths: np.ndarray, offsets: np.ndarray, threshold: float,
                       max_gap: int, min_length: int) -> FrameSegments:
    """Runs of matching frames along diagonals ``j = i - offsets[b, k]`` of each block matrix.
    ``offsets (B, K)``; a frame matches when its best similarity over the diagonal and its two
    neighbours (a slightly drifting copy) reaches ``threshold``."""
    B, n, L = sim.shape
    K = offsets.shape[1]
    i = torch.arange(n)[None, None, :]
    best = torch.full((B, K, n), NEG)
    for shift in (-1, 0, 1):  # the diagonal and its two neighbours
        j = (i - torch.from_numpy(offsets)[:, :, None] + shift).expand(B, K, n)  # (B, K, n)
        ok = (j >= 0) & (j < torch.from_numpy(lengths)[:, None, None])
        vals = torch.gather(sim, 2, j.clamp(0, L - 1).permute(0, 2, 1)).permute(0, 2, 1)  # sim[b, i, j[b, k, i]]
        best = torch.maximum(best, torch.where(ok, vals, torch.full((), NEG)))
    s = best.reshape(B * K, n).numpy().astype(np.float64)
    excess = np.clip(s - threshold, 0, None)
    matched = bridge_gaps(s >= threshold, max_gap)
    row, start, end = runs(matched)
    long_enough = end - start >= min_length
    row, start, end = row[long_enough], start[long_enough], end[long_enough]
    cs = np.concatenate([np.zeros((B * K, 1)), np.cumsum(excess, axis=1)], axis=1)
    score = cs[row, end] - cs[row, start]
    off = offsets.reshape(-1)[row]
    return FrameSegments(row // K, start, end, start - off, end - off, score)


# --------------------------------------------------------------------------- the localisers


def hough_segments(block: SimilarityBlock, seed_offsets: np.ndarray, band: int, threshold: float = 0.3,
                   max_gap: int = 4, min_length: int = 2, max_segments: int = 3, max_overlap: float = 0.3
                   ) -> FrameSegments:
    """HV: ``seed_offsets (B,)`` in sampled frames (``i - j``); offsets searched within ``band``."""
    sim, lengths = block.sim, block.lengths
    B, n, L = sim.shape
    w = (sim - threshold).clamp_min(0)
    span = n + L - 1
    diag = (torch.arange(n)[:, None] - torch.arange(L)[None, :] + L - 1).expand(B, n, L)
    votes = torch.zeros(B, span).scatter_add_(1, diag.reshape(B, -1), w.reshape(B, -1))
    smooth = votes.clone()
    smooth[:, 1:] += 0.5 * votes[:, :-1]
    smooth[:, :-1] += 0.5 * votes[:, 1:]
    offs = torch.arange(span)[None, :] - (L - 1)
    inside = (offs - torch.from_numpy(np.asarray(seed_offsets, dtype=np.int64))[:, None]).abs() <= band
    smooth = torch.where(inside, smooth, torch.full((), -1.0))
    picks = []
    for _ in range(max_segments):  # the best offsets, each at least 3 apart
        k = smooth.argmax(dim=1)
        picks.append(k)
        near = (torch.arange(span)[None, :] - k[:, None]).abs() <= 2
        smooth = torch.where(near, torch.full((), -1.0), smooth)
    offsets = (torch.stack(picks, dim=1) - (L - 1)).numpy()
    seg = diagonal_segments(sim, lengths, offsets, threshold, max_gap, min_length)
    return suppress(seg, max_overlap, max_segments)


def temporal_network_segments(block: SimilarityBlock, threshold: float = 0.3, top_k: int = 5, max_step: int = 5,
                              min_length: int = 2, max_segments: int = 3, max_overlap: float = 0.3) -> FrameSegments:
    """TN: heaviest monotone paths through every row's ``top_k`` matches (steps of 1..``max_step``)."""
    sim = block.sim
    B, n, L = sim.shape
    k = min(top_k, L)
    top = sim.topk(k, dim=2).indices
    node = torch.zeros_like(sim, dtype=torch.bool).scatter_(2, top, True) & (sim >= threshold)
    weight = torch.where(node, sim - threshold, torch.zeros(()))
    score = torch.full((B, n, L), NEG)
    start_i = torch.zeros((B, n, L), dtype=torch.long)
    start_j = torch.arange(L).expand(B, n, L).clone()
    cols = torch.arange(L)
    for i in range(n):  # row i depends on rows i-max_step .. i-1
        own = weight[:, i]
        lo = max(0, i - max_step)
        if i > 0:
            prev = score[:, lo:i]  # (B, r, L)
            pbest, prow = prev.max(dim=1)
            # best predecessor column in [j - max_step, j - 1]: a max-pool over the shifted row
            padded = torch.nn.functional.pad(pbest, (max_step, 0), value=NEG)[:, None, :]
            win, arg = torch.nn.functional.max_pool1d(padded, max_step, stride=1, return_indices=True)
            win, arg = win[:, 0, :L], arg[:, 0, :L] - max_step  # column of the predecessor
            argc = arg.clamp(0, L - 1)
            from_row = torch.gather(prow, 1, argc) + lo
            link = node[:, i] & (win > 0)
            b = torch.arange(B)[:, None]
            score[:, i] = torch.where(link, own + win, torch.where(node[:, i], own, torch.full((), NEG)))
            start_i[:, i] = torch.where(link, start_i[b, from_row, argc], torch.full((), i))
            start_j[:, i] = torch.where(link, start_j[b, from_row, argc], cols)
        else:
            score[:, 0] = torch.where(node[:, 0], own, torch.full((), NEG))
    b_idx, i_idx, j_idx = torch.nonzero(score > 0, as_tuple=True)
    s_i, s_j = start_i[b_idx, i_idx, j_idx], start_j[b_idx, i_idx, j_idx]
    seg = FrameSegments(b_idx.numpy(), s_i.numpy(), i_idx.numpy() + 1, s_j.numpy(), j_idx.numpy() + 1,
                        score[b_idx, i_idx, j_idx].numpy().astype(np.float64))
    # every node ends a path from its start; of the paths sharing a start, the heaviest is kept
    order = np.lexsort((-seg.score, seg.r0, seg.q0, seg.pair))
    seg = seg.take(order)
    key = np.stack([seg.pair, seg.q0, seg.r0], axis=1)
    first = np.r_[True, (key[1:] != key[:-1]).any(axis=1)] if len(seg) else np.zeros(0, dtype=bool)
    seg = seg.take(first)
    seg = seg.take((seg.q1 - seg.q0 >= min_length) & (seg.r1 - seg.r0 >= min_length))
    return suppress(seg, max_overlap, max_segments)


def dtw_segments(query: np.ndarray, candidates: list[np.ndarray], seed_offsets: np.ndarray, band: int,
                 threshold: float = 0.3, max_gap: int = 4, min_length: int = 2, max_segments: int = 3,
                 contextualised: bool = False, max_overlap: float = 0.3) -> FrameSegments:
    """DTW inside ``band`` of the seed diagonal ``j = i - seed``: both sequences cropped to the part
    the seed says overlaps, warped together (all pairs in one batched DTW), and the runs of the
    path whose frames match are segments (spans on both axes from the run's first to last cell)."""
    C = len(candidates)
    if C == 0 or len(query) == 0:
        return FrameSegments.empty()
    seed = np.asarray(seed_offsets, dtype=np.int64)
    nq = len(query)
    m = np.array([len(c) for c in candidates], dtype=np.int64)
    q_lo = np.clip(seed, 0, nq)  # crop: query rows q_lo.., reference rows r_lo.. on the seed diagonal
    r_lo = np.clip(-seed, 0, m)
    length = np.maximum(np.minimum(nq - q_lo, m - r_lo), 0)
    N = max(1, int(length.max()))
    W = 2 * band + 1
    qf = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32))
    idx = torch.arange(N)
    xq = qf[(torch.from_numpy(q_lo)[:, None] + idx[None]).clamp(0, nq - 1)]  # (C, N, d): the cropped query
    xr = padded([c[r:] for c, r in zip(candidates, r_lo, strict=True)], N, query.shape[1])  # (C, N, d)
    lens = torch.from_numpy(length)
    raw_q, raw_r = torch.nn.functional.normalize(xq, dim=2), torch.nn.functional.normalize(xr, dim=2)
    if contextualised:
        cq = torch.nn.functional.normalize(contextualise_padded(xq, lens), dim=2)
        cr = torch.nn.functional.normalize(contextualise_padded(xr, lens), dim=2)
    else:
        cq, cr = raw_q, raw_r
    # band similarities (C, N, W): column w pairs row i with row i - band + w of the reference
    pad_r = torch.nn.functional.pad(cr, (0, 0, band, band))
    sim_cost = torch.stack([(cq * pad_r[:, w:w + N]).sum(dim=2) for w in range(W)], dim=2)  # W vector ops
    bnd = Band(start=-band, width=W)
    cost = 1.0 - sim_cost
    res = banded_dtw(cost, bnd, np.maximum(length, 1), np.maximum(length, 1))
    # the raw similarity of every path cell, one row per pair: runs of matching cells
    P = res.path.shape[1]
    pi, pj = np.clip(res.path[:, :, 0], 0, N - 1), np.clip(res.path[:, :, 1], 0, N - 1)
    on_path = np.arange(P)[None, :] < res.length[:, None]
    rq = raw_q[torch.arange(C)[:, None], torch.from_numpy(pi)]  # (C, P, d) the path's frames
    rr = raw_r[torch.arange(C)[:, None], torch.from_numpy(pj)]
    s = (rq * rr).sum(dim=2).numpy().astype(np.float64)
    s = np.where(on_path & (length[:, None] > 0), s, -1.0)
    # a segment starts and ends on diagonal steps: the path's horizontal / vertical catch-up moves at a
    # copy's borders (frames still similar to their neighbours) are not part of it
    di, dj = np.diff(res.path[:, :, 0], axis=1), np.diff(res.path[:, :, 1], axis=1)
    diag = (di == 1) & (dj == 1)
    on_diag = np.zeros_like(on_path)
    on_diag[:, 1:] |= diag
    on_diag[:, :-1] |= diag
    matched = bridge_gaps((s >= threshold) & on_diag, max_gap)
    row, a, e = runs(matched)
    cs = np.concatenate([np.zeros((C, 1)), np.cumsum(np.clip(s - threshold, 0, None), axis=1)], axis=1)
    score = cs[row, e] - cs[row, a]
    q0, q1 = pi[row, a] + q_lo[row], pi[row, e - 1] + 1 + q_lo[row]
    r0, r1 = pj[row, a] + r_lo[row], pj[row, e - 1] + 1 + r_lo[row]
    seg = FrameSegments(row, q0, q1, r0, r1, score)
    seg = seg.take((seg.q1 - seg.q0 >= min_length) & (seg.r1 - seg.r0 >= min_length))
    return suppress(seg, max_overlap, max_segments)
