"""Configuration: ``configs/base.yaml`` + ``configs/<dataset>.yaml`` + overrides, validated.

``--dataset NAME`` resolves ``NAME.yaml`` (case-insensitive) in
``$VIDEOALIGN_CONFIGS``, then ``./configs``, then the configs shipped with the
package (``configs`` is package data, so a non-editable install finds them);
a path to a YAML file is taken as is.  Overrides are ``key.path=value`` items
(values parsed as YAML), separated by ``;`` or given as a list.  YAML is read
with ``yaml.safe_load`` only.

Every default is defined once, in ``configs/base.yaml``.  The *types* are the
dataclasses below: after merging, every key must be one of their fields and
every value of the field's type, or :class:`ConfigError` names the key, the
value and what was expected.  Data roots come from the config or the
environment, never from code.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Union

import yaml


class ConfigError(ValueError):
    """A configuration that cannot be loaded or is invalid (the message names the file or key)."""


# --------------------------------------------------------------------------- typed sections


@dataclass(frozen=True)
class DatasetConfig:
    kind: str
    name: str
    root: str | None
    root_env: str | None
    videos_dir: str
    extensions: list[str]
    max_length_s: float
    gt_file: str | None


@dataclass(frozen=True)
class FeaturesConfig:
    extractor: Literal["resnet34_rmac", "pdqf", "mvlad", "selfsup"]
    level: int
    weights: str
    download_weights: bool
    seed: int
    pca: str
    pca_frames_per_video: int
    pca_shrinkage: float | Literal["auto"]
    image_area: int | Literal["auto"]
    remove_black_bars: bool
    dtype: Literal["float16", "float32"]
    batch_size: int
    decode_workers: int
    torch_threads: int
    device: str
    precision: Literal["auto", "float32", "bfloat16", "float16"]
    max_pixels: int
    video_time_limit_s: float
    worker_memory_mb: int
    hwaccel: str


@dataclass(frozen=True)
class FrameModelConfig:
    """Training of the ``selfsup`` extractor's network (``extractors/selfsup.py``)."""

    frames_per_video: int
    steps: int
    batch: int
    input_size: int
    dim: int
    width: int
    lr: float
    temperature: float
    koleo_weight: float
    seed: int
    checkpoint_every: int
    device: str


@dataclass(frozen=True)
class ShardsConfig:
    size: int


@dataclass(frozen=True)
class IndexConfig:
    model: str
    type: Literal["auto", "flat", "ivf"]
    ivf_threshold: int
    nprobe: int


@dataclass(frozen=True)
class SearchConfig:
    model: str
    top_k: int
    keep: int
    query_expansion: Literal["none", "aqe", "don"]
    qe_n1: int
    qe_n2: int
    qe_mode: Literal["corrected", "reference"]
    score_normalisation: Literal["none", "background"]
    background: int
    verify: Literal["none", "diagonal"]
    verify_fps: float
    verify_threshold: float


@dataclass(frozen=True)
class SegmentsConfig:
    """Copy segments of the kept candidates (``index/localise.py``) and the copy / no-copy decision."""

    method: Literal["offset", "hv", "tn", "dtw"]
    fps: float
    frame_threshold: float
    band_s: float
    max_gap_s: float
    min_length_s: float
    max_segments: int
    max_overlap: float
    tn_top_k: int
    tn_max_step_s: float
    contextualise: bool
    copy_threshold: float
    max_elements: int


@dataclass(frozen=True)
class AlignConfig:
    """Frame alignment (Sync from the Sea): ``python -m pipeline align`` and DRAQ re-ranking."""

    fps: float
    contextualise: bool
    unwarped: Literal["none", "first"]
    draq_paths: int
    draq_top: int
    seed: int


@dataclass(frozen=True)
class EvaluateConfig:
    models: list[str]
    vcdb_mode: Literal["corrected", "reference"]


@dataclass(frozen=True)
class TMKModelConfig:
    type: Literal["tmk"]
    preset: str | None = None
    periods: list[float] | None = None
    m: int | None = None
    beta: float | None = None
    norm: Literal["freq", "feat", "feat_freq", "matrix", "none"] | None = None
    trainable: bool | None = None


