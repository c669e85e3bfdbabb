"""Steps of TCA models: training data from a dataset's ground truth, held-out folds, training (resumable).

The positives are the pairs the learned-LAMV training uses (``pipeline.steps.training.lamv.aligned_data``): annotated
copies of a copy dataset (whole videos), overlapping items of an ``.align`` dataset (their spans).  Every
connected component of the overlap graph is a *group*: a video is never a negative of its own group.
Folds: the same as the learned kernels' (``lamv_training.folds`` / ``test_fold``): pairs of the test
fold never reach the training, and every report of the dataset is then computed on that fold alone.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from extractors.frame.resnet_rmac import pick_device
from extractors.runtime import failpoints
from extractors.runtime.progress import progress
from extractors.temporal.tca import TCA, TCAConfig
from extractors.training.lamv_training import components
from extractors.training.tca_training import TCATrainSettings, train_tca
from pipeline.config.schema import TCAModelConfig
from pipeline.core.errors import StepError
from pipeline.steps.training.lamv import training_provenance, training_split
from pipeline.store.fitted.tca import TCACheckpoint, load_state, load_tca, save_state, save_tca
from pipeline.store.layout import Layout

log = logging.getLogger(__name__)


def train_settings(layout: Layout) -> TCATrainSettings:
    t = layout.cfg.tca_training
    return TCATrainSettings(steps=t.steps, batch=t.batch, lr=t.lr, weight_decay=t.weight_decay,
                            temperature=t.temperature, queue=t.queue, hard_negatives=t.hard_negatives,
                            crop_min=t.crop_min, seed=t.seed)


def initial_model(spec: TCAModelConfig, dim: int, seed: int) -> TCA:
    """The untrained TCA of ``spec`` for ``dim``-dimensional frame features (initialised from ``seed``)."""
    torch.manual_seed(seed)
    return TCA(TCAConfig(dim=dim, padding_size=spec.padding_size, fps=spec.fps, heads=spec.heads,
                         feedforward=spec.feedforward, dropout=spec.dropout))


def train_tca_model(layout: Layout, model_name: str, show_progress: bool = True) -> TCACheckpoint:
    """Train ``models.<model_name>`` on the training folds of the dataset; resumes an interrupted run."""
    if not layout.trains(model_name):
        raise StepError(f"model {model_name!r} is not a tca model with checkpoint: trained")
    cfg = layout.cfg
    spec = cfg.models[model_name]
    assert isinstance(spec, TCAModelConfig)
    data, train_mask, held_mask = training_split(layout)
    settings = train_settings(layout)
    model = initial_model(spec, int(data.features[0].shape[1]), settings.seed)
    groups = components(len(data.features), data.pairs)
    pairs = np.stack([data.pairs.a, data.pairs.b], axis=1)[train_mask]
    key = {"model": layout.model_identity(model_name), "tca_key": layout.trained_key(model_name)}
    state_path = layout.training_state_path(model_name)
    state = load_state(state_path, key)
    if state is not None:
        log.info("%s: resuming the training of %s after step %d", state_path, model_name, state.step)
    device = pick_device(cfg.tca_training.device)
    t0 = time.perf_counter()
    with progress(total=settings.steps, initial=state.step if state else 0, unit="step",
                  desc=f"train {model_name}", wanted=show_progress) as bar:

        def saved(st) -> None:
            save_state(state_path, st, key)
            failpoints.hit("tca.checkpoint_saved")
            bar.update(st.step - bar.n)

        final = train_tca(model, data.features, groups, pairs, settings, state=state, on_checkpoint=saved,
                          every=cfg.tca_training.checkpoint_every, device=device)
    provenance = {
        **training_provenance(layout, model_name, spec, settings, data, train_mask, held_mask),
        "device": str(device), "seconds_this_run": round(time.perf_counter() - t0, 3),
        "rate": f"{spec.fps:g} frames per second (every {model.config.step}th frame of the 15-fps stream), "
                f"padded or truncated to {spec.padding_size} frames",
    }
    model.load_state_dict(final.model)
    path = save_tca(layout.trained_path(model_name), model, final.history, provenance)
    state_path.unlink(missing_ok=True)
    log.info("%s: TCA model %s (%d training pairs, %d steps)", path, model_name, len(pairs), settings.steps)
    return load_tca(path)
