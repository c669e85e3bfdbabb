"""Files of the ``selfsup`` extractor's network: the trained model and a resumable training state.

Both are ``torch.save`` dictionaries of tensors and plain values, read with
``torch.load(weights_only=True)`` (no pickled code is ever executed) and
written atomically (temporary sibling, fsync, rename).

    model file   schema videoalign/frame-model: state (tensors), dim, width, input_size,
                 provenance (JSON text), model_id (hash of the tensors, checked on load)
    partial file schema videoalign/frame-model-training: model and optimiser state, step, losses,
                 the training settings it belongs to (a state for other settings is not resumed)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from extractors.frame.selfsup import FrameModel, TrainState
from pipeline.core.atomic import atomic_path
from pipeline.core.hdf5 import ArtifactError

SCHEMA = "videoalign/frame-model"
TRAINING_SCHEMA = "videoalign/frame-model-training"
SCHEMA_VERSION = 1


def _load(path: str | os.PathLike, schema: str) -> dict:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing") from None
    except Exception as exc:  # torch raises many types for damaged or foreign files
        raise ArtifactError(f"{path}: not a readable {schema} file ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(data, dict) or data.get("schema") != schema:
        raise ArtifactError(f"{path}: not a {schema} file")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ArtifactError(f"{path}: {schema} version {data.get('schema_version')} is not supported "
                            f"(this version reads {SCHEMA_VERSION})")
    return data


def save_frame_model(model: FrameModel, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "state": model.state, "dim": model.dim,
                    "width": model.width, "input_size": model.input_size, "model_id": model.model_id,
                    "provenance": json.dumps(model.provenance, sort_keys=True)}, tmp)
    return path


def load_frame_model(path: str | os.PathLike) -> FrameModel:
    """Read a model written by :func:`save_frame_model`; damaged tensors fail the hash check."""
    d = _load(path, SCHEMA)
    try:
        model = FrameModel(dict(d["state"]), int(d["dim"]), int(d["width"]), int(d["input_size"]),
                           json.loads(d["provenance"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{path}: incomplete frame model ({exc})") from None
    if model.model_id != d.get("model_id"):
        raise ArtifactError(f"{path}: the network's weights do not match their recorded hash (damaged file)")
    return model


def save_training_state(state: TrainState, settings: dict, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"schema": TRAINING_SCHEMA, "schema_version": SCHEMA_VERSION, "model": state.model,
                    "optimiser": state.optimiser, "step": state.step, "losses": list(state.losses),
                    "settings": json.dumps(settings, sort_keys=True)}, tmp)
    return path


def load_training_state(path: str | os.PathLike, settings: dict) -> TrainState | None:
    """The saved state when ``path`` holds one for exactly ``settings``; else ``None``."""
    try:
        d = _load(path, TRAINING_SCHEMA)
    except ArtifactError:
        return None
    if d.get("settings") != json.dumps(settings, sort_keys=True):
        return None
    return TrainState(d["model"], d["optimiser"], int(d["step"]), [float(x) for x in d["losses"]])