@dataclass(frozen=True)
class LearnedLAMVModelConfig:
    """The learned LAMV kernel: a TMK (``preset`` or ``periods``/``m``/``norm``) whose coefficients are
    trained (``kernel: trained``, by the ``TrainLAMV`` task on this dataset's ground truth, settings in
    ``lamv_training``) or read from a kernel file written by an earlier training (``kernel: /path.h5``).

    Defaults (``benchmarks/RESULTS.md``, "Confirmed on held-out corpora"): 32 harmonics per period, twice the
    lamv preset's, so training can make the kernel sharper than von Mises, and the ``clamp``
    parametrisation, under which harmonics that start near zero can grow (softplus scales a coefficient's
    step by about the coefficient; with it, use ``lamv_training.lr`` 10 instead of 1)."""

    type: Literal["lamv_learned"]
    kernel: str = "trained"
    init: Literal["von_mises", "uniform"] = "von_mises"
    preset: str | None = "lamv"
    periods: list[float] | None = None
    m: int | None = 32
    norm: Literal["freq", "feat", "feat_freq", "matrix", "none"] | None = None
    parametrisation: Literal["softplus", "clamp"] = "clamp"


@dataclass(frozen=True)
class LAMVTrainingConfig:
    """Training of ``lamv_learned`` kernels (``extractors/lamv_training.py``; the paper's values by default)."""

    epochs: int
    batch: int
    lr: float
    momentum: float
    snippet_s: float
    min_overlap: float
    negatives: int
    pool_per_video: int
    retrieval_margin: float
    localisation_margin: float
    radius_s: float
    retrieval_weight: float
    folds: int
    test_fold: int
    seed: int
    min_cycles: float


@dataclass(frozen=True)
class TCAModelConfig:
    """Temporal Context Aggregation (``extractors/tca.py``): ``checkpoint: trained`` (by the ``TrainTCA``
    task on this dataset's ground truth, settings in ``tca_training``) or a checkpoint file's path."""

    type: Literal["tca"]
    checkpoint: str = "trained"
    padding_size: int = 300
    fps: float = 1.0
    heads: int = 8
    feedforward: int = 1024
    dropout: float = 0.1


@dataclass(frozen=True)
class TCATrainingConfig:
    """Training of ``tca`` models (``extractors/tca_training.py``); the held-out fold is
    ``lamv_training.folds`` / ``test_fold`` (one protocol for every trained temporal model)."""

    steps: int
    batch: int
    lr: float
    weight_decay: float
    temperature: float
    queue: int
    hard_negatives: int
    crop_min: float
    checkpoint_every: int
    seed: int
    device: Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class CTEModelConfig:
    type: Literal["cte"]
    m: int | None = None
    lam: float | None = None
    max_length_s: float | None = None


SECTIONS: dict[str, type] = {"dataset": DatasetConfig, "features": FeaturesConfig,
                             "frame_model": FrameModelConfig, "shards": ShardsConfig,
                             "index": IndexConfig, "search": SearchConfig, "evaluate": EvaluateConfig,
                             "lamv_training": LAMVTrainingConfig, "segments": SegmentsConfig, "align": AlignConfig,
                             "tca_training": TCATrainingConfig}
MODEL_TYPES: dict[str, type] = {"tmk": TMKModelConfig, "cte": CTEModelConfig,
                                "lamv_learned": LearnedLAMVModelConfig, "tca": TCAModelConfig}
TOP_LEVEL: dict[str, Any] = {"storage": str | None, "work_dir": str, "reports_dir": str}

