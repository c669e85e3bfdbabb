"""How frames are extracted (decode workers, batches, threads, time limit, memory cap): the settings of
the decode + CNN loop, their resolution for a device, and the feature identity they give.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass

from extractors.decode.reader import DEFAULT_IMAGE_AREA
from extractors.frame.base import FrameExtractor
from extractors.runtime.timebase import FPS
from pipeline.config.schema import FeaturesConfig

SAMPLING_RULE = ("nearest source frame to each n/15 s instant by presentation time "
                 "(ties to the even frame); real timestamps kept")


@dataclass
class ExtractionSettings:
    """Knobs of the decode + CNN loop (not of the features themselves, except the first two)."""

    image_area: int = DEFAULT_IMAGE_AREA
    feature_dtype: str = "float16"
    batch_size: int = 32
    decode_workers: int = -1  # -1: auto (see resolve_layout)
    decode_threads: int = 1
    torch_threads: int = 0  # 0: auto
    queue_chunks: int = 8
    max_pixels: int = 8192 * 8192
    video_time_limit_s: float = 600.0  # per video, decode included (0: none)
    worker_memory_mb: int = 8192  # address-space cap of each decode worker (0: none)
    hwaccel: str = "none"  # FFmpeg hardware decoder (cuda, vaapi, ...), software fallback
    remove_black_bars: bool = False  # crop letterbox / pillarbox bars before the extractor
    progress: bool = True


def resolve_layout(settings: ExtractionSettings, device_type: str,
                   cores: int | None = None) -> ExtractionSettings:
    """Fill in the automatic thread layout (measured in ``benchmarks/bench_extract.py``).

    CPU: one decode worker per two cores and every core for torch: in float32
    (the CPU default) the CNN is the bottleneck, and 2 torch threads beside one
    decoder run 1.4x faster end to end than 1 (108 vs 78 frames/s on 2 cores;
    a decoder alone delivers ~380 frames/s).  CUDA: decoding is the
    bottleneck, so one decode worker per core and one torch thread.
    """
    cores = cores or os.cpu_count() or 1
    s = ExtractionSettings(**asdict(settings))
    if s.decode_workers < 0:
        s.decode_workers = cores if device_type == "cuda" else max(1, cores // 2)
    if s.torch_threads <= 0:
        s.torch_threads = 1 if device_type == "cuda" else cores
    return s


def feature_config_id(extractor: FrameExtractor, settings: ExtractionSettings) -> str:
    """Hash of everything that changes the numbers in a feature file."""
    cfg = {"model": extractor.model_id, "weights": extractor.weights_id,
           "pca": extractor.pca.pca_id if extractor.pca else "none",
           "image_area": settings.image_area, "fps": FPS, "dtype": settings.feature_dtype,
           "precision": extractor.precision, "black_bars": "removed" if settings.remove_black_bars else "kept"}
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]


def extraction_settings(f: FeaturesConfig, show_progress: bool = True) -> ExtractionSettings:
    """The decode + CNN loop's settings from ``features:``."""
    return ExtractionSettings(image_area=f.image_area, feature_dtype=f.dtype, batch_size=f.batch_size,
                              decode_workers=f.decode_workers, torch_threads=f.torch_threads,
                              max_pixels=f.max_pixels, video_time_limit_s=f.video_time_limit_s,
                              worker_memory_mb=f.worker_memory_mb, hwaccel=f.hwaccel,
                              remove_black_bars=f.remove_black_bars, progress=show_progress)
