"""Steps of the learned LAMV kernel: training data from a dataset's ground truth, folds, training
(resumable), the held-out part every report is then computed on, and period design.

Training data (``extractors/training/lamv_training.py`` works on ``TrainingPairs`` of feature arrays):

* ``.align`` datasets (Climbing, Madonna, generated ``align``): every item is its span of its video's
  features; every pair of items overlapping on the global timeline is a pair, with the offset the
  timeline gives (frames of item ``i`` minus frames of item ``j`` for the same moment).
* copy datasets (VCDB format, generated ``copies``): every annotated copy is a pair of whole videos
  with the copied span of the first one (``lo``, ``hi``) and the offset ``a_begin - b_begin``.

Folds: the connected components of the overlap graph, assigned greedily (largest first) to the fold
with the fewest pairs so far; ``lamv_training.test_fold`` is held out of training, and every report of
a dataset that trains a kernel is computed on it alone (the paper's five-fold protocol: train on four
folds, test on the fifth).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

import numpy as np

from extractors.runtime import failpoints
from extractors.runtime.progress import progress
from extractors.runtime.timebase import FPS
from extractors.temporal.tmk import PRESETS, TMK
from extractors.training.lamv_loss import LAMVLossSettings
from extractors.training.lamv_training import (
    LAMVTrainSettings,
    TrainingPairs,
    localisation_accuracy,
    train_lamv,
)
from pipeline.config.schema import LearnedLAMVModelConfig
from pipeline.core.errors import StepError
from pipeline.datasets.ground_truth import GroundTruth
from pipeline.datasets.kinds import load_ground_truth
from pipeline.steps.frames import FeatureLookup
from pipeline.steps.protocols import align_item_span
from pipeline.steps.training.folds import fold_assignment
from pipeline.store.fitted.lamv_kernel import (
    LearnedKernel,
    load_kernel,
    load_training_state,
    save_kernel,
    save_training_state,
)
from pipeline.store.layout import Layout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlignedData:
    """Feature arrays (one per item or video), their names, the overlapping pairs and each array's fold."""

    names: list[str]
    features: list[np.ndarray]
    pairs: TrainingPairs
    fold: np.ndarray

    def split(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """Boolean masks over the pairs: (training pairs, held-out pairs) for test fold ``fold``."""
        held = self.fold[self.pairs.a] == fold
        return ~held, held


def _align_data(gt: GroundTruth, features: FeatureLookup
                ) -> tuple[list[str], list[np.ndarray], TrainingPairs, list[int]]:
    names, feats, keep = [], [], []
    for i, it in enumerate(gt.align):
        span = align_item_span(it, features)
        if span is None:
            continue
        names.append(f"{it.video}[{it.begin_s:g}-{it.end_s:g}s]")
        feats.append(span[0])
        keep.append(i)
    remap = {old: new for new, old in enumerate(keep)}
    idx, off_s = gt.align_pairs()
    sel = [k for k, (a, b) in enumerate(idx) if a in remap and b in remap]
    a = np.array([remap[int(x)] for x in idx[sel, 0]], dtype=np.int64) if sel else np.zeros(0, np.int64)
    b = np.array([remap[int(x)] for x in idx[sel, 1]], dtype=np.int64) if sel else np.zeros(0, np.int64)
    # the timeline offset is start_i - start_j; the same moment is frame k_i of i and k_j of j with
    # k_i - k_j = 15 (start_j - start_i)
    return names, feats, TrainingPairs(a, b, np.round(-FPS * off_s[sel]).astype(np.int64)), keep


def _copy_data(gt: GroundTruth, features: FeatureLookup) -> tuple[list[str], list[np.ndarray], TrainingPairs]:
    names = sorted({v for p in gt.pairs for v in (p.video_a, p.video_b) if v in features.where})
    pos = {v: i for i, v in enumerate(names)}
    feats = [np.asarray(features.get(v).features, np.float32) for v in names]
    ps = [p for p in gt.pairs if p.video_a in pos and p.video_b in pos and p.video_a != p.video_b]
    a = np.array([pos[p.video_a] for p in ps], dtype=np.int64)
    b = np.array([pos[p.video_b] for p in ps], dtype=np.int64)
    a0 = np.array([p.a_begin_s for p in ps], dtype=np.float64)
    a1 = np.array([p.a_end_s for p in ps], dtype=np.float64)
    b0 = np.array([p.b_begin_s for p in ps], dtype=np.float64)
    return names, feats, TrainingPairs(a, b, np.round(FPS * (a0 - b0)).astype(np.int64),
                                       np.floor(FPS * a0).astype(np.int64), np.ceil(FPS * a1).astype(np.int64))


def aligned_data(layout: Layout) -> AlignedData:
    """The dataset's overlapping pairs over its extracted features, with folds."""
    cfg = layout.cfg
    features = FeatureLookup.of_layout(layout)
    gt = load_ground_truth(cfg.dataset, [v.id for v in layout.videos])
    folds = fold_assignment(layout, gt)
    if gt.align:  # items of .align files (as the folds are)
        names, feats, pairs, kept = _align_data(gt, features)
        fold = np.array([folds[i] for i in kept], dtype=np.int64)
    elif gt.pairs:  # copied segments between videos
        names, feats, pairs = _copy_data(gt, features)
        fold = np.array([folds[v] for v in names], dtype=np.int64)
    else:
        raise StepError(f"dataset {cfg.name} (kind {cfg.dataset.kind}) has no alignment or copy ground truth to "
                        f"train a LAMV kernel on (kinds: climbing, madonna, align, vcdb, demo)")
    if len(pairs) == 0:
        raise StepError(f"dataset {cfg.name}: no overlapping pair with extracted features to train on")
    return AlignedData(names, feats, pairs, fold)


def training_split(layout: Layout) -> tuple[AlignedData, np.ndarray, np.ndarray]:
    """The dataset's overlapping pairs and the masks of the training and held-out pairs (test fold
    ``lamv_training.test_fold``: the protocol of every model trained on a dataset's ground truth)."""
    data = aligned_data(layout)
    t = layout.cfg.lamv_training
    train_mask, held_mask = data.split(t.test_fold)
    if not train_mask.any():
        raise StepError(f"dataset {layout.cfg.name}: every overlapping pair is in the held-out fold {t.test_fold} "
                        f"({int(data.fold.max()) + 1} group(s) of overlapping videos for {t.folds} folds)")
    return data, train_mask, held_mask


def training_provenance(layout: Layout, model_name: str, spec, settings, data: AlignedData,
                        train_mask: np.ndarray, held_mask: np.ndarray) -> dict:
    """What every model trained on the dataset's ground truth records of its training: the dataset and
    its ground-truth files' hashes, the features, the settings, the folds, and the items and pairs trained
    on and held out."""
    cfg, t = layout.cfg, layout.cfg.lamv_training
    names = np.array(data.names)
    return {
        "dataset": cfg.name, "kind": cfg.dataset.kind, "model": model_name, "spec": dataclasses.asdict(spec),
        "ground_truth": dict(layout.ground_truth_identity),
        "features": {"key": layout.features_key, "extractor": cfg.features.extractor,
                     "dir": str(layout.features_dir)},
        "settings": dataclasses.asdict(settings), "folds": t.folds, "test_fold": t.test_fold,
        "train_items": names[data.fold != t.test_fold].tolist(),
        "held_out_items": names[data.fold == t.test_fold].tolist(),
        "train_pairs": int(train_mask.sum()), "held_out_pairs": int(held_mask.sum()),
    }


def train_settings(layout: Layout) -> LAMVTrainSettings:
    t = layout.cfg.lamv_training
    return LAMVTrainSettings(epochs=t.epochs, batch=t.batch, lr=t.lr, momentum=t.momentum,
                             snippet_frames=max(2, round(t.snippet_s * FPS)), min_overlap=t.min_overlap,
                             negatives=t.negatives, pool_per_video=t.pool_per_video, seed=t.seed,
                             loss=LAMVLossSettings(t.retrieval_margin, t.localisation_margin, t.radius_s,
                                                   t.retrieval_weight),
                             min_cycles=t.min_cycles)


def initial_model(spec: LearnedLAMVModelConfig) -> TMK:
    """The trainable TMK a ``lamv_learned`` model starts from (``periods``/``m``/``norm`` override the preset)."""
    if spec.preset is not None and spec.preset not in PRESETS:
        raise StepError(f"learned LAMV model: unknown preset {spec.preset!r} (known: {', '.join(PRESETS)})")
    preset = PRESETS[spec.preset] if spec.preset else None
    periods = spec.periods or (preset.periods if preset else None)
    if not periods:
        raise StepError("learned LAMV model: give a preset or periods")
    return TMK(periods, m=int(spec.m or (preset.m if preset else 16)),
               norm=spec.norm or (preset.norm if preset else "feat_freq"), trainable=True,
               init=spec.init, parametrisation=spec.parametrisation)


def train_kernel(layout: Layout, model_name: str, show_progress: bool = True) -> LearnedKernel:
    """Train ``models.<model_name>`` on the training folds of the dataset; resumes an interrupted run."""
    if not layout.trains(model_name):
        raise StepError(f"model {model_name!r} is not a lamv_learned model with kernel: trained")
    cfg = layout.cfg
    spec = cfg.models[model_name]
    assert isinstance(spec, LearnedLAMVModelConfig)
    data, train_mask, held_mask = training_split(layout)
    settings = train_settings(layout)
    model = initial_model(spec)
    init = model.coefficients().numpy().copy()
    key = {"model": layout.model_identity(model_name), "lamv_key": layout.trained_key(model_name)}
    state_path = layout.training_state_path(model_name)
    state = load_training_state(state_path, key)
    if state is not None:
        log.info("%s: resuming the training of %s after epoch %d", state_path, model_name, state.epoch)
    held = data.pairs.subset(held_mask)
    t0 = time.perf_counter()
    with progress(total=settings.epochs, initial=state.epoch if state else 0, unit="epoch",
                      desc=f"train {model_name}", wanted=show_progress) as bar:

        def saved(st) -> None:
            save_training_state(state_path, st, key)
            failpoints.hit("lamv.epoch_saved")
            bar.update(1)

        final = train_lamv(model, data.features, data.pairs.subset(train_mask), settings,
                           validation=(data.features, held) if len(held) else None, state=state, on_epoch=saved)
    provenance = {
        **training_provenance(layout, model_name, spec, settings, data, train_mask, held_mask),
        "validation": "held-out fold, monitoring only: the kernel is the last epoch's",
        "seconds_this_run": round(time.perf_counter() - t0, 3),
        "parametrisation": model.parametrisation, "init": spec.init,
    }
    path = save_kernel(layout.trained_path(model_name), model, spec.init, init, final.history,
                       provenance)
    state_path.unlink(missing_ok=True)
    log.info("%s: learned kernel of %s (%d training pairs, %d epochs)", path, model_name, int(train_mask.sum()),
             settings.epochs)
    return load_kernel(path)


def coprime_period_sets(count: int, lowest_s: float, highest_s: float, n_sets: int, seed: int = 0
                        ) -> list[list[int]]:
    """``n_sets`` sets of ``count`` pairwise relatively prime periods (1/15-s frames) between ``lowest_s``
    and ``highest_s`` seconds, spread log-uniformly (the paper's section 3.4 designs periods this way)."""
    from math import gcd

    rng = np.random.default_rng(seed)
    lowest, highest = lowest_s * FPS, highest_s * FPS
    out: list[list[int]] = []
    for _ in range(n_sets * 50):
        if len(out) == n_sets:
            break
        picks = np.sort(np.exp(rng.uniform(np.log(lowest), np.log(highest), count))).round().astype(int)
        chosen: list[int] = []
        for p in picks.tolist():
            while any(gcd(p, q) != 1 for q in chosen) or p in chosen:
                p += 1
            chosen.append(p)
        if sorted(chosen) not in out:
            out.append(sorted(chosen))
    return out


@dataclass(frozen=True)
class PeriodScore:
    periods: list[int]
    localisation_1s: float


def design_periods(layout: Layout, candidates: list[list[int]], m: int = 16) -> list[PeriodScore]:
    """Localisation accuracy at 1 s (fixed snippet pairs of the dataset's ground truth, von Mises kernel)
    of every candidate period set, best first."""
    data = aligned_data(layout)
    settings = train_settings(layout)
    scores = [PeriodScore(list(c), localisation_accuracy(TMK(c, m=m, norm="feat_freq"), data.features, data.pairs,
                                                         settings)) for c in candidates]
    return sorted(scores, key=lambda s: -s.localisation_1s)