# Constraints beyond the type (key -> (predicate, what is expected)).
_MIN: dict[str, float] = {
    "dataset.max_length_s": 1e-9, "features.level": 1, "features.pca_frames_per_video": 1,
    "features.image_area": 64, "features.pca_shrinkage": 0, "features.batch_size": 1, "features.decode_workers": -1,
    "features.torch_threads": 0, "features.max_pixels": 1, "features.video_time_limit_s": 0,
    "features.worker_memory_mb": 0, "shards.size": 1, "index.ivf_threshold": 1, "index.nprobe": 1,
    "search.top_k": 1, "search.keep": 1, "search.qe_n1": 1, "search.qe_n2": 1, "search.background": 1,
    "search.verify_fps": 0.1,
    "frame_model.frames_per_video": 1, "frame_model.steps": 1,
    "frame_model.batch": 2, "frame_model.input_size": 32, "frame_model.dim": 8, "frame_model.width": 4,
    "frame_model.lr": 1e-9, "frame_model.temperature": 1e-6, "frame_model.koleo_weight": 0,
    "frame_model.checkpoint_every": 0, "lamv_training.epochs": 1, "lamv_training.batch": 1,
    "lamv_training.lr": 1e-12, "lamv_training.momentum": 0, "lamv_training.snippet_s": 0.1,
    "lamv_training.min_overlap": 1e-3, "lamv_training.negatives": 1, "lamv_training.pool_per_video": 1,
    "lamv_training.retrieval_margin": 0, "lamv_training.localisation_margin": 0, "lamv_training.radius_s": 0,
    "lamv_training.retrieval_weight": 0, "lamv_training.min_cycles": 0, "lamv_training.folds": 1,
    "lamv_training.test_fold": 0,
    "segments.fps": 0.05, "segments.frame_threshold": -1, "segments.band_s": 0, "segments.max_gap_s": 0,
    "segments.min_length_s": 0, "segments.max_segments": 1, "segments.max_overlap": 0, "segments.tn_top_k": 1,
    "segments.tn_max_step_s": 0, "segments.copy_threshold": 0, "segments.max_elements": 1024,
    "align.fps": 0.05, "align.draq_paths": 1, "align.draq_top": 0,
    "tca_training.steps": 1, "tca_training.batch": 1, "tca_training.lr": 1e-12, "tca_training.weight_decay": 0,
    "tca_training.temperature": 1e-6, "tca_training.queue": 1, "tca_training.hard_negatives": 1,
    "tca_training.crop_min": 1e-3, "tca_training.checkpoint_every": 1,
}

REMOVED: dict[str, str] = {
    "features.fps": "features.fps was removed: every video is sampled at 15 fps, the pipeline's one time base "
                    "(extractors/timebase.py)",
    "search.segment_threshold": "search.segment_threshold was replaced by segments.frame_threshold (copy segments "
                                "are located by segments.method: offset | hv | tn | dtw)",
    "search.segment_max_gap_s": "search.segment_max_gap_s was replaced by segments.max_gap_s",
}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            type(None): "null"}.get(tp, str(tp))


def _check(value: Any, tp: Any) -> Any:
    """``value`` converted to ``tp`` (int -> float only), or raise ``TypeError``."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise TypeError
    if origin in (Union, types.UnionType):
        for alt in typing.get_args(tp):
            try:
                return _check(value, alt)
            except TypeError:
                continue
        raise TypeError
    if origin is list:
        if not isinstance(value, list):
            raise TypeError
        return [_check(v, typing.get_args(tp)[0]) for v in value]
    if tp is type(None):
        if value is None:
            return None
        raise TypeError
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise TypeError
    if tp is str:
        if isinstance(value, str):
            return value
        raise TypeError
    raise TypeError


def _validate_record(cls: type, data: Any, where: str, source: str) -> Any:
    """Build ``cls`` from the mapping ``data``: unknown keys, missing keys and bad types are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: '{where}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        dotted = f"{where}.{key}"
        if dotted in REMOVED:
            raise ConfigError(f"{source}: {REMOVED[dotted]}")
        if key not in fields:
            raise ConfigError(f"{source}: unknown key '{dotted}' (known: {', '.join(sorted(fields))})")
    values = {}
    for name, f in fields.items():
        dotted = f"{where}.{name}"
        if name not in data:
            if f.default is dataclasses.MISSING:
                raise ConfigError(f"{source}: missing key '{dotted}' (configs/base.yaml defines every default)")
            continue
        try:
            values[name] = _check(data[name], hints[name])
        except TypeError:
            raise ConfigError(f"{source}: '{dotted}' must be {_type_name(hints[name])}, "
                              f"got {data[name]!r}") from None
        lo = _MIN.get(dotted)
        if lo is not None and isinstance(values[name], int | float) and values[name] < lo:
            raise ConfigError(f"{source}: '{dotted}' must be >= {lo:g}, got {data[name]!r}")
    return cls(**values)


# --------------------------------------------------------------------------- files


def config_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("VIDEOALIGN_CONFIGS"):
        dirs.append(Path(os.environ["VIDEOALIGN_CONFIGS"]))
    dirs.append(Path.cwd() / "configs")
    dirs.append(Path(str(resources.files("configs"))))
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


def is_config_path(name: str) -> bool:
    return Path(name).suffix in (".yaml", ".yml") or os.sep in name


