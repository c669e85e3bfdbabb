"""Search: FAISS candidates -> offset re-ranking -> frame-level verification, copy segments,
DRAQ; one query (:func:`search_one`) or every query of a dataset (:func:`search`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from extractors.runtime.progress import progress
from extractors.runtime.timebase import FPS
from extractors.temporal.cte import CTE
from extractors.temporal.tmk import TMK
from index.localise import LocaliserSettings, SampledFrames, localise_sampled, sample_frames
from index.offset_refinement import PEAK_WINDOW_S, band_mass, model_peak_halfwidths, refined_offsets
from index.rerank import Match, background_normalised, offset_range, rerank_with_expansion
from index.verification import diagonal_verify, refine_offsets
from pipeline.config.load import Config
from pipeline.config.schema import SearchConfig, SegmentsConfig
from pipeline.datasets.kinds import search_scope
from pipeline.metrics.segments import Box
from pipeline.steps.alignment import draq_order
from pipeline.steps.describe import configured_model, descriptor_store
from pipeline.steps.frames import FeatureLookup, FrameSource, segment_frame_store
from pipeline.steps.index import search_params
from pipeline.steps.thresholds import config_in_force
from pipeline.store import completeness
from pipeline.store.descriptors import (
    DescriptorStore,
)
from pipeline.store.features import VideoFeatures
from pipeline.store.index_files import read_index
from pipeline.store.layout import Layout
from pipeline.store.results.search import (
    read_attrs,
    read_file_segments,
    read_matches,
    write_results_h5,
    write_search_results,
)

DISAGREEING_S = 1.0  # the two directions of a copy disagree when their offsets miss each other's mirror by this


def search_one(cfg: Config, model, query_id: str, query_fv: torch.Tensor, query_mean: np.ndarray,
               q_feats: VideoFeatures | None, index, store: DescriptorStore,
               features: FeatureLookup | None, allowed: set[str] | None,
               segments: list[Box] | None = None, segment_frames: FrameSource | None = None) -> list[Match]:
    """FAISS candidates -> offset re-ranking with ``model`` -> copy segments and decisions, for one
    query; the segments found are appended to ``segments``.

    The 15-fps ``features`` (and the query's, ``q_feats``) serve the verification and DRAQ; the copy
    segments read ``segment_frames`` when given (the query's too, when it is indexed), else them.
    """
    segments = [] if segments is None else segments
    s = cfg.search
    n_bg = s.background if s.score_normalisation == "background" else 0
    _, names = index.search(query_mean[None], s.top_k + 1 + n_bg, search_params(cfg.index))
    ranked = [c for c in names[0] if c != query_id and (allowed is None or c in allowed) and c in store]
    cands, background = ranked[: s.top_k], ranked[s.top_k:s.top_k + n_bg]
    if not cands:
        return []
    q_frames = len(q_feats.features) if q_feats is not None else store.n_frames.get(query_id, 1)
    offsets = offset_range(model, q_frames, max(store.n_frames[c] for c in cands + background))
    cand_fv = store.get(cands + background)  # (C + background, ...): read once, for the re-ranking and the refinement
    scores_all, off_all = rerank_with_expansion(model, query_fv, cand_fv, offsets,
                                                s.query_expansion, s.qe_n1, s.qe_n2, s.qe_mode)
    raw, off_s = scores_all[: len(cands)], off_all[: len(cands)]
    scores = background_normalised(raw, scores_all[len(cands):]) if n_bg else raw
    order = np.argsort(-scores, kind="stable")[: s.keep]
    located = features is not None and q_feats is not None
    q_full = q_feats  # the query's 15-fps features; read below, only when the offset refinement needs them
    loaded: dict[str, VideoFeatures] = {}

    def frames(c: str) -> VideoFeatures:
        """A candidate's frame features, read once for the verification, the offset refinement and DRAQ."""
        if c not in loaded:
            loaded[c] = features.get(c, q_full.features.shape[1])
        return loaded[c]

    verified = s.verify != "none" and located
    if verified:  # frame-level verification of the kept candidates (and the background)
        kept = [cands[i] for i in order]
        usable = [c for c in kept + background if c in features.where]
        if len(usable) < len(kept) + len(background):
            verified = False
    if verified:
        step = max(1, round(FPS / s.verify_fps))
        v = diagonal_verify(q_feats.features, [frames(c).features for c in usable], step, s.verify_threshold)
        raw_v = v.score[: len(kept)].astype(np.float64)
        scores_v = background_normalised(raw_v, v.score[len(kept):]) if n_bg else raw_v
        offsets_v = refine_offsets(v.offset_frames[: len(kept)], off_s[order] * FPS, step) / FPS
        raw, scores, off_s = raw.copy(), scores.copy(), off_s.copy()
        raw[order], scores[order], off_s[order] = raw_v, scores_v, offsets_v  # the kept ones, re-scored
        order = order[np.argsort(-scores_v, kind="stable")]
    found: list[Box] = []
    source: FrameSource | None = segment_frames if segment_frames is not None else features
    step = localiser_settings(cfg.segments).step
    q_sampled = (segment_frames.sampled(query_id, step) if segment_frames is not None and query_id in segment_frames
                 else sample_frames(q_feats.features, q_feats.timestamps_s, step) if q_feats is not None else None)
    segmented = source is not None and q_sampled is not None
    if segmented:
        usable = [int(i) for i in order if cands[i] in source]
        found = locate_copies(cfg.segments, query_id, q_sampled, [cands[i] for i in usable],
                              [source.sampled(cands[i], step, q_sampled.features.shape[1]) for i in usable],
                              off_s[usable])
        segments += found
    best: dict[str, Box] = {}  # this query's best segment per candidate
    for b in found:
        if b.ref not in best or b.score > best[b.ref].score:
            best[b.ref] = b
    seg_scores = (np.array([best[c].score if c in best else 0.0 for c in cands]) if segmented
                  else np.full(len(cands), np.nan))
    decided = seg_scores >= cfg.segments.copy_threshold
    if s.refine_offsets == "wide_peaks" and decided.any() and features is not None:
        if q_full is None and query_id in features:
            q_full = features.get(query_id)
        copies = [int(i) for i in np.flatnonzero(decided) if cands[i] in features.where] if q_full is not None else []
        if copies:
            off_s = off_s.copy()
            off_s[copies] = refine_wide_peaks(s, cfg.segments.frame_threshold, model, query_fv, cand_fv[copies],
                                              q_full.features, [frames(cands[i]).features for i in copies],
                                              off_s[copies])
    draq = np.full(len(cands), np.nan)
    if cfg.align.draq_top > 0 and located:  # re-rank the top results by alignability (Sync from the Sea)

        top = [int(i) for i in order[: cfg.align.draq_top] if cands[i] in features.where]
        if top:
            by, values = draq_order(q_feats, [frames(cands[i]) for i in top], cfg.align)
            draq[top] = values
            chosen = set(top)
            rest = [i for i in order if int(i) not in chosen]
            order = np.r_[np.asarray(top)[by], rest].astype(np.int64)
    out = []
    for rank, i in enumerate(order):
        b = best.get(cands[i])
        spans = (b.q0, b.q1, b.r0, b.r1) if b is not None else (float("nan"),) * 4
        out.append(Match(query_id, cands[i], float(scores[i]), round(float(off_s[i]), 6), rank + 1, *spans,
                         raw_score=float(raw[i]), copy=bool(decided[i]), segment_score=float(seg_scores[i]),
                         draq=float(draq[i])))
    return out


def refine_wide_peaks(s: SearchConfig, threshold: float, model, query_fv: torch.Tensor, candidate_fv: torch.Tensor,
                      query_frames: np.ndarray, frames: list[np.ndarray], offsets_s: np.ndarray) -> np.ndarray:
    """``offsets_s (C,)`` of the candidates (their descriptors ``candidate_fv (C, ...)`` and 15-fps
    ``frames``), each resolved at frame level
    within ``+-search.refine_band_s`` where ``model``'s peak for it is wider than ``search.refine_peak_s``
    (:mod:`index.offset_refinement`); the others unchanged, and all of them for a model without a
    score-vs-offset curve (TCA: the median offset of its frames' best matches).  Seconds in, seconds out."""
    if not frames or not isinstance(model, TMK | CTE):
        return offsets_s
    centres = np.round(np.asarray(offsets_s, dtype=np.float64) * FPS).astype(np.int64)
    widths = model_peak_halfwidths(model, query_fv, candidate_fv, centres, round(PEAK_WINDOW_S * FPS))
    wide = np.flatnonzero(widths > s.refine_peak_s * FPS)
    out = np.asarray(offsets_s, dtype=np.float64).copy()
    if len(wide):
        out[wide] = refined_offsets(query_frames, [frames[k] for k in wide], centres[wide],
                                    round(s.refine_band_s * FPS), threshold) / FPS
    return out


def localiser_settings(sg: SegmentsConfig) -> LocaliserSettings:
    """``segments:`` in the localiser's units (compared frames of the 15-fps stream)."""
    step = max(1, round(FPS / sg.fps))
    per = FPS / step  # compared frames per second

    def frames(seconds: float) -> int:
        return round(seconds * per)

    return LocaliserSettings(method=sg.method, step=step, threshold=sg.frame_threshold,
                             band=frames(sg.band_s) if sg.method != "offset" else 0, max_gap=frames(sg.max_gap_s),
                             min_length=max(1, frames(sg.min_length_s)), max_segments=sg.max_segments,
                             max_overlap=sg.max_overlap, tn_top_k=sg.tn_top_k,
                             tn_max_step=max(1, frames(sg.tn_max_step_s)), contextualise=sg.contextualise,
                             max_elements=sg.max_elements)


def locate_copies(sg: SegmentsConfig, query_id: str, query: SampledFrames, ref_ids: list[str],
                  refs: list[SampledFrames], offsets_s: np.ndarray) -> list[Box]:
    """The frame-level stage of one query: copy segments (seconds) in each reference, seeded by the
    re-ranking model's offsets (frames at the compared rate, ``segments.fps``)."""
    found = localise_sampled(query, refs, np.asarray(offsets_s, dtype=np.float64), localiser_settings(sg))
    return [Box(query_id, ref_ids[c.candidate], c.query_start_s, c.query_end_s, c.ref_start_s, c.ref_end_s,
                c.score) for c in found]


def reads_query_frames(layout: Layout) -> bool:
    """Whether a batch search reads every query's 15-fps features: for the verification, DRAQ, or copy
    segments without a segment-frame store."""
    cfg = layout.cfg
    return cfg.search.verify != "none" or cfg.align.draq_top > 0 or not layout.uses_segment_frames


def needs_full_frames(layout: Layout) -> bool:
    """Whether a batch search reads 15-fps features at all: :func:`reads_query_frames`, or the offsets of
    decided copies resolved at frame level (``search.refine_offsets``) or their two directions made to
    agree (``search.agree_directions``, in the merge): those pairs' features only."""
    s = layout.cfg.search
    return reads_query_frames(layout) or s.refine_offsets != "none" or s.agree_directions


class SearchContext:
    """What every query of a batch search reads: the index, the descriptor stores, the index's mean
    frames, the frames, the model and the database the queries may match."""

    def __init__(self, layout: Layout, model_name: str) -> None:
        cfg = layout.cfg
        self.index = read_index(layout.index_dir)
        self.store = descriptor_store(layout, model_name)
        index_model = cfg.index.model
        index_store = self.store if index_model == model_name else descriptor_store(layout, index_model)
        ids, means = index_store.mean_frames()
        self.mean_of = dict(zip(ids, means, strict=True))
        self.features = FeatureLookup.of_layout(layout) if needs_full_frames(layout) else None
        self.query_frames = reads_query_frames(layout)  # every query's features, read beside its descriptor
        self.segment_frames = segment_frame_store(layout) if layout.uses_segment_frames else None
        self.allowed = search_scope(cfg.dataset, self.store.ids)[1]
        self.model = configured_model(layout, model_name)


def search_shard(layout: Layout, model_name: str, shard: int, show_progress: bool = True) -> Path:
    """The queries of search shard ``shard`` (:attr:`Layout.query_shards`) that have descriptors,
    re-ranked with ``model_name``; one results file."""
    cfg = config_in_force(layout)
    ctx = SearchContext(layout, model_name)
    queries = [q for q in layout.query_shards[shard] if q in ctx.store]
    rows: list[Match] = []
    segments: list[Box] = []
    label = f"search {model_name}" + (f" {shard + 1}/{len(layout.query_shards)}" if len(layout.query_shards) > 1
                                      else "")
    for q in progress(queries, unit="query", desc=label, wanted=show_progress):
        qf = ctx.features.get(q) if ctx.query_frames and ctx.features is not None and q in ctx.features else None
        rows += search_one(cfg, ctx.model, q, ctx.store.get([q]), ctx.mean_of[q], qf, ctx.index, ctx.store,
                           ctx.features, ctx.allowed, segments, ctx.segment_frames)
    return write_results_h5(layout.search_shard_path(model_name, shard), rows,
                            {"model": model_name, "shard": shard, "n_queries": len(queries)}, segments,
                            cfg.segments.copy_threshold)


def merge_search(layout: Layout, model_name: str) -> Path:
    """The results of every search shard of ``model_name``, in query order, as one search result."""
    cfg = config_in_force(layout)
    rows: list[Match] = []
    segments: list[Box] = []
    n_queries = 0
    for s in range(len(layout.query_shards)):
        path = layout.search_shard_path(model_name, s)
        rows += read_matches(path)
        segments += read_file_segments(path)[0]
        n_queries += int(read_attrs(path)["n_queries"])
    if cfg.search.agree_directions:
        rows = agreeing_directions(rows, FeatureLookup.of_layout(layout), cfg.segments.frame_threshold)
    return write_search_results(layout.search_dir(model_name), rows,
                                {"model": model_name, "dataset": cfg.name, "n_queries": n_queries,
                                 "segments_method": cfg.segments.method,
                                 "frame_threshold": cfg.segments.frame_threshold}, segments,
                                cfg.segments.copy_threshold)


def agreeing_directions(rows: list[Match], features: FeatureLookup, threshold: float) -> list[Match]:
    """``rows`` with the two directions of every pair decided a copy both ways made to agree: where the
    offsets of ``a -> b`` and ``b -> a`` do not mirror each other (by :data:`DISAGREEING_S` or more), the
    one whose diagonal of the 15-fps frame similarity holds more similarity above ``threshold`` is kept
    and the other direction gets its mirror.  Pairs a video of which has no features stay as they are; a
    damaged feature file stops the merge with an error naming it, as the search's own reads of it do."""
    at = {(r.query, r.match): k for k, r in enumerate(rows) if r.copy}
    both = [(k, at[(m, q)]) for (q, m), k in at.items() if q < m and (m, q) in at]
    out = list(rows)
    for a, b in both:  # the few pairs decided both ways that disagree: their features read once each
        if abs(rows[a].offset_s + rows[b].offset_s) < DISAGREEING_S:
            continue
        q, m = rows[a].query, rows[a].match
        if q not in features or m not in features:
            continue
        qf = features.get(q).features
        options = np.round(np.array([rows[a].offset_s, -rows[b].offset_s]) * FPS).astype(np.int64)
        mf = features.get(m, qf.shape[1]).features
        kept = options[int(band_mass(qf, [mf, mf], options, 0, threshold)[:, 0].argmax())] / FPS
        out[a] = dataclasses.replace(rows[a], offset_s=round(float(kept), 6))
        out[b] = dataclasses.replace(rows[b], offset_s=round(float(-kept), 6))
    return out


def search(layout: Layout, model_name: str, show_progress: bool = True) -> Path:
    """Every query of the dataset, shard by shard (the shards already done are kept), then merged."""
    for s in range(len(layout.query_shards)):
        if not completeness.search_shard_complete(layout.search_shard_path(model_name, s)):
            search_shard(layout, model_name, s, show_progress)
    return merge_search(layout, model_name)
