"""Held-out folds of a dataset that trains a model (a learned LAMV kernel, a TCA): folds follow the
overlap graph of the ground truth, so training and evaluation always agree on what is held out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from extractors.training.lamv_training import (
    TrainingPairs,
    components,
)
from pipeline.datasets.ground_truth import GroundTruth
from pipeline.datasets.kinds import load_ground_truth
from pipeline.store.layout import Layout


def assign_folds(n: int, pairs: TrainingPairs, folds: int) -> np.ndarray:
    """``(n,)`` fold of every array: components of the overlap graph, largest first, each to the fold
    with the fewest pairs so far (ties: the lowest fold); arrays without a pair count as components too."""
    comp = components(n, pairs)
    n_comp = int(comp.max()) + 1 if n else 0
    pairs_of = np.bincount(comp[pairs.a], minlength=n_comp)
    size_of = np.bincount(comp, minlength=n_comp)
    order = sorted(range(n_comp), key=lambda c: (-pairs_of[c], -size_of[c], c))
    load = np.zeros(folds, dtype=np.int64)
    count = np.zeros(folds, dtype=np.int64)
    fold_of = np.zeros(n_comp, dtype=np.int64)
    for c in order:
        f = int(np.lexsort((np.arange(folds), count, load))[0])
        fold_of[c] = f
        load[f] += pairs_of[c]
        count[f] += 1
    return fold_of[comp]


@dataclass(frozen=True)
class HeldOut:
    """What a dataset that trains a kernel is evaluated on: the test fold's videos and ``.align`` items."""

    fold: int
    folds: int
    videos: frozenset[str]
    items: frozenset[int]


def fold_assignment(layout: Layout, gt: GroundTruth) -> dict:
    """Fold of every ``.align`` item (by index) or every video (by id), from the whole ground truth (not
    only what has features), so training and evaluation always agree on the held-out fold."""
    folds = layout.cfg.lamv_training.folds
    if gt.align:
        idx, _ = gt.align_pairs()
        pairs = TrainingPairs(idx[:, 0], idx[:, 1], np.zeros(len(idx)))
        return dict(enumerate(assign_folds(len(gt.align), pairs, folds).tolist()))
    ids = sorted({v for p in gt.pairs for v in (p.video_a, p.video_b)} | {v.id for v in layout.videos})
    pos = {v: i for i, v in enumerate(ids)}
    pairs = TrainingPairs(np.array([pos[p.video_a] for p in gt.pairs], np.int64),
                          np.array([pos[p.video_b] for p in gt.pairs], np.int64), np.zeros(len(gt.pairs)))
    return dict(zip(ids, assign_folds(len(ids), pairs, folds).tolist(), strict=True))


def held_out(layout: Layout) -> HeldOut | None:
    """The held-out fold when the configuration trains a model (a LAMV kernel, a TCA) on this dataset
    (else ``None``)."""
    if not layout.trains_models:
        return None
    cfg = layout.cfg
    gt = load_ground_truth(cfg.dataset, [v.id for v in layout.videos])
    test = cfg.lamv_training.test_fold
    chosen = [k for k, f in fold_assignment(layout, gt).items() if f == test]
    if gt.align:
        return HeldOut(test, cfg.lamv_training.folds, frozenset(gt.align[i].video for i in chosen),
                       frozenset(chosen))
    return HeldOut(test, cfg.lamv_training.folds, frozenset(chosen), frozenset())
