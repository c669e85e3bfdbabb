"""The temporal-model registry: what each ``models.<name>.type`` is.

One :class:`ModelType` record per type: its configuration class (what ``models.<name>`` may hold,
validated by :mod:`pipeline.config.load`), how a model is built from its spec, and, for a type that can
be trained on the dataset's ground truth, its :class:`Trainable` artifact (the file ``Layout`` names,
what its identity hashes, how its completeness is checked).  The training steps themselves are in
:mod:`pipeline.steps.training` (``TRAINERS``, keyed by the same names).  A new model type is one more
record in :data:`MODEL_TYPES`; see ``docs/architecture.md`` for a worked example.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from extractors.runtime.timebase import FPS
from extractors.temporal.cte import CTE
from extractors.temporal.tca import TCA
from extractors.temporal.tmk import TMK
from pipeline.config.schema import (
    CTEModelConfig,
    LearnedLAMVModelConfig,
    TCAModelConfig,
    TMKModelConfig,
)
from pipeline.core.hdf5 import ArtifactError
from pipeline.store.fitted.lamv_kernel import load_kernel
from pipeline.store.fitted.tca import load_tca

TemporalModel = TMK | CTE | TCA
DEFAULT_CTE_MAX_LENGTH_S = 1200.0


@dataclass(frozen=True)
class Trainable:
    """A model type whose file can be trained on this dataset (``<file_key>: trained``) or given as a path.

    The trained file is ``<work>/<stem>-<model>-<key><suffix>`` (its resumable training state
    ``....training<suffix>``); the key hashes the features, the model's spec (without ``file_key``), the
    training section ``settings``, :attr:`identity` of the configuration, the ground truth and the corpus.
    """

    file_key: str
    stem: str
    suffix: str
    settings: str
    what: str  # for messages: "learned LAMV kernel"
    load: Callable[[Path], object]  # reads (and so validates) a finished file
    identity: Callable[[Any], dict] = field(default=lambda cfg: {})  # more of the Config the training reads
    full_spec: bool = False  # the resolved spec lists every field, not only those given
    report: tuple[str, Callable[[Path], dict]] | None = None  # (key, summary of the file) in a model's report


@dataclass(frozen=True)
class ModelType:
    """A temporal model type: its configuration class, its builder (``spec`` with any file resolved, the
    dataset's ``max_length_s``) and, when it can be trained here, its :class:`Trainable` artifact."""

    name: str
    config: type
    build: Callable[[dict, float | None], TemporalModel]
    trainable: Trainable | None = None


def _tmk(spec: dict, max_length_s: float | None) -> TemporalModel:
    preset = spec.pop("preset", None)
    return TMK.preset(preset, **spec) if preset else TMK(**spec)


def _cte(spec: dict, max_length_s: float | None) -> TemporalModel:
    max_s = spec.pop("max_length_s", None) or max_length_s or DEFAULT_CTE_MAX_LENGTH_S
    return CTE.for_max_length(int(np.ceil(float(max_s) * FPS)), m=int(spec.pop("m", 256)),
                              lam=float(spec.pop("lam", 0.1)))


def _trained_file(spec: dict, t: Trainable) -> Path:
    path = Path(os.path.expanduser(str(spec[t.file_key])))
    if not path.is_file():
        raise ArtifactError(f"{path}: {t.what} not found (train it: python -m pipeline train --dataset NAME, "
                            f"or the Train task; or set {t.file_key}: to a file of an earlier training)")
    return path


LAMV_KERNEL = Trainable("kernel", "lamv", ".h5", "lamv_training", "learned LAMV kernel", load_kernel,
                        report=("learned_kernel", lambda path: load_kernel(path).summary()))
TCA_CHECKPOINT = Trainable("checkpoint", "tca", ".pt", "tca_training", "TCA checkpoint", load_tca,
                           identity=lambda cfg: {"folds": [cfg.lamv_training.folds, cfg.lamv_training.test_fold]},
                           full_spec=True)

MODEL_TYPES: dict[str, ModelType] = {t.name: t for t in (
    ModelType("tmk", TMKModelConfig, _tmk),
    ModelType("cte", CTEModelConfig, _cte),
    ModelType("lamv_learned", LearnedLAMVModelConfig,
              lambda spec, _: load_kernel(_trained_file(spec, LAMV_KERNEL)).model(), LAMV_KERNEL),
    ModelType("tca", TCAModelConfig, lambda spec, _: load_tca(_trained_file(spec, TCA_CHECKPOINT)).model,
              TCA_CHECKPOINT),
)}


def model_type(spec: dict) -> ModelType:
    """The registry record of a model spec (``{type: tmk, ...}``)."""
    kind = spec.get("type")
    if kind not in MODEL_TYPES:
        raise ValueError(f"unknown model type {kind!r} (one of {', '.join(MODEL_TYPES)})")
    return MODEL_TYPES[kind]


def build_model(spec: dict, max_length_s: float | None = None) -> TemporalModel:
    """A temporal model from its resolved spec (``{type: tmk, preset: lamv}``, ...); a trainable type's
    file key must name its file (``Layout.model_spec`` resolves ``trained``)."""
    spec = dict(spec)
    t = model_type(spec)
    spec.pop("type")
    return t.build(spec, max_length_s)