def resolve_dataset_file(name: str) -> Path:
    """``NAME`` -> ``<configs>/NAME.yaml``; a path to a YAML file is taken as is."""
    if is_config_path(name):
        p = Path(name)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        return p
    for d in config_dirs():
        if not d.is_dir():
            continue
        for cand in sorted(d.glob("*.y*ml")):
            if cand.stem.lower() == name.lower() and cand.stem != "base":
                return cand
    known = sorted({c.stem for d in config_dirs() if d.is_dir() for c in d.glob("*.yaml")} - {"base"})
    raise ConfigError(f"unknown dataset {name!r}: no configs/{name}.yaml (known: {', '.join(known)})")


def base_file() -> Path:
    for d in config_dirs():
        if (d / "base.yaml").is_file():
            return d / "base.yaml"
    raise ConfigError("configs/base.yaml not found (set VIDEOALIGN_CONFIGS)")


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
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r} conflicts with an earlier one")
            node = nxt
        node[parts[-1]] = value
    return out


# --------------------------------------------------------------------------- the config


@dataclass
class Config:
    """A validated configuration: typed sections plus the plain dict it came from."""

    data: dict
    source: str

    def __post_init__(self) -> None:
        self.dataset: DatasetConfig = _validate_record(DatasetConfig, self.data.get("dataset"), "dataset",
                                                       self.source)
        self.features: FeaturesConfig = _resolve_features(
            _validate_record(FeaturesConfig, self.data.get("features"), "features", self.source))
        self.frame_model: FrameModelConfig = _validate_record(FrameModelConfig, self.data.get("frame_model"),
                                                              "frame_model", self.source)
        self.shards: ShardsConfig = _validate_record(ShardsConfig, self.data.get("shards"), "shards", self.source)
        self.index: IndexConfig = _validate_record(IndexConfig, self.data.get("index"), "index", self.source)
        self.search: SearchConfig = _validate_record(SearchConfig, self.data.get("search"), "search", self.source)
        self.evaluate: EvaluateConfig = _validate_record(EvaluateConfig, self.data.get("evaluate"), "evaluate",
                                                         self.source)
        self.segments: SegmentsConfig = _validate_record(SegmentsConfig, self.data.get("segments"), "segments",
                                                         self.source)
        self.align: AlignConfig = _validate_record(AlignConfig, self.data.get("align"), "align", self.source)
        self.tca_training: TCATrainingConfig = _validate_record(TCATrainingConfig, self.data.get("tca_training"),
                                                                "tca_training", self.source)
        models = self.data.get("models")
        if not isinstance(models, dict) or not models:
            raise ConfigError(f"{self.source}: 'models' must be a non-empty mapping of name -> model")
        self.lamv_training: LAMVTrainingConfig = _validate_record(LAMVTrainingConfig, self.data.get("lamv_training"),
                                                                  "lamv_training", self.source)
        lt = self.lamv_training
        if lt.test_fold >= lt.folds or lt.min_overlap > 1 or lt.momentum >= 1 or lt.retrieval_weight > 1:
            raise ConfigError(f"{self.source}: 'lamv_training' needs test_fold < folds, min_overlap <= 1, "
                              f"momentum < 1 and retrieval_weight <= 1")
        self.models: dict[str, TMKModelConfig | CTEModelConfig | LearnedLAMVModelConfig | TCAModelConfig] = {}
        for name, spec in models.items():
            kind = spec.get("type") if isinstance(spec, dict) else None
            if kind not in MODEL_TYPES:
                raise ConfigError(f"{self.source}: 'models.{name}.type' must be one of "
                                  f"{', '.join(map(repr, MODEL_TYPES))}, got {kind!r}")
            self.models[name] = _validate_record(MODEL_TYPES[kind], spec, f"models.{name}", self.source)
        for key in self.data:
            if key not in SECTIONS and key not in TOP_LEVEL and key != "models":
                known = sorted([*SECTIONS, *TOP_LEVEL, "models"])
                raise ConfigError(f"{self.source}: unknown key '{key}' (known: {', '.join(known)})")
        for key, tp in TOP_LEVEL.items():
            try:
                _check(self.data.get(key), tp)
            except TypeError:
                raise ConfigError(f"{self.source}: '{key}' must be {_type_name(tp)}, "
                                  f"got {self.data.get(key)!r}") from None
        for key, value in (("index.model", self.index.model), ("search.model", self.search.model),
                           *((f"evaluate.models[{i}]", m) for i, m in enumerate(self.evaluate.models))):
            if value not in self.models:
                raise ConfigError(f"{self.source}: '{key}' is {value!r}, which is not a model in 'models' "
                                  f"({', '.join(self.models)})")

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def model_spec(self, name: str) -> dict:
        """The plain spec of ``models.<name>`` (keys that were given)."""
        if name not in self.models:
            raise ConfigError(f"{self.source}: no model {name!r} in 'models' ({', '.join(self.models)})")
        return dict(self.data["models"][name])

    @property
    def name(self) -> str:
        return self.dataset.name

    @property
    def root(self) -> Path:
        return Path(str(self.dataset.root))

    @property
    def work_dir(self) -> Path:
        return Path(self.data["work_dir"]) / self.name

    @property
    def reports_dir(self) -> Path:
        return Path(self.data["reports_dir"]) / self.name

    def section_hash(self, *keys: str) -> str:
        """Short hash of the named config values (dotted keys)."""
        payload = {k: self.get(k) for k in keys}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:8]

    def to_json(self) -> str:
        return json.dumps(self.data, sort_keys=True, default=str)


