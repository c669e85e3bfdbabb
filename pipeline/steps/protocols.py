"""The evaluation protocols (a dataset kind names one): event retrieval (EVVE), copy pairs (VCDB, VSC,
VCSL: pair-level AP, segment metrics, copy decisions), alignment (Climbing, Madonna, generated) and a
summary; :data:`PROTOCOLS` is their registry.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from extractors.runtime.timebase import FPS
from index.dtw import dtw
from index.rerank import Match
from pipeline.config.load import Config
from pipeline.config.schema import DatasetConfig, SegmentsConfig
from pipeline.datasets.ground_truth import GroundTruth
from pipeline.datasets.readers import AlignItem
from pipeline.metrics.copies import max_f1, pr_auc, precision_recall_curve, segment_pr, spans_overlap
from pipeline.metrics.events import evve_average_precision, evve_map
from pipeline.metrics.localisation import accuracy_below, localization_errors, map_localization
from pipeline.metrics.pair_level import pair_level
from pipeline.metrics.segments import Box, vcsl_metrics, vsc_micro_ap
from pipeline.store.descriptors import (
    TemporalModel,
    describe_video,
)
from pipeline.store.results.segments import ground_truth_boxes

log = logging.getLogger(__name__)


def _finite(x: float) -> bool:
    return x is not None and math.isfinite(x)


def evaluate_evve(gt: GroundTruth, rows: list[Match]) -> dict:
    db = gt.database
    col = {v: i for i, v in enumerate(db)}
    queries = [q for q in gt.queries]
    scores = np.full((len(queries), len(db)), -np.inf)
    qi = {q: i for i, q in enumerate(queries)}
    for r in rows:
        if r.query in qi and r.match in col:
            scores[qi[r.query], col[r.match]] = r.score
    by_key = {e.key: e for e in gt.evve}
    res = evve_map(scores, [by_key[q].event for q in queries], [by_key[d].event for d in db],
                           np.array([by_key[d].label for d in db]))
    return {"metrics": {"mAP_pooled": res.map_pooled, "mAP_event_mean": res.map_event_mean},
            "per_query": [{"query": q, "event": by_key[q].event, "AP": float(a)}
                          for q, a in zip(queries, res.ap_per_query, strict=True)],
            "per_event": res.ap_per_event}


def pair_index(gt: GroundTruth) -> dict[tuple[str, str], list[tuple[float, float, float, float]]]:
    """Ground-truth copies by ordered (query, match): spans (q0, q1, m0, m1) in seconds."""
    out: dict[tuple[str, str], list] = defaultdict(list)
    for p in gt.pairs:
        out[(p.video_a, p.video_b)].append((p.a_begin_s, p.a_end_s, p.b_begin_s, p.b_end_s))
        out[(p.video_b, p.video_a)].append((p.b_begin_s, p.b_end_s, p.a_begin_s, p.a_end_s))
    return out


def pair_score_record(scores: dict[frozenset, float], true: set[frozenset], n_videos: int) -> dict:
    """The ranking behind pair-level AP, for the report: each reported pair (sorted names) with its score
    and truth, the true pairs never reported (they score 0), and the number of unordered pairs."""
    keys = sorted(scores, key=lambda k: sorted(map(str, k)))
    return {"pairs": [sorted(map(str, k)) for k in keys], "scores": [round(float(scores[k]), 6) for k in keys],
            "true": [k in true for k in keys],
            "true_unreported": sorted(sorted(map(str, k)) for k in true if k not in scores),
            "n_pairs": n_videos * (n_videos - 1) // 2}


def pair_level_metrics(gt: GroundTruth, rows: list[Match], n_videos: int) -> tuple[dict, dict]:
    """Every unordered video pair ranked by its best score in either direction: pair AP, best F1,
    candidate recall, and for the true pairs found, the share whose offset (from the
    best-scoring direction) is within 1 s and 0.1 s of the truth; and that ranking
    (:func:`pair_score_record`)."""
    pairs = pair_index(gt)
    best: dict[frozenset, Match] = {}
    for r in rows:
        key = frozenset((r.query, r.match))
        if len(key) == 2 and (key not in best or r.score > best[key].score):
            best[key] = r
    true = {frozenset(k) for k in pairs if k[0] != k[1]}
    scores = {k: m.score for k, m in best.items()}
    pl = pair_level(scores, true, n_videos)
    found = [m for k, m in best.items() if k in true]
    e = np.asarray([min(abs(m.offset_s - (g[0] - g[2])) for g in pairs[(m.query, m.match)]) for m in found],
                   dtype=np.float64)
    detected = np.asarray([m.score >= pl.best_f1_threshold for m in found], dtype=bool)

    def share(mask: np.ndarray, limit: float) -> float:
        return float((e[mask] < limit).mean()) if mask.any() else float("nan")

    everything = np.ones(len(e), dtype=bool)
    summary = {"pair_AP": pl.ap, "pair_best_F1": pl.best_f1, "pair_recall_in_results": pl.recall_reported,
               "true_pairs": pl.n_true, "pairs_ranked": pl.n_pairs,
               "found_pairs_offset_within_1s": share(everything, 1.0),
               "found_pairs_offset_within_0.1s": share(everything, 0.1),
               # detected: the true pairs scoring at or above the best-F1 threshold
               "detected_pairs": int(detected.sum()),
               "detected_pairs_offset_within_1s": share(detected, 1.0),
               "detected_pairs_offset_within_0.1s": share(detected, 0.1)}
    return summary, pair_score_record(scores, true, n_videos)


def evaluate_pairs(gt: GroundTruth, rows: list[Match], durations: dict[str, float],
                   mode: str = "corrected", n_videos: int | None = None) -> dict:
    """Copy detection + localisation on search results (VCDB-like ground truth)."""
    pairs = pair_index(gt)
    scores, ok, qside = [], [], []
    found: dict[tuple[str, str], float] = {}
    per_query: dict[str, list[Match]] = defaultdict(list)
    for r in rows:
        per_query[r.query].append(r)
        if _finite(r.query_start_s):
            q0, q1, m0, m1 = r.query_start_s, r.query_end_s, r.match_start_s, r.match_end_s
        else:  # no frame-level segment: the whole query placed at the offset
            q0, q1 = 0.0, durations.get(r.query, 0.0)
            m0, m1 = q0 - r.offset_s, q1 - r.offset_s
        good = side = False
        for g in pairs.get((r.query, r.match), []):
            if spans_overlap(q0, q1, g[0], g[1]):
                side = True
                if spans_overlap(m0, m1, g[2], g[3]):
                    good = True
                    break
        scores.append(r.score)
        ok.append(good)
        qside.append(side or bool(pairs.get((r.query, r.match))))
        if pairs.get((r.query, r.match)):
            # ground-truth offset of a copy: q0 - m0 (query time minus match time)
            found[(r.query, r.match)] = min(abs(r.offset_s - (g[0] - g[2]))
                                            for g in pairs[(r.query, r.match)])
    queries = sorted({r.query for r in rows} | {q for q, _ in pairs})
    searched = {r.query for r in rows}
    missed = [k for k in pairs if k[0] in searched and k not in found]
    s = np.asarray(scores, dtype=np.float64)
    okv, qsv = np.asarray(ok, bool), np.asarray(qside, bool)
    pr = segment_pr(s, okv, qsv, mode=mode)
    # copies never retrieved: a missed positive each
    probas = np.r_[pr.probas, np.zeros(len(missed))]
    labels = np.r_[pr.labels, np.ones(len(missed), dtype=np.int64)]
    precision, recall, _ = precision_recall_curve(labels, probas)
    gt_keys = [k for k in pairs if k[0] in searched]
    errors = np.array([found.get(k, np.inf) for k in gt_keys])
    acc = accuracy_below(errors)
    aps, table = [], []
    for q in queries:
        partners = {m for (a, m) in pairs if a == q}
        lst = sorted(per_query.get(q, []), key=lambda r: r.rank)
        if partners and q in searched:
            rel = np.array([1 if r.match in partners else 0 for r in lst])
            aps.append(evve_average_precision(rel, len(partners)))
        top = lst[0] if lst else None
        table.append({"query": q, "top_match": top.match if top else None,
                      "score": top.score if top else None, "offset_s": top.offset_s if top else None,
                      "true_partners": sorted(partners),
                      "offset_error_s": (found.get((q, top.match)) if top else None)})
    pair, ranking = pair_level_metrics(gt, rows, n_videos) if n_videos else ({}, None)
    return {"metrics": {**pair, "segment_max_F1": max_f1(precision, recall),
                        "segment_PR_AUC": pr_auc(precision, recall),
                        **{f"localisation_accuracy_below_{t:g}s": v for t, v in acc.items()},
                        "mAP": float(np.mean(aps)) if aps else float("nan"),
                        "ground_truth_pairs": len(gt_keys), "pairs_found": len(found)},
            "curves": {"precision": precision.tolist(), "recall": recall.tolist(),
                       "localisation_errors_s": [e if math.isfinite(e) else None for e in errors],
                       **({"pair_scores": ranking} if ranking is not None else {})},
            "per_query": table, "vcdb_mode": mode}


def segment_metrics(gt: GroundTruth, rows: list[Match], segments: list[Box], copy_threshold: float,
                    n_videos: int) -> dict:
    """The frame-level stage judged on the searched queries: VSC 2022 micro-AP over every segment (ranked
    by score), VCSL precision / recall / F1 of the copies (segments at or above ``copy_threshold``),
    and the copy / no-copy decision over unordered video pairs (decided when either direction is),
    with the segment-score threshold that would give the best F1 on this dataset (calibration)."""
    searched = {r.query for r in rows}
    gtb = ground_truth_boxes(gt.pairs, searched)
    segs = [b for b in segments if b.query in searched]
    copies = [b for b in segs if b.score >= copy_threshold]
    vsc = vsc_micro_ap(gtb, segs)
    vcsl = vcsl_metrics(gtb, copies)
    true = {frozenset((p.video_a, p.video_b)) for p in gt.pairs if p.video_a != p.video_b}
    decided = {frozenset((r.query, r.match)) for r in rows if r.copy}
    tp = len(decided & true)
    prec = tp / len(decided) if decided else float("nan")
    rec = tp / len(true) if true else float("nan")
    best: dict[frozenset, float] = {}
    for b in segs:
        k = frozenset((b.query, b.ref))
        best[k] = max(best.get(k, 0.0), b.score)
    pl = pair_level(best, true, n_videos)
    return {"metrics": {"VSC_segment_uAP": vsc.ap, "VCSL_precision": vcsl.precision, "VCSL_recall": vcsl.recall,
                        "VCSL_F1": vcsl.f1, "VCSL_false_rejection": vcsl.false_rejection,
                        "VCSL_false_alarm": vcsl.false_alarm, "copy_threshold": copy_threshold,
                        "copy_decision_precision": prec, "copy_decision_recall": rec,
                        "copy_decision_F1": (2 * prec * rec / (prec + rec) if decided and true and prec + rec > 0
                                             else 0.0),
                        "segment_score_pair_AP": pl.ap, "copy_threshold_best_F1": pl.best_f1_threshold},
            "curves": {"vsc_precision": vsc.precision.tolist(), "vsc_recall": vsc.recall.tolist(),
                       "segment_scores": {"copies": sorted(best.get(k, 0.0) for k in true),
                                          "non_copies": sorted(v for k, v in best.items() if k not in true),
                                          "non_copies_without_segment": (n_videos * (n_videos - 1) // 2 - len(true)
                                                                         - sum(1 for k in best if k not in true)),
                                          "threshold": copy_threshold}}}


def pair_views(sg: SegmentsConfig, rows: list[Match], segments: list[Box], features, gt: GroundTruth, n: int = 3,
               max_side: int = 160) -> list[dict]:
    """For the report: the ``n`` best-scoring copies' frame similarity matrices (at most ``max_side``
    compared frames a side), their detected segments, the ground truth and the DTW path (seconds)."""

    pairs = pair_index(gt)
    chosen = sorted((r for r in rows if r.segment_score == r.segment_score), key=lambda r: -r.segment_score)
    step = max(1, round(FPS / sg.fps))
    out: list[dict] = []
    seen: set[frozenset] = set()
    for r in chosen:
        key = frozenset((r.query, r.match))
        if len(out) >= n or key in seen or r.query not in features.where or r.match not in features.where:
            continue
        seen.add(key)
        qa, ra = features.get(r.query), features.get(r.match)
        sa = max(step, step * -(-len(qa.features) // (step * max_side)))  # stride bounding the matrix side
        sb = max(step, step * -(-len(ra.features) // (step * max_side)))
        a, b = qa.features[::sa].astype(np.float32), ra.features[::sb].astype(np.float32)
        if len(a) == 0 or len(b) == 0:
            continue
        sim = a @ b.T
        path = dtw(torch.from_numpy(1.0 - sim)).cells(0)
        ta, tb = qa.timestamps_s[::sa], ra.timestamps_s[::sb]
        out.append({"query": r.query, "match": r.match, "segment_score": r.segment_score, "copy": r.copy,
                    "query_times_s": ta.tolist(), "ref_times_s": tb.tolist(),
                    "similarity": np.round(sim, 3).tolist(),
                    "segments": [[b.q0, b.q1, b.r0, b.r1, b.score] for b in segments
                                 if b.query == r.query and b.ref == r.match],
                    "ground_truth": [list(g) for g in pairs.get((r.query, r.match), [])],
                    "dtw_path_s": [[float(ta[i]), float(tb[j])] for i, j in path]})
    return out


def align_item_span(item: AlignItem, features) -> tuple[np.ndarray, np.ndarray] | None:
    """Frame features ``(n, d) float32`` and timestamps ``(n,)`` seconds of an ``.align`` item's span of its
    video (the whole video when the span is empty); ``None`` (logged) when the video has no features."""
    vid = next((v for v in (item.video, item.video + ".avi") if v in features.where), None)
    if vid is None:
        log.warning("no features for item %s", item.video)
        return None
    vf = features.get(vid)
    lo, hi = int(np.floor(FPS * item.begin_s)), int(np.floor(FPS * item.end_s))
    if lo >= hi:
        return vf.features.astype(np.float32), vf.timestamps_s
    return vf.features[lo:hi].astype(np.float32), vf.timestamps_s[lo:hi]


def evaluate_alignment(ds: DatasetConfig, gt: GroundTruth, model: TemporalModel, features) -> dict:
    """Climbing/Madonna: every item vs every other, cropped to its span (spec 5.1)."""
    items = gt.align
    descs, keep = [], []
    for i, it in enumerate(items):
        span = align_item_span(it, features)
        if span is None:
            continue
        feats, t = span
        descs.append(describe_video(model, feats, (t - t[0]) * FPS))
        keep.append(i)
    L = round(ds.max_length_s * FPS)
    offsets = np.arange(-L, L)
    pair_index = np.array(list(itertools.combinations(range(len(keep)), 2))).reshape(-1, 2)
    pmax, poff = [], []
    for a, b in pair_index:
        best, off = model.score_max(descs[a][None], descs[b][None], offsets)
        pmax.append(float(best[0]))
        poff.append(float(off[0]) / FPS)
    gt_idx, gt_off = gt.align_pairs()
    remap = {old: new for new, old in enumerate(keep)}
    sel = [k for k, (a, b) in enumerate(gt_idx) if a in remap and b in remap]
    gi = np.array([[remap[a], remap[b]] for a, b in gt_idx[sel]]).reshape(-1, 2)
    errors = localization_errors(len(keep), pair_index, np.array(pmax), np.array(poff),
                                         gi, gt_off[sel])
    acc = accuracy_below(errors)
    m, ap = map_localization(len(keep), pair_index, np.array(pmax), gi)
    # every unordered pair of items scored: pair-level AP of "these two overlap"
    videos = [items[i].video for i in keep]
    count = Counter(videos)
    label = [v if count[v] == 1 else f"{v} #{i}" for i, v in enumerate(videos)]  # one video, many items
    scored = {frozenset((label[a], label[b])): s for (a, b), s in zip(pair_index, pmax, strict=True)}
    overlapping = {frozenset((label[a], label[b])) for a, b in gi}
    pl = pair_level(scored, overlapping, len(keep))
    return {"metrics": {**{f"localisation_accuracy_below_{t:g}s": v for t, v in acc.items()},
                        "localisation_mAP": m, "pair_AP": pl.ap, "pair_best_F1": pl.best_f1},
            "curves": {"localisation_errors_s": [e if math.isfinite(e) else None for e in errors],
                       "pair_scores": pair_score_record(scored, overlapping, len(keep))},
            "per_query": [{"item": items[keep[i]].video, "error_s": (e if math.isfinite(e) else None),
                           "AP": float(ap[i])} for i, e in enumerate(errors)]}


def evaluate_summary(rows: list[Match]) -> dict:
    """No ground truth (``folder``): what the search found."""
    return {"metrics": {"queries": len({r.query for r in rows}), "results": len(rows)},
            "per_query": [{"query": r.query, "top_match": r.match, "score": r.score,
                           "offset_s": r.offset_s} for r in rows if r.rank == 1]}


@dataclass(frozen=True)
class Evaluation:
    """What an evaluation protocol reads: the configuration, the model, its search results and copy segments
    (on the held-out fold when the dataset trains a model), frame features, durations, ground truth."""

    cfg: Config
    model: TemporalModel
    rows: list[Match]
    segments: list[Box] | None
    features: object  # FeatureLookup
    durations: dict[str, float]
    gt: GroundTruth
    ids: list[str]


def _copy_pairs(e: Evaluation) -> dict:
    cfg, rows, segments = e.cfg, e.rows, e.segments
    out = evaluate_pairs(e.gt, rows, e.durations, cfg.evaluate.vcdb_mode, len(e.ids))
    if segments is not None and any(r.segment_score == r.segment_score for r in rows):
        seg = segment_metrics(e.gt, rows, segments, cfg.segments.copy_threshold, len(e.ids))
        out["metrics"].update(seg["metrics"])
        out["curves"].update(seg["curves"])
        out["segments_method"] = cfg.segments.method
        out["pair_views"] = pair_views(cfg.segments, rows, segments, e.features, e.gt)
    return out


@dataclass(frozen=True)
class Protocol:
    """An evaluation protocol (``DatasetKind.protocol`` names one): its metrics, and whether a held-out fold
    is a set of ``.align`` items (else of videos)."""

    name: str
    run: Callable[[Evaluation], dict]
    held_out_items: bool = False


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("event_retrieval", lambda e: evaluate_evve(e.gt, e.rows)),
    Protocol("copy_pairs", _copy_pairs),
    Protocol("alignment", lambda e: evaluate_alignment(e.cfg.dataset, e.gt, e.model, e.features), held_out_items=True),
    Protocol("summary", lambda e: evaluate_summary(e.rows)),
)}
