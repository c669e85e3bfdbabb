"""The registries: frame extractors, temporal-model types, evaluation protocols, trainers.

A new extractor or model type is one record: the configuration accepts it, the layout hashes it, the
steps build and use it; nothing else switches on its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pytest
import torch

from extractors.frame.base import l2n
from extractors.frame.registry import EXTRACTOR_TYPES, ExtractorType, Recommendation
from extractors.runtime.timebase import FPS
from extractors.temporal.tmk import TMK
from pipeline.config.load import load_config
from pipeline.config.schema import ConfigError
from pipeline.datasets.kinds import KINDS
from pipeline.steps.describe import configured_model
from pipeline.steps.features.extractor import make_extractor
from pipeline.steps.protocols import PROTOCOLS
from pipeline.steps.training.train import TRAINERS
from pipeline.store.descriptors import describe_video, mean_frame_component
from pipeline.store.layout import Layout
from pipeline.store.model_types import MODEL_TYPES, ModelType


def test_every_dataset_kind_names_a_protocol_and_every_trained_type_a_trainer():
    assert {k.protocol for k in KINDS.values()} <= set(PROTOCOLS)
    assert {n for n, t in MODEL_TYPES.items() if t.trainable is not None} == set(TRAINERS)


@dataclass(frozen=True)
class ShortTMKConfig:
    """A new model type's configuration: one short period."""

    type: Literal["short_tmk"]
    period_s: float = 10.0


def test_a_new_model_type_is_one_registry_record(tmp_path, monkeypatch):
    monkeypatch.setitem(MODEL_TYPES, "short_tmk", ModelType(
        "short_tmk", ShortTMKConfig, lambda spec, _: TMK(periods=[spec["period_s"] * FPS], m=4)))
    ov = f"dataset.root={tmp_path};models={{s: {{type: short_tmk, period_s: 20}}}};index.model=s;search.model=s"
    cfg = load_config("folder", ov)
    assert cfg.models["s"] == ShortTMKConfig("short_tmk", 20.0)
    layout = Layout(cfg)
    other = Layout(load_config("folder", ov.replace("period_s: 20", "period_s: 30")))
    assert layout.descriptors_dir("s") != other.descriptors_dir("s")  # its settings are in its paths
    model = configured_model(layout, "s")
    x = l2n(np.random.default_rng(0).standard_normal((40, 8)))
    fv = describe_video(model, x, np.arange(40, dtype=np.float64))
    assert fv.shape == (1, 8, 8) and mean_frame_component(model, fv[None]).shape == (1, 8)
    assert not layout.trains("s") and layout.model_file("s") is None
    with pytest.raises(ConfigError, match=r"'models\.s\.type' must be one of .*'short_tmk', got 'long_tmk'"):
        load_config("folder", ov.replace("type: short_tmk", "type: long_tmk"))


class MeanColour:
    """A new frame extractor: the mean RGB colour of each frame (3-d)."""

    model_id, weights_id, precision, device = "mean_colour", "none", "float32", torch.device("cpu")

    def __init__(self, pca) -> None:
        self.pca = pca

    def pca_samples(self, frames: np.ndarray) -> np.ndarray:
        return frames.reshape(len(frames), -1, 3).mean(axis=1).astype(np.float32)

    def describe(self, frames: np.ndarray) -> np.ndarray:
        return l2n(self.pca_samples(frames))


def test_a_new_extractor_is_one_registry_record(tmp_path, monkeypatch):
    monkeypatch.setitem(EXTRACTOR_TYPES, "mean_colour", ExtractorType(
        "mean_colour", Recommendation("none", 4096, 0.0, None, False), lambda s, pca, _: MeanColour(pca)))
    cfg = load_config("folder", f"dataset.root={tmp_path};features.extractor=mean_colour")
    assert (cfg.features.pca, cfg.features.image_area) == ("none", 4096)  # its recommended settings
    layout = Layout(cfg)
    assert not layout.needs_vocabulary and not layout.needs_frame_model
    ex = make_extractor(cfg.features, None)
    out = ex.describe(np.full((2, 8, 8, 3), 200, np.uint8))
    np.testing.assert_allclose(out, np.full((2, 3), 3 ** -0.5), rtol=1e-6)
    pdqf = Layout(load_config("folder", f"dataset.root={tmp_path};features.extractor=pdqf;features.pca=none;"
                                        f"features.image_area=4096"))
    assert layout.features_dir != pdqf.features_dir  # the extractor is part of every feature path
    with pytest.raises(ConfigError, match=r"'features\.extractor' must be one of 'resnet34_rmac', .*got 'nope'"):
        load_config("folder", f"dataset.root={tmp_path};features.extractor=nope")