def _resolve_features(f: FeaturesConfig) -> FeaturesConfig:
    """``auto`` values -> the extractor's recommended configuration
    (``extractors.frame_extractor.RECOMMENDED``), so every later stage and hash sees numbers."""
    from extractors.frame_extractor import RECOMMENDED

    rec = RECOMMENDED[f.extractor]
    return dataclasses.replace(
        f, pca=rec.pca if f.pca == "auto" else f.pca,
        image_area=rec.image_area if f.image_area == "auto" else f.image_area,
        pca_shrinkage=rec.pca_shrinkage if f.pca_shrinkage == "auto" else f.pca_shrinkage)


def _finish(data: dict, source: str, name_default: str) -> Config:
    from pipeline.dataset_kinds import kind_names

    ds = data.setdefault("dataset", {})
    if not isinstance(ds, dict):
        raise ConfigError(f"{source}: 'dataset' must be a mapping")
    ds.setdefault("name", name_default)
    if ds.get("kind") not in kind_names():
        raise ConfigError(f"{source}: 'dataset.kind' must be one of {', '.join(kind_names())}, "
                          f"got {ds.get('kind')!r}")
    if not ds.get("root"):
        env = ds.get("root_env")
        if env and os.environ.get(env):
            ds["root"] = os.environ[env]
        elif os.environ.get("VIDEOALIGN_DATA"):
            ds["root"] = str(Path(os.environ["VIDEOALIGN_DATA"]) / str(ds["name"]))
        else:
            raise ConfigError(f"dataset {ds['name']}: no data root: set dataset.root in {source}, "
                              f"${env or 'VIDEOALIGN_DATA'}, or --overrides 'dataset.root=/path'")
    ds["root"] = str(Path(os.path.expanduser(str(ds["root"]))).resolve())
    for key in ("work_dir", "reports_dir"):
        if isinstance(data.get(key), str) or data.get(key) is None:
            data[key] = str(Path(os.path.expanduser(str(data.get(key) or key.split("_")[0]))).resolve())
    return Config(data, source)


def load_config(dataset: str, overrides: str | Iterable[str] | None = None) -> Config:
    """Base defaults, then the dataset file, then ``overrides``; validated; data root resolved."""
    ds_path = resolve_dataset_file(dataset)
    data = deep_merge(_read_yaml(base_file()), _read_yaml(ds_path))
    over = parse_overrides(overrides)
    data = deep_merge(data, over)
    source = f"{ds_path}" + (" + --overrides" if over else "")
    return _finish(data, source, ds_path.stem)


def config_from_json(text: str, source: str) -> Config:
    """A configuration stored with an artifact (validated again)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: stored configuration is not JSON ({exc})") from None
    if isinstance(data, dict):  # sections added since the artifact was written take their defaults
        base = _read_yaml(base_file())
        for section in ("segments", "align", "tca_training"):
            data.setdefault(section, base[section])
        if isinstance(data.get("search"), dict):
            for removed in ("segment_threshold", "segment_max_gap_s"):
                data["search"].pop(removed, None)
    return Config(data, source)
