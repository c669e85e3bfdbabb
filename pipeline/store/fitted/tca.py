"""TCA checkpoints and resumable training states on disk (PyTorch files, read with ``weights_only=True``).

* ``tca-<model>-<key>.pt``: ``format`` ``videoalign/tca`` v1; the model's ``config`` (feature size,
  padding size, rate, heads, MLP width, dropout), its ``state_dict``, the per-step training loss
  ``history`` and the ``provenance`` (JSON: dataset, ground-truth file hashes, features, settings,
  seed, folds, training and held-out videos).
* ``....training.pt``: ``videoalign/tca-training``: the state after a step (weights, optimiser, memory
  bank, loss history) and the ``key`` of the training it belongs to (a state of another training is
  ignored, not resumed).

Written atomically (temporary file, fsync, rename); a file that is not such a checkpoint is refused with
one line naming it.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from extractors.temporal.tca import TCA, TCAConfig
from extractors.training.tca_training import TCAState
from pipeline.core.atomic import atomic_path
from pipeline.core.hdf5 import ArtifactError

FORMAT, VERSION = "videoalign/tca", 1
STATE_FORMAT = "videoalign/tca-training"


def _write(path: Path, obj: dict) -> Path:
    buf = io.BytesIO()
    torch.save(obj, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return path


def _read(path: Path, fmt: str) -> dict:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: TCA checkpoint not found") from None
    except Exception as exc:  # truncated, not a torch file, or holding objects weights_only refuses
        raise ArtifactError(f"{path}: not a readable TCA file ({type(exc).__name__})") from None
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise ArtifactError(f"{path}: not a {fmt} file")
    return obj


@dataclass
class TCACheckpoint:
    model: TCA
    history: list[float]
    provenance: dict

    def summary(self) -> dict:
        return {"config": asdict(self.model.config), "steps": len(self.history),
                "final_loss": self.history[-1] if self.history else math.nan, "provenance": self.provenance}


def save_tca(path: Path, model: TCA, history: list[float], provenance: dict) -> Path:
    return _write(Path(path), {"format": FORMAT, "version": VERSION, "config": asdict(model.config),
                               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                               "history": torch.tensor(history, dtype=torch.float64),
                               "provenance": json.dumps(provenance, sort_keys=True, default=str)})


def load_tca(path: Path) -> TCACheckpoint:
    path = Path(path)
    obj = _read(path, FORMAT)
    if obj.get("version") != VERSION:
        raise ArtifactError(f"{path}: TCA checkpoint version {obj.get('version')}, this pipeline reads {VERSION}")
    try:
        model = TCA(TCAConfig(**obj["config"]))
        model.load_state_dict(obj["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise ArtifactError(f"{path}: damaged TCA checkpoint ({type(exc).__name__})") from None
    model.eval()
    return TCACheckpoint(model, [float(x) for x in obj["history"]], json.loads(obj["provenance"]))


def save_state(path: Path, state: TCAState, key: dict) -> Path:
    return _write(Path(path), {"format": STATE_FORMAT, "key": json.dumps(key, sort_keys=True),
                               "step": state.step, "model": state.model, "optimizer": state.optimizer,
                               "bank": state.bank, "bank_group": state.bank_group, "bank_next": state.bank_next,
                               "history": torch.tensor(state.history, dtype=torch.float64)})


def load_state(path: Path, key: dict) -> TCAState | None:
    """The saved state of the training ``key`` names (``None``: no state, or another training's)."""
    if not Path(path).is_file():
        return None
    obj = _read(Path(path), STATE_FORMAT)
    if obj["key"] != json.dumps(key, sort_keys=True):
        return None
    return TCAState(int(obj["step"]), obj["model"], obj["optimizer"], obj["bank"], obj["bank_group"],
                    int(obj["bank_next"]), [float(x) for x in obj["history"]])
