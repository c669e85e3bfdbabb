"""Configuration: ``configs/base.yaml`` + ``configs/<dataset>.yaml`` + overrides.

``--dataset NAME`` resolves ``configs/NAME.yaml`` (case-insensitive; searched in
``$VIDEOALIGN_CONFIGS``, ``./configs`` and the project's ``configs/``) or a path
to a YAML file.  Overrides are ``key.path=value`` items (values parsed as
YAML), separated by ``;`` or given as a list.  YAML is read with
``yaml.safe_load`` only.  Data roots come from the config or the environment,
never from code.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class ConfigError(ValueError):
    """A configuration that cannot be loaded or is inconsistent (message names the file/key)."""


def config_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("VIDEOALIGN_CONFIGS"):
        dirs.append(Path(os.environ["VIDEOALIGN_CONFIGS"]))
    dirs += [Path.cwd() / "configs", PROJECT_CONFIGS]
    return dirs


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def resolve_dataset_file(name: str) -> Path:
    """``NAME`` -> ``configs/NAME.yaml``; a path to a YAML file is taken as is."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") or os.sep in name:
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        return p
    for d in config_dirs():
        if not d.is_dir():
            continue
        for cand in d.glob("*.y*ml"):
            if cand.stem.lower() == name.lower() and cand.stem != "base":
                return cand
    known = sorted({c.stem for d in config_dirs() if d.is_dir() for c in d.glob("*.yaml")} - {"base"})
    raise ConfigError(f"unknown dataset {name!r}: no configs/{name}.yaml (known: {', '.join(known)})")


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_overrides(overrides: str | Iterable[str] | None) -> dict:
    """``"a.b=1;c=x"`` or ``["a.b=1", "c=x"]`` -> nested dict (values via ``yaml.safe_load``)."""
    if not overrides:
        return {}
    items = overrides.split(";") if isinstance(overrides, str) else list(overrides)
    out: dict = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.path=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


@dataclass
class Config:
    """A resolved configuration (plain nested dict plus helpers)."""

    data: dict
    source: str

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    @property
    def name(self) -> str:
        return str(self.data["dataset"]["name"])

    @property
    def root(self) -> Path:
        return Path(self.data["dataset"]["root"])

    @property
    def work_dir(self) -> Path:
        return Path(self.data["work_dir"]) / self.name

    def section_hash(self, *keys: str) -> str:
        """Short hash of the named config sections (dotted keys), for output paths."""
        payload = {k: self.get(k) for k in keys}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:8]

    def features_hash(self) -> str:
        return self.section_hash("features.level", "features.weights", "features.seed",
                                 "features.pca", "features.image_area", "features.fps",
                                 "features.dtype", "features.pca_frames_per_video")

    def to_json(self) -> str:
        return json.dumps(self.data, sort_keys=True, default=str)


def load_config(dataset: str, overrides: str | Iterable[str] | None = None) -> Config:
    """Base defaults, then the dataset file, then ``overrides``; resolves the data root."""
    base_path = next((d / "base.yaml" for d in config_dirs() if (d / "base.yaml").is_file()), None)
    if base_path is None:
        raise ConfigError("configs/base.yaml not found (set VIDEOALIGN_CONFIGS)")
    ds_path = resolve_dataset_file(dataset)
    data = deep_merge(_read_yaml(base_path), _read_yaml(ds_path))
    data = deep_merge(data, parse_overrides(overrides))
    ds = data.setdefault("dataset", {})
    ds.setdefault("name", ds_path.stem)
    if ds.get("kind") not in ("evve", "vcdb", "climbing", "madonna", "folder", "demo"):
        raise ConfigError(f"{ds_path}: dataset.kind must be evve/vcdb/climbing/madonna/folder/demo, "
                          f"got {ds.get('kind')!r}")
    if not ds.get("root"):
        env = ds.get("root_env")
        if env and os.environ.get(env):
            ds["root"] = os.environ[env]
        elif os.environ.get("VIDEOALIGN_DATA"):
            ds["root"] = str(Path(os.environ["VIDEOALIGN_DATA"]) / ds["name"])
        else:
            raise ConfigError(f"dataset {ds['name']}: no data root: set dataset.root in {ds_path}, "
                              f"${env or 'VIDEOALIGN_DATA'}, or --overrides 'dataset.root=/path'")
    ds["root"] = str(Path(os.path.expanduser(str(ds["root"]))).resolve())
    for key in ("work_dir", "reports_dir"):
        data[key] = str(Path(os.path.expanduser(str(data.get(key) or key.split("_")[0]))).resolve())
    for m in data.get("models", {}).values():
        if m.get("type") not in ("tmk", "cte"):
            raise ConfigError(f"models: type must be tmk or cte, got {m.get('type')!r}")
    for key in ("index.model", "search.model"):
        if data.get(key.split(".")[0], {}).get(key.split(".")[1]) not in data.get("models", {}):
            raise ConfigError(f"{key} names a model that is not in 'models'")
    return Config(data, str(ds_path))
