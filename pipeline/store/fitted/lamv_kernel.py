"""Files of a learned LAMV kernel: the trained kernel and a resumable training state (HDF5).

Kernel file ``lamv-<model>-<key>.h5`` (schema ``videoalign/lamv-kernel``, written atomically)::

    coefficients        (P, m) float32   the learned a_{p,k} >= 0 (what the model scores with)
    raw_coefficients    (P, m) float32   the trained parameter (softplus: theta, clamp: a)
    init_coefficients   (P, m) float32   the initialisation (von Mises beta=32, or uniform)
    periods             (P,)   float64   1/15-s frames
    history/<field>     (epochs,)        training loss (and parts), validation scores per epoch
    attrs: m, norm, parametrisation, init, kernel_id (hash of coefficients and periods, checked on
           load), provenance (JSON: training data, features, settings, seed, folds)

Training state ``....training.h5`` (schema ``videoalign/lamv-training``): ``raw_coefficients``,
``momentum``, ``epoch``, the history so far and the settings it belongs to (a state for other
settings is never resumed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from extractors.temporal.tmk import TMK
from extractors.training.lamv_training import EpochRecord, TrainingState
from pipeline.core.hdf5 import ArtifactError, atomic_h5, open_checked

SCHEMA = "videoalign/lamv-kernel"
TRAINING_SCHEMA = "videoalign/lamv-training"
SCHEMA_VERSION = 1
HISTORY_FIELDS = tuple(f.name for f in dataclasses.fields(EpochRecord))


@dataclass(frozen=True)
class LearnedKernel:
    """A trained kernel as stored: enough to rebuild the TMK that scores with it."""

    periods: np.ndarray
    m: int
    norm: str
    parametrisation: str
    init: str
    coefficients: np.ndarray
    raw_coefficients: np.ndarray
    init_coefficients: np.ndarray
    history: list[EpochRecord]
    provenance: dict

    @property
    def kernel_id(self) -> str:
        return kernel_id(self.coefficients, self.periods)

    def summary(self) -> dict:
        """For reports: the tables (learned and initial), periods, history and where it was trained."""
        keep = ("dataset", "kind", "folds", "test_fold", "train_pairs", "held_out_pairs", "validation", "features")
        return {"periods_frames": self.periods.tolist(), "m": self.m, "norm": self.norm, "init": self.init,
                "parametrisation": self.parametrisation, "kernel_id": self.kernel_id,
                "coefficients": self.coefficients.tolist(), "init_coefficients": self.init_coefficients.tolist(),
                "history": [dataclasses.asdict(r) for r in self.history],
                "provenance": {k: self.provenance[k] for k in keep if k in self.provenance}}

    def model(self) -> TMK:
        """The frozen TMK with these coefficients."""
        tmk = TMK(self.periods.tolist(), m=self.m, norm=self.norm, parametrisation=self.parametrisation)
        with torch.no_grad():
            tmk.a.copy_(torch.from_numpy(self.raw_coefficients.astype(np.float32)))
        return tmk


def kernel_id(coefficients: np.ndarray, periods: np.ndarray) -> str:
    h = hashlib.sha256(np.ascontiguousarray(coefficients, np.float32).tobytes())
    h.update(np.ascontiguousarray(periods, np.float64).tobytes())
    return h.hexdigest()[:16]


def _history_arrays(history: list[EpochRecord]) -> dict[str, np.ndarray]:
    return {f: np.array([getattr(r, f) for r in history], dtype=np.int64 if f == "epoch" else np.float64)
            for f in HISTORY_FIELDS}


def _history_of(group) -> list[EpochRecord]:
    cols = {f: group[f][()] for f in HISTORY_FIELDS}
    n = len(cols["epoch"])
    return [EpochRecord(int(cols["epoch"][i]), *(float(cols[f][i]) for f in HISTORY_FIELDS[1:])) for i in range(n)]


def save_kernel(path: str | os.PathLike, model: TMK, init: str, init_coefficients: np.ndarray,
                history: list[EpochRecord], provenance: dict) -> Path:
    coeffs = model.coefficients().numpy().astype(np.float32)
    periods = np.asarray(model.config.periods, np.float64)
    with atomic_h5(path) as f:
        f.attrs["schema"] = SCHEMA
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.create_dataset("coefficients", data=coeffs)
        f.create_dataset("raw_coefficients", data=model.a.detach().numpy().astype(np.float32))
        f.create_dataset("init_coefficients", data=np.asarray(init_coefficients, np.float32))
        d = f.create_dataset("periods", data=periods)
        d.attrs["units"] = "1/15 s"
        g = f.create_group("history")
        for name, arr in _history_arrays(history).items():
            g.create_dataset(name, data=arr)
        f.attrs.update({"m": model.m, "norm": model.norm, "parametrisation": model.parametrisation, "init": init,
                        "kernel_id": kernel_id(coeffs, periods),
                        "provenance": json.dumps(provenance, sort_keys=True)})
    return Path(path)


def load_kernel(path: str | os.PathLike) -> LearnedKernel:
    """Read a kernel written by :func:`save_kernel`; a damaged table fails its recorded hash."""
    try:
        with open_checked(path, SCHEMA, SCHEMA_VERSION) as f:
            k = LearnedKernel(f["periods"][()], int(f.attrs["m"]), str(f.attrs["norm"]),
                              str(f.attrs["parametrisation"]), str(f.attrs["init"]), f["coefficients"][()],
                              f["raw_coefficients"][()], f["init_coefficients"][()], _history_of(f["history"]),
                              json.loads(f.attrs["provenance"]))
            recorded = str(f.attrs["kernel_id"])
    except ArtifactError:
        raise
    except (KeyError, OSError, ValueError, TypeError) as exc:
        raise ArtifactError(f"{path}: not a readable learned LAMV kernel ({type(exc).__name__}: {exc})") from None
    if k.kernel_id != recorded:
        raise ArtifactError(f"{path}: the kernel's coefficients do not match their recorded hash (damaged file)")
    if k.coefficients.shape != (len(k.periods), k.m) or not np.isfinite(k.coefficients).all():
        raise ArtifactError(f"{path}: the coefficient table is not a finite ({len(k.periods)}, {k.m}) table")
    return k


def save_training_state(path: str | os.PathLike, state: TrainingState, settings: dict) -> Path:
    with atomic_h5(path) as f:
        f.attrs["schema"] = TRAINING_SCHEMA
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["settings"] = json.dumps(settings, sort_keys=True)
        f.attrs["epoch"] = state.epoch
        f.create_dataset("raw_coefficients", data=state.raw_coefficients.numpy())
        if state.momentum is not None:
            f.create_dataset("momentum", data=state.momentum.numpy())
        g = f.create_group("history")
        for name, arr in _history_arrays(state.history).items():
            g.create_dataset(name, data=arr)
    return Path(path)


def load_training_state(path: str | os.PathLike, settings: dict) -> TrainingState | None:
    """The saved state when ``path`` holds one for exactly ``settings``; else ``None``."""
    if not Path(path).is_file():
        return None
    try:
        with open_checked(path, TRAINING_SCHEMA, SCHEMA_VERSION) as f:
            if f.attrs["settings"] != json.dumps(settings, sort_keys=True):
                return None
            return TrainingState(torch.from_numpy(f["raw_coefficients"][()]),
                                 torch.from_numpy(f["momentum"][()]) if "momentum" in f else None,
                                 int(f.attrs["epoch"]), _history_of(f["history"]))
    except (ArtifactError, KeyError, OSError, ValueError, TypeError):
        return None
