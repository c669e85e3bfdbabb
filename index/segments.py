"""Copied segments of candidate pairs from their frame-to-frame similarities.

Three localisers over the same inputs (a query and its candidates, frame features sub-sampled by the
caller, unit rows):

* :func:`hough_segments` (HV): every frame pair within ``band`` of the seed offset (the TMK / CTE one)
  votes for its offset ``i - j`` with its similarity above ``threshold``; along the winning diagonals
  (and their two neighbours), runs of matching frames (gaps up to ``max_gap`` bridged) are segments.
* :func:`temporal_network_paths` (TN, the VCSL baseline, on :func:`top_matches`): each query frame's ``top_k`` most
  similar reference frames above ``threshold`` are nodes; a node links to the nodes at most
  ``max_step`` frames later on both axes; the heaviest paths (summed similarity above the threshold)
  are segments, from their first node to their last.
* :func:`dtw_segments`: DTW (``index.dtw``) on the (optionally contextualised) features inside the
  band around the seed diagonal; the runs of the warping path's diagonal steps whose frames match are
  segments.

Every localiser returns :class:`FrameSegments` in sampled-frame indices (end exclusive) with a score
``sum(similarity - threshold)`` over the segment's matched frames: zero for unrelated material, larger
for a longer or closer copy; the caller divides by its sampling rate to get seconds.  Overlapping
segments of one pair are suppressed (intersection over the smaller box above ``max_overlap``), the
best ``max_segments`` kept.

Batched over candidates, memory bounded by the caller: HV and DTW only need the similarities inside
the offset band (:func:`band_similarity`: ``(B, N, W)``, a batched matrix product per chunk of rows,
never the full matrix); TN needs every similarity (:func:`blocks`: padded ``(B, n, L)`` blocks).  The
loops that remain run over row chunks, over the query's rows or a DTW's rows (each depends on the
previous one) and over at most ``max_segments`` picks - never over cells or candidates.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from index.dtw import Band, banded_dtw, contextualise

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
        sim = torch.matmul(q, pad.transpose(1, 2))  # (B, n, L): one batched product
        padding = torch.arange(L)[None, :] >= torch.from_numpy(lengths[c0:c1])[:, None]
        sim.masked_fill_(padding[:, None, :], NEG)  # in place: no second (B, n, L) tensor
        yield SimilarityBlock(sim, lengths[c0:c1], c0)
        c0 = c1


@dataclass(frozen=True)
class BandBlock:
    """Similarities in a band: ``sim[b, i, w]`` pairs query row ``row0[b] + i`` with candidate row
    ``row0[b] + i + shift[b] + w`` (``(B, N, W)``; ``NEG`` where either row does not exist)."""

    sim: torch.Tensor
    valid: torch.Tensor
    row0: np.ndarray
    shift: np.ndarray


def band_similarity(query: torch.Tensor, cands: torch.Tensor, q_len: np.ndarray, c_len: np.ndarray,
                    row0: np.ndarray, rows: np.ndarray, shift: np.ndarray, width: int, chunk: int = 64
                    ) -> BandBlock:
    """Band similarities of ``query`` (``(Nq, d)`` shared, or ``(B, Nq, d)`` one per pair, true lengths
    ``q_len (B,)``) with ``cands (B, L, d)`` (true lengths ``c_len``): ``rows[b]`` rows from ``row0[b]``;
    one batched product of a chunk of rows with the candidate rows its band reaches, per chunk."""
    B, L, _ = cands.shape
    N = max(1, int(np.max(rows, initial=0)))
    W = width
    q = query if query.dim() == 3 else query[None]
    per_pair = q.shape[0] == B and query.dim() == 3
    r0 = torch.from_numpy(np.asarray(row0, dtype=np.int64))
    sh = torch.from_numpy(np.asarray(shift, dtype=np.int64))
    b_idx = torch.arange(B)[:, None]
    sim = torch.empty((B, N, W), dtype=torch.float32)
    for t0 in range(0, N, chunk):  # chunks of rows: (B, T, d) x (B, T + W - 1, d)
        T = min(chunk, N - t0)
        qi = (r0[:, None] + t0 + torch.arange(T)[None]).clamp(0, q.shape[1] - 1)
        Q = q[b_idx, qi] if per_pair else q[0][qi]
        rj = (r0[:, None] + t0 + sh[:, None] + torch.arange(T + W - 1)[None]).clamp(0, L - 1)
        S = torch.bmm(Q, cands[b_idx, rj].transpose(1, 2))  # (B, T, T + W - 1)
        diag = (torch.arange(T)[:, None] + torch.arange(W)[None]).expand(B, T, W)
        sim[:, t0:t0 + T] = torch.gather(S, 2, diag)
    i = torch.arange(N)[None, :, None]
    qrow = r0[:, None, None] + i
    crow = qrow + sh[:, None, None] + torch.arange(W)[None, None, :]
    valid = ((i < torch.from_numpy(np.asarray(rows))[:, None, None]) & (qrow >= 0)
             & (qrow < torch.from_numpy(np.asarray(q_len))[:, None, None])
             & (crow >= 0) & (crow < torch.from_numpy(np.asarray(c_len))[:, None, None]))
    return BandBlock(torch.where(valid, sim, torch.full((), NEG)), valid, np.asarray(row0), np.asarray(shift))


# --------------------------------------------------------------------------- shared helpers


def padded(seqs: list[np.ndarray], length: int, dim: int) -> torch.Tensor:
    """``(B, length, dim)`` float32: each ``(L_b, dim)`` sequence (any strides), zero rows after it;
    one copy of the data."""
    views = [torch.from_numpy(s if s.dtype == np.float32 else s.astype(np.float32)).reshape(-1, dim)
             for s in seqs]
    out = torch.nn.utils.rnn.pad_sequence([*views, torch.zeros((length, dim))], batch_first=True)[:-1]
    return out[:, :length]


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


def scored_runs(s: np.ndarray, threshold: float, max_gap: int, allowed: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs of matching frames along every row of similarities ``s (R, n)``: a frame matches when it
    reaches ``threshold`` (and is ``allowed``), gaps of at most ``max_gap`` are bridged; ``row, start,
    end`` (end exclusive) and each run's score, its similarity above the threshold summed."""
    matched = s >= threshold if allowed is None else (s >= threshold) & allowed
    row, start, end = runs(bridge_gaps(matched, max_gap))
    cs = np.concatenate([np.zeros((len(s), 1)), np.cumsum(np.clip(s - threshold, 0, None), axis=1)], axis=1)
    return row, start, end, cs[row, end] - cs[row, start]


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


