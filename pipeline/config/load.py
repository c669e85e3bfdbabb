"""Configuration: ``configs/base.yaml`` + ``configs/<dataset>.yaml`` + overrides, validated.

``--dataset NAME`` resolves ``NAME.yaml`` (case-insensitive) in
``$VIDEOALIGN_CONFIGS``, then ``./configs``, then the configs shipped with the
package (``configs`` is package data, so a non-editable install finds them);
a path to a YAML file is taken as is.  Overrides are ``key.path=value`` items
(values parsed as YAML), separated by ``;`` or given as a list.  YAML is read
with ``yaml.safe_load`` only.

Every default is defined once, in ``configs/base.yaml``.  Data roots come from the config or
the environment, never from code.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from extractors.frame.registry import EXTRACTOR_TYPES
from pipeline.config.schema import (
    SECTIONS,
    TOP_LEVEL,
    AlignConfig,
    CalibrationConfig,
    ConfigError,
    CTEModelConfig,
    DatasetConfig,
    EvaluateConfig,
    FeaturesConfig,
    FrameModelConfig,
    HashesConfig,
    IndexConfig,
    LAMVTrainingConfig,
    LearnedLAMVModelConfig,
    SearchConfig,
    SegmentsConfig,
    ShardsConfig,
    StoresConfig,
    TCAModelConfig,
    TCATrainingConfig,
    TMKModelConfig,
)
from pipeline.config.validate import _check, _type_name, _validate_record
from pipeline.datasets.kinds import kind_names
from pipeline.store.model_types import MODEL_TYPES


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
    except yaml.YAMLError as exc:  # one line: where (line:column) and what
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        what = "; ".join(str(x) for x in (getattr(exc, "context", None), getattr(exc, "problem", None)) if x)
        raise ConfigError(f"{path}{where}: invalid YAML ({what or ' '.join(str(exc).split())})") from None
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


@dataclass
class Config:
    """A validated configuration: typed sections plus the plain dict it came from."""

    data: dict
    source: str
    selector: str = dataclasses.field(default="", compare=False)
    """How the command line named it (``--dataset NAME [--overrides '...']``), for the commands a
    message tells the user to run; empty for configurations stored with artifacts."""

    def __post_init__(self) -> None:
        self.dataset: DatasetConfig = _validate_record(DatasetConfig, self.data.get("dataset"), "dataset",
                                                       self.source)
        self.features: FeaturesConfig = _resolve_features(
            _validate_record(FeaturesConfig, self.data.get("features"), "features", self.source), self.source)
        self.frame_model: FrameModelConfig = _validate_record(FrameModelConfig, self.data.get("frame_model"),
                                                              "frame_model", self.source)
        ck = self.frame_model.checkpoint
        if ck != "trained" and not ck.endswith(".pt"):
            raise ConfigError(f"{self.source}: 'frame_model.checkpoint' must be trained or the path of a selfsup "
                              f"network file (selfsup-<key>.pt, written by TrainFrameModel), got {ck!r}")
        self.shards: ShardsConfig = _validate_record(ShardsConfig, self.data.get("shards"), "shards", self.source)
        self.stores: StoresConfig = _validate_record(StoresConfig, self.data.get("stores"), "stores", self.source)
        self.index: IndexConfig = _validate_record(IndexConfig, self.data.get("index"), "index", self.source)
        self.search: SearchConfig = _validate_record(SearchConfig, self.data.get("search"), "search", self.source)
        self.evaluate: EvaluateConfig = _validate_record(EvaluateConfig, self.data.get("evaluate"), "evaluate",
                                                         self.source)
        self.segments: SegmentsConfig = _validate_record(SegmentsConfig, self.data.get("segments"), "segments",
                                                         self.source)
        self.align: AlignConfig = _validate_record(AlignConfig, self.data.get("align"), "align", self.source)
        self.calibration: CalibrationConfig = _validate_record(CalibrationConfig, self.data.get("calibration"),
                                                               "calibration", self.source)
        self.hashes: HashesConfig = _validate_record(HashesConfig, self.data.get("hashes"), "hashes", self.source)
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
        ix = self.index
        if not ix.factory or any(c.isspace() for c in ix.factory):
            raise ConfigError(f"{self.source}: 'index.factory' must be auto or a FAISS index_factory string "
                              f"without spaces (e.g. Flat, IVF4096,SQ8, HNSW32), got {ix.factory!r}")
        if ix.on_disk and ix.factory != "auto" and "IVF" not in ix.factory:
            raise ConfigError(f"{self.source}: 'index.on_disk' keeps IVF inverted lists on disk, but "
                              f"'index.factory' is {ix.factory!r} (use an IVF factory or auto)")
        self.models: dict[str, TMKModelConfig | CTEModelConfig | LearnedLAMVModelConfig | TCAModelConfig] = {}
        for name, spec in models.items():
            kind = spec.get("type") if isinstance(spec, dict) else None
            if kind not in MODEL_TYPES:
                raise ConfigError(f"{self.source}: 'models.{name}.type' must be one of "
                                  f"{', '.join(map(repr, MODEL_TYPES))}, got {kind!r}")
            self.models[name] = _validate_record(MODEL_TYPES[kind].config, spec, f"models.{name}", self.source)
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

    @property
    def locations(self) -> str:
        """Where a run of this configuration reads and writes, for the first line of its log."""
        return (f"dataset {self.name} at {self.root}: work directory {self.work_dir}, "
                f"reports {self.reports_dir}")

    def section_hash(self, *keys: str) -> str:
        """Short hash of the named config values (dotted keys)."""
        payload = {k: self.get(k) for k in keys}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:8]

    def to_json(self) -> str:
        return json.dumps(self.data, sort_keys=True, default=str)


def _resolve_features(f: FeaturesConfig, source: str) -> FeaturesConfig:
    """``auto`` values -> the extractor's recommended configuration
    (``extractors.frame.registry.EXTRACTOR_TYPES``), so every later stage and hash sees numbers."""
    if f.extractor not in EXTRACTOR_TYPES:
        raise ConfigError(f"{source}: 'features.extractor' must be one of {', '.join(map(repr, EXTRACTOR_TYPES))}, "
                          f"got {f.extractor!r}")
    rec = EXTRACTOR_TYPES[f.extractor].recommended
    return dataclasses.replace(
        f, pca=rec.pca if f.pca == "auto" else f.pca,
        image_area=rec.image_area if f.image_area == "auto" else f.image_area,
        pca_shrinkage=rec.pca_shrinkage if f.pca_shrinkage == "auto" else f.pca_shrinkage)


def _finish(data: dict, source: str, name_default: str) -> Config:
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
            probe = copy.deepcopy(data)  # a type error elsewhere in the file is reported first
            probe["dataset"]["root"] = os.sep
            Config(probe, source)
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
    cfg = _finish(data, source, ds_path.stem)
    text = overrides if isinstance(overrides, str) or overrides is None else ";".join(overrides)
    cfg.selector = f"--dataset {shlex.quote(dataset)}" + (f" --overrides {shlex.quote(text)}" if text else "")
    return cfg


def config_from_json(text: str, source: str) -> Config:
    """A configuration stored with an artifact (validated again)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: stored configuration is not JSON ({exc})") from None
    if isinstance(data, dict):  # sections added since the artifact was written take their defaults
        base = _read_yaml(base_file())
        for section in ("segments", "align", "tca_training", "stores"):
            data.setdefault(section, base[section])
        for section in ("index", "shards", "stores", "search", "calibration"):  # keys added since: their defaults
            if isinstance(data.get(section), dict):
                for key, value in base[section].items():
                    data[section].setdefault(key, value)
        if isinstance(data.get("index"), dict):  # index.type / ivf_threshold became index.factory
            if data["index"].pop("type", None) == "flat":
                data["index"]["factory"] = "Flat"
            data["index"].pop("ivf_threshold", None)
        if isinstance(data.get("search"), dict):
            for removed in ("segment_threshold", "segment_max_gap_s"):
                data["search"].pop(removed, None)
    return Config(data, source)
