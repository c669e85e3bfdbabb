"""Calibrate the copy decision's thresholds for this corpus and these features (``CalibrateThresholds``),
and the ``segments:`` settings in force: the calibrated ones under ``calibration.mode: background``.

The background (:mod:`index.calibration`) is measured on a seeded sample of ``calibration.videos``
videos, on the frames the copy-segment stage compares (the 15-fps features at ``segments.fps``; always
the features' own values, so a compact segment-frame store does not move the thresholds).  No label is read.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from index.calibration import background_similarity, thresholds_from_background
from pipeline.config.load import Config
from pipeline.config.schema import SegmentsConfig
from pipeline.core.errors import StepError
from pipeline.core.hdf5 import ArtifactError
from pipeline.steps.frames import FeatureLookup, FrameSource
from pipeline.store.fitted.thresholds import CalibratedThresholds, read_thresholds, write_thresholds
from pipeline.store.layout import Layout

log = logging.getLogger(__name__)


def calibration_sample(ids: list[str], n: int, seed: int) -> list[str]:
    """``n`` of ``ids`` (all when fewer), drawn with ``seed`` from the sorted ids: the same sample for
    the same corpus."""
    ordered = sorted(ids)
    if len(ordered) <= n:
        return ordered
    pick = np.random.default_rng(seed).choice(len(ordered), size=n, replace=False)
    return [ordered[i] for i in sorted(pick)]


def readable_frames(source: FrameSource, ids: list[str], step: int, dim: int | None) -> dict[str, np.ndarray]:
    """The compared frames of each of ``ids`` that reads, is finite and (when given) ``dim``-dimensional;
    a warning names each other file and its cause, and the rest goes on."""
    out: dict[str, np.ndarray] = {}
    for v in ids:  # a few dozen videos
        try:
            x = np.asarray(source.sampled(v, step, dim).features, dtype=np.float32)
        except (ArtifactError, OSError, KeyError, ValueError) as exc:
            log.warning("calibration: skipping %s: %s", v, exc)
            continue
        if not np.all(np.isfinite(x)):
            log.warning("calibration: skipping %s: its features are not finite (damaged; run verify)", v)
            continue
        out[v] = x
    if dim is None and out:  # without an expected size, the most common one (a foreign file is the odd one)
        sizes = [x.shape[1] for x in out.values()]
        common = max(set(sizes), key=sizes.count)
        for v in [v for v, x in out.items() if x.shape[1] != common]:
            log.warning("calibration: skipping %s: %d-dimensional features, the others are %d-dimensional",
                        v, out.pop(v).shape[1], common)
    return out


def calibrate(cfg: Config, source: FrameSource, ids: list[str], step: int, features_key: str,
              corpus: str, dim: int | None = None) -> CalibratedThresholds:
    """The thresholds for the videos ``ids`` of ``source`` (frames every ``step`` of the 15-fps stream;
    ``dim``: the features' size, when known)."""
    c = cfg.calibration
    frames = readable_frames(source, calibration_sample([v for v in ids if v in source], c.videos, c.seed),
                             step, dim)
    if len(frames) < 2:
        raise StepError(f"dataset {cfg.name}: calibrating the copy thresholds needs the frames of at least 2 "
                        f"videos, {len(frames)} could be read (run verify; or set calibration.mode: none and "
                        f"segments.frame_threshold / copy_threshold)")
    chosen = list(frames)
    bg = background_similarity(list(frames.values()), c.rows_per_video, c.seed)
    t = thresholds_from_background(bg, c.frame_units, c.copy_units)
    log.info("copy thresholds for %s from %d videos: frames match above %.3f (background median %.3f, spread "
             "%.3f), a pair is a copy from %.3f s", cfg.name, bg.videos, t.frame_threshold, bg.median, bg.spread,
             t.copy_threshold)
    return CalibratedThresholds(t, bg, c.frame_units, c.copy_units, features_key, corpus, chosen)


def calibrate_thresholds(layout: Layout) -> Path:
    """Measure this corpus's background and write the thresholds (``Layout.thresholds_path``)."""
    got = calibrate(layout.cfg, FeatureLookup.of_layout(layout), [v.id for v in layout.videos], layout.segment_step,
                    layout.features_key, layout.corpus_hash)
    return write_thresholds(layout.thresholds_path, got)


def with_thresholds(sg: SegmentsConfig, t: CalibratedThresholds) -> SegmentsConfig:
    return dataclasses.replace(sg, frame_threshold=t.thresholds.frame_threshold,
                               copy_threshold=t.thresholds.copy_threshold)


def calibrated(layout: Layout) -> CalibratedThresholds | None:
    """This corpus's calibrated thresholds under ``calibration.mode: background`` (``CalibrateThresholds``
    writes them first), None under ``mode: none``."""
    if not layout.calibrates_thresholds:
        return None
    path = layout.thresholds_path
    if not path.is_file():
        raise StepError(f"{path}: the calibrated copy thresholds are missing; run CalibrateThresholds (the Search "
                        f"task and 'python -m pipeline build' run it first), or set calibration.mode: none")
    return read_thresholds(path)


def verify_threshold(cfg: Config, t: CalibratedThresholds) -> float:
    """The frame cosine above which the verification's frame pairs vote (``search.verify: diagonal``),
    on this corpus's background: its median plus ``calibration.verify_units`` spreads."""
    return t.background.median + cfg.calibration.verify_units * t.background.spread


def applied(cfg: Config, t: CalibratedThresholds | None) -> Config:
    """``cfg`` with the thresholds ``t`` in ``segments`` and the verification's in ``search`` (``cfg``
    itself when there are none)."""
    if t is None:
        return cfg
    out = Config(cfg.data, cfg.source, cfg.selector)
    out.segments = with_thresholds(cfg.segments, t)
    out.search = dataclasses.replace(cfg.search, verify_threshold=verify_threshold(cfg, t))
    return out


def config_in_force(layout: Layout) -> Config:
    """The layout's configuration as the search and its reports apply it (:func:`calibrated` thresholds)."""
    return applied(layout.cfg, calibrated(layout))