# --------------------------------------------------------------------------- the localisers


def _column_runs(bb: BandBlock, picks: torch.Tensor, threshold: float, max_gap: int, min_length: int
                 ) -> FrameSegments:
    """Runs of matching frames along band columns ``picks (B, K)`` of ``bb``: a frame matches when its
    best similarity over the column and its two neighbours (a slightly drifting copy) reaches
    ``threshold``."""
    B, N, W = bb.sim.shape
    K = picks.shape[1]
    best = torch.full((B, K, N), NEG)
    for dw in (-1, 0, 1):  # the diagonal and its two neighbours
        col = (picks + dw).clamp(0, W - 1)[:, :, None].expand(B, K, N)
        vals = torch.gather(bb.sim.permute(0, 2, 1), 1, col)  # sim[b, i, col[b, k]] -> (B, K, N)
        best = torch.maximum(best, vals)
    row, start, end, score = scored_runs(best.reshape(B * K, N).numpy().astype(np.float64), threshold, max_gap)
    long_enough = end - start >= min_length
    row, start, end, score = row[long_enough], start[long_enough], end[long_enough], score[long_enough]
    b = row // K
    q0 = bb.row0[b] + start
    r0 = q0 + bb.shift[b] + picks.numpy().reshape(-1)[row]
    return FrameSegments(b, q0, q0 + (end - start), r0, r0 + (end - start), score)


