"""``Train(model)``: one step for every model type that is trained on a dataset's ground truth.

:data:`TRAINERS` maps a model type (:data:`pipeline.store.model_types.MODEL_TYPES`, where its trained
file is described) to its training step and a one-line summary of what it trained.  The ``train`` verb,
the ``Train`` task and ``python -m pipeline build`` all go through :func:`train_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import StepError
from pipeline.steps.training.lamv import train_kernel
from pipeline.steps.training.tca import train_tca_model
from pipeline.store.fitted.lamv_kernel import LearnedKernel
from pipeline.store.fitted.tca import TCACheckpoint
from pipeline.store.layout import Layout


@dataclass(frozen=True)
class Trainer:
    """The training step of a model type and how its result is summarised in one line."""

    train: Callable[[Layout, str, bool], object]
    summary: Callable[[object], str]


def _kernel_summary(k: LearnedKernel) -> str:
    last = k.history[-1]
    return (f"trained on {k.provenance['train_pairs']} pairs ({k.provenance['held_out_pairs']} held out), "
            f"{len(k.history)} epochs, final loss {last.loss:.5f}, held-out localisation within 1 s "
            f"{last.val_localisation_1s:.3f}")


def _tca_summary(ck: TCACheckpoint) -> str:
    return (f"trained on {ck.provenance['train_pairs']} pairs ({ck.provenance['held_out_pairs']} held out), "
            f"{len(ck.history)} steps, final loss {ck.history[-1]:.4f}")


TRAINERS: dict[str, Trainer] = {
    "lamv_learned": Trainer(train_kernel, _kernel_summary),  # type: ignore[arg-type]
    "tca": Trainer(train_tca_model, _tca_summary),  # type: ignore[arg-type]
}


@dataclass(frozen=True)
class Trained:
    model: str
    path: Path
    summary: str


def train_model(layout: Layout, model: str, show_progress: bool = True) -> Trained:
    """Train ``models.<model>`` on the training folds of the dataset (resumes an interrupted training)."""
    if not layout.trains(model):
        raise StepError(f"dataset {layout.cfg.name}: model {model!r} is not trained here (a type with a trained "
                        f"file, e.g. {{type: lamv_learned}} or {{type: tca}}, and its file key left at 'trained')")
    layout.clean_work_root()  # a killed training's half-written state
    trainer = TRAINERS[layout.cfg.model_spec(model)["type"]]
    result = trainer.train(layout, model, show_progress)
    return Trained(model, layout.trained_path(model), trainer.summary(result))
