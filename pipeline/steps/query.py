"""``python -m pipeline query``: rank the indexed videos that contain a copy of a video.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from extractors.runtime.timebase import FPS, frame_count_seconds
from index.rerank import Match
from pipeline.config.load import Config, config_from_json
from pipeline.config.schema import ConfigError
from pipeline.core.errors import StepError
from pipeline.core.hdf5 import ArtifactError
from pipeline.steps.describe import configured_model, descriptor_store
from pipeline.steps.features.extract import Failure, describe_videos
from pipeline.steps.features.extractor import configured_extractor
from pipeline.steps.features.settings import extraction_settings, resolve_layout
from pipeline.steps.frames import FeatureLookup
from pipeline.steps.search import search_one
from pipeline.steps.thresholds import applied, calibrate
from pipeline.store import completeness
from pipeline.store.descriptors import (
    DescriptorStore,
    describe_video,
    mean_frame_component,
)
from pipeline.store.features import VideoFeatures
from pipeline.store.fitted.thresholds import CalibratedThresholds, read_thresholds
from pipeline.store.index_files import read_index
from pipeline.store.layout import Layout
from pipeline.store.publish import MANIFEST, current_version, read_manifest

log = logging.getLogger(__name__)


@dataclass
class QueryResult:
    video: str
    model: str
    index_dir: Path
    n_frames: int
    matches: list[Match]

    @property
    def duration_s(self) -> float:
        return frame_count_seconds(self.n_frames)


def find_index(cfg: Config) -> Path:
    """The index a dataset serves: its published version; else the batch index built with exactly
    these settings; else the newest batch index of the dataset (a warning names it: queries always
    run with the settings stored with the index they use)."""

    layout = Layout(cfg)
    published = current_version(layout.published_root)
    if published is not None:
        return published
    try:
        if completeness.index_complete(layout.index_dir):
            return layout.index_dir
    except ConfigError:
        pass  # the corpus is not reachable from here: use what was built
    built = sorted((d for d in layout.work.glob("index-*") if completeness.index_complete(d)),
                   key=lambda d: (d / "meta.h5").stat().st_mtime_ns)
    if built:
        log.warning("no index built with exactly these settings; using %s with the settings stored in it",
                    built[-1])
        return built[-1]
    how = (f"luigi --module pipeline BuildIndex --dataset {cfg.name} --local-scheduler"
           f" (or python -m pipeline build --dataset {cfg.name}), with the same --overrides")
    raise StepError(f"dataset {cfg.name}: no index under {layout.work}; build it first: {how}")


def query_features(cfg: Config, layout: Layout, path: Path) -> VideoFeatures:
    """Frame features of a video outside the corpus, with the index's own settings, decoded by the decode
    pool like the corpus (per-video time limit, memory cap)."""
    if not Path(path).is_file():
        raise StepError(f"{path}: file not found")
    ex = configured_extractor(layout)
    settings = resolve_layout(extraction_settings(cfg.features, show_progress=False), ex.device.type)
    (got,) = describe_videos([(str(path), str(path))], ex, settings)
    if isinstance(got, Failure):
        raise StepError(f"{path}: {got.stage}: {got.cause}")
    return got


def query_calibration(cfg: Config, layout: Layout, features: FeatureLookup, ids: list[str],
                      dim: int) -> CalibratedThresholds | None:
    """The thresholds for a query: the corpus's calibrated ones when the batch search wrote them, else
    calibrated here the same way from the indexed videos' features (``calibration.mode: background``);
    None under ``mode: none``."""
    if cfg.calibration.mode == "none":
        return None
    try:
        return read_thresholds(layout.thresholds_path)
    except ArtifactError:
        pass  # not written (no batch search yet) or unreadable: calibrate on what the index holds
    except ConfigError:
        pass  # the corpus is not reachable from here (a published index): calibrate on what it holds
    return calibrate(cfg, features, ids, layout.segment_step, layout.features_key, "", dim)


def query(video: Path, index_dir: Path, model_name: str | None = None, top: int = 10) -> QueryResult:
    """Rank the indexed videos that contain a copy of ``video``, with offsets and spans (seconds).

    Every setting (weights, PCA, models) comes from the configuration stored with the index.
    """

    idx = read_index(index_dir)
    cfg = config_from_json(str(idx.attrs["config"]), f"{index_dir / 'meta.h5'} (stored configuration)")
    layout = Layout(cfg)
    model_name = model_name or cfg.search.model
    if model_name not in cfg.models:
        raise StepError(f"model {model_name!r} is not one of this index's models ({', '.join(cfg.models)})")
    cfg.data["search"]["keep"] = top
    cfg.data["search"]["top_k"] = max(cfg.search.top_k, top)
    cfg = Config(cfg.data, cfg.source)
    manifest = read_manifest(index_dir) if (index_dir / MANIFEST).is_file() else None
    if manifest is not None:
        store = DescriptorStore.from_manifest(manifest["videos"], model_name)
        features = FeatureLookup.of_manifest(manifest)
    else:
        store = descriptor_store(layout, model_name)
        features = FeatureLookup.of_layout(layout)
    vf = query_features(cfg, layout, video)  # decoded and described once
    cfg = applied(cfg, query_calibration(cfg, layout, features, list(store.ids), vf.features.shape[1]))
    times = vf.timestamps_s * FPS
    model = configured_model(layout, model_name)
    fv = describe_video(model, vf.features, times)
    imodel = model if cfg.index.model == model_name else configured_model(layout, cfg.index.model)
    ifv = fv if imodel is model else describe_video(imodel, vf.features, times)
    mean = mean_frame_component(imodel, ifv[None]).numpy()[0]
    rows = search_one(cfg, model, str(video), fv[None], mean, vf, idx, store, features, None)
    return QueryResult(str(video), model_name, index_dir, len(vf.features), rows)