def seed_band(query: np.ndarray, candidates: list[np.ndarray], seed_offsets: np.ndarray, band: int) -> BandBlock:
    """Every offset within ``band`` of each candidate's seed (``i - j``): the band over the query rows
    where any of them overlaps the candidate; column ``w`` is the offset ``seed + band - w``."""
    seeds = np.asarray(seed_offsets, dtype=np.int64)
    nq = len(query)
    m = np.array([len(c) for c in candidates], dtype=np.int64)
    row0 = np.clip(seeds - band, 0, nq)
    end = np.clip(m + seeds + band, 0, nq)
    rows = np.maximum(end - row0, 0)
    q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32))
    c = padded(candidates, max(1, int(m.max(initial=1))), query.shape[1])
    return band_similarity(q, c, np.full(len(candidates), nq), m, row0, rows, -seeds - band, 2 * band + 1)


def hough_segments(bb: BandBlock, band: int, threshold: float = 0.3, max_gap: int = 4, min_length: int = 2,
                   max_segments: int = 3, max_overlap: float = 0.3, search: int | None = None) -> FrameSegments:
    """HV over a :func:`seed_band` block: offsets voted for by the excess similarity of their frames,
    the best ones (at least 3 apart, within ``search`` of the seed: default the whole band) kept."""
    excess = (bb.sim - threshold).clamp_min(0)
    votes = excess.sum(dim=1)  # (B, W)
    smooth = votes.clone()
    smooth[:, 1:] += 0.5 * votes[:, :-1]
    smooth[:, :-1] += 0.5 * votes[:, 1:]
    W = votes.shape[1]
    reach = band if search is None else search
    cols = torch.arange(W)[None, :]
    smooth = torch.where((cols - band).abs() <= reach, smooth, torch.full((), -1.0))
    picks = []
    for _ in range(max_segments if reach > 0 else 1):  # the best offsets, each at least 3 apart
        k = smooth.argmax(dim=1)
        picks.append(k)
        smooth = torch.where((cols - k[:, None]).abs() <= 2, torch.full((), -1.0), smooth)
    seg = _column_runs(bb, torch.stack(picks, dim=1), threshold, max_gap, min_length)
    return suppress(seg, max_overlap, max_segments)


def top_matches(block: SimilarityBlock, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each query row's ``top_k`` most similar candidate rows: ``(values (B, n, K) float64, columns
    (B, n, K))``, best first; rows of a candidate shorter than ``top_k`` padded with ``NEG``."""
    sim = block.sim
    K = min(top_k, sim.shape[2])
    val_t, col_t = sim.topk(K, dim=2)
    val, col = val_t.numpy().astype(np.float64), col_t.numpy().astype(np.int64)
    if top_k > K:
        B, n, _ = sim.shape
        val = np.concatenate([val, np.full((B, n, top_k - K), NEG)], axis=2)
        col = np.concatenate([col, np.zeros((B, n, top_k - K), np.int64)], axis=2)
    return val, col


def temporal_network_paths(val: np.ndarray, col: np.ndarray, threshold: float = 0.3, max_step: int = 5,
                           min_length: int = 2, max_segments: int = 3, max_overlap: float = 0.3) -> FrameSegments:
    """TN: heaviest monotone paths through every row's top matches ``val``/``col (B, n, K)``
    (:func:`top_matches`; steps of 1..``max_step`` on both axes), for all ``B`` candidates at once.

    Row ``i``'s nodes look for their best predecessor among the ``max_step`` rows above
    (``(B, K, max_step K)`` comparisons), carrying the path's start (row and column, one code)."""
    B, n, K = val.shape
    if n == 0 or K == 0:
        return FrameSegments.empty()
    node = val >= threshold
    own_all = np.where(node, val - threshold, NEG)
    score = np.full((B, n, K), NEG)
    width = int(col.max(initial=0)) + 1
    start = (np.arange(n)[None, :, None] * width + col).astype(np.int64)  # start row * width + start column
    rows, ks = np.arange(B)[:, None], np.arange(K)[None, :]
    score[:, 0] = own_all[:, 0]
    for i in range(1, n):  # row i depends on rows i - max_step .. i - 1 (small arrays: NumPy per row)
        lo = max(0, i - max_step)
        prev = score[:, lo:i].reshape(B, 1, -1)  # (B, 1, r K)
        gap = col[:, i][:, :, None] - col[:, lo:i].reshape(B, 1, -1)  # (B, K, r K) column steps
        cand = np.where((gap > 0) & (gap <= max_step), prev, NEG)  # a non-positive best links nothing
        arg = cand.argmax(axis=2)  # (B, K)
        best = cand[rows, ks, arg]
        link = node[:, i] & (best > 0)
        score[:, i] = np.where(link, own_all[:, i] + best, own_all[:, i])
        start[:, i] = np.where(link, start[:, lo:i].reshape(B, -1)[rows, arg], start[:, i])
    b_idx, i_idx, k_idx = np.nonzero(score > 0)
    first_row, first_col = np.divmod(start[b_idx, i_idx, k_idx], width)
    seg = FrameSegments(b_idx, first_row, i_idx + 1, first_col, col[b_idx, i_idx, k_idx] + 1,
                        score[b_idx, i_idx, k_idx])
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
    path's diagonal steps whose frames match are segments (spans on both axes)."""
    C = len(candidates)
    if C == 0 or len(query) == 0:
        return FrameSegments.empty()
    seed = np.asarray(seed_offsets, dtype=np.int64)
    nq = len(query)
    m = np.array([len(c) for c in candidates], dtype=np.int64)
    q_lo = np.clip(seed, 0, nq)  # crop: query rows q_lo.., reference rows r_lo.. on the seed diagonal
    r_lo = np.clip(-seed, 0, m)
    length = np.maximum(np.minimum(nq - q_lo, m - r_lo), 0)
    W = 2 * band + 1
    q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32))
    cp = padded(candidates, max(1, int(m.max())), query.shape[1])
    raw = band_similarity(q, cp, np.full(C, nq), m, q_lo, length, r_lo - q_lo - band, W)
    if contextualised:  # each pair's crop contextualised on its own
        N = max(1, int(length.max()))
        idx = torch.arange(N)[None]
        lens = torch.from_numpy(length)
        xq = q[(torch.from_numpy(q_lo)[:, None] + idx).clamp(0, nq - 1)]
        xr = cp[torch.arange(C)[:, None], (torch.from_numpy(r_lo)[:, None] + idx).clamp(0, cp.shape[1] - 1)]
        cq = torch.nn.functional.normalize(contextualise(xq, lens), dim=2)
        cr = torch.nn.functional.normalize(contextualise(xr, lens), dim=2)
        zero = np.zeros(C, dtype=np.int64)
        sim_cost = band_similarity(cq, cr, length, length, zero, length, zero - band, W).sim
    else:
        sim_cost = raw.sim
    res = banded_dtw(1.0 - sim_cost, Band(start=-band, width=W), np.maximum(length, 1), np.maximum(length, 1))
    # the raw similarity of every path cell, one row per pair: runs of matching diagonal steps
    P = res.path.shape[1]
    pi, pj = np.clip(res.path[:, :, 0], 0, None), np.clip(res.path[:, :, 1], 0, None)
    on_path = np.arange(P)[None, :] < res.length[:, None]
    w = np.clip(pj - pi + band, 0, W - 1)
    s = raw.sim.numpy()[np.arange(C)[:, None], np.clip(pi, 0, raw.sim.shape[1] - 1), w].astype(np.float64)
    s = np.where(on_path & (length[:, None] > 0), s, -1.0)
    # a segment starts and ends on diagonal steps: the path's horizontal / vertical catch-up moves at a
    # copy's borders (frames still similar to their neighbours) are not part of it
    di, dj = np.diff(res.path[:, :, 0], axis=1), np.diff(res.path[:, :, 1], axis=1)
    diag = (di == 1) & (dj == 1)
    on_diag = np.zeros_like(on_path)
    on_diag[:, 1:] |= diag
    on_diag[:, :-1] |= diag
    row, a, e, score = scored_runs(s, threshold, max_gap, allowed=on_diag)
    q0, q1 = pi[row, a] + q_lo[row], pi[row, e - 1] + 1 + q_lo[row]
    r0, r1 = pj[row, a] + r_lo[row], pj[row, e - 1] + 1 + r_lo[row]
    seg = FrameSegments(row, q0, q1, r0, r1, score)
    seg = seg.take((seg.q1 - seg.q0 >= min_length) & (seg.r1 - seg.r0 >= min_length))
    return suppress(seg, max_overlap, max_segments)
