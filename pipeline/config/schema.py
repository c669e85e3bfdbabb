"""The configuration's types: one dataclass per section and per model type, and the bounds
beyond the types.  After merging, every key must be one of their fields and every value of the
field's type, or :class:`ConfigError` names the key, the value and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from extractors.runtime.errors import VideoAlignError


class ConfigError(VideoAlignError, ValueError):
    """A configuration that cannot be loaded or is invalid (the message names the file or key)."""


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
    extractor: str  # one of extractors.frame.registry.EXTRACTOR_TYPES (checked when loading)
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
    """Training of the ``selfsup`` extractor's network (``extractors/frame/selfsup.py``), or the network
    to use instead (``checkpoint``: a ``selfsup-*.pt`` trained elsewhere; nothing is trained then)."""

    checkpoint: str  # "trained" (on this corpus) or a path to a selfsup-*.pt file
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
    size: int  # videos per feature / descriptor task
    queries: int  # queries per search task


@dataclass(frozen=True)
class StoresConfig:
    """How artifacts are stored: the precision of the temporal descriptors (``index/quantise.py``), and
    the frames the copy-segment stage reads (``pipeline/store/segment_frames.py``; ``none``: it reads
    the 15-fps features)."""

    descriptors: Literal["float32", "float16", "int8"]
    segment_frames: Literal["none", "float16", "int8"]


@dataclass(frozen=True)
class IndexConfig:
    """The FAISS index over ``model``'s mean-frame vectors (``index/faiss_index.py``)."""

    model: str
    factory: str  # a faiss.index_factory string ("Flat", "IVF4096,SQ8", "HNSW32", ...) or "auto"
    nprobe: int
    ef_search: int
    train_size: int
    on_disk: bool
    delta_max: float  # refresh: delta + removed videos kept beside the base, as a share of it


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
    refine_offsets: Literal["none", "wide_peaks"]
    refine_peak_s: float
    refine_band_s: float
    agree_directions: bool


@dataclass(frozen=True)
class HashesConfig:
    """Searching a folder of Meta TMK hashes (``dataset.kind: tmk``), as Meta's ``tmk-query``."""

    level1: float  # a pair is scored at level 2 when its level-1 score (cosine of the means) reaches this
    level2: float  # ... and reported when its level-2 score reaches this
    top_k: int  # FAISS neighbours (by level 1) examined per hash


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
class CalibrationConfig:
    """The copy decision's thresholds set for this corpus and these features from the corpus's own
    background (``index/calibration.py``), without labels; ``mode: none`` keeps ``segments.frame_threshold``
    and ``segments.copy_threshold`` as written."""

    mode: Literal["background", "none"]
    frame_units: float
    copy_units: float
    verify_units: float
    videos: int
    rows_per_video: int
    seed: int


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
    trained (``kernel: trained``, by the ``Train`` task on this dataset's ground truth, settings in
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
    """Training of ``lamv_learned`` kernels (``extractors/training/lamv_training.py``; the paper's values by
    default)."""

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
    """Temporal Context Aggregation (``extractors/temporal/tca.py``): ``checkpoint: trained`` (by the ``Train``
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
    """Training of ``tca`` models (``extractors/training/tca_training.py``); the held-out fold is
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
                             "frame_model": FrameModelConfig, "shards": ShardsConfig, "stores": StoresConfig,
                             "index": IndexConfig, "search": SearchConfig, "evaluate": EvaluateConfig,
                             "lamv_training": LAMVTrainingConfig, "segments": SegmentsConfig, "align": AlignConfig,
                             "calibration": CalibrationConfig,
                             "tca_training": TCATrainingConfig, "hashes": HashesConfig}


TOP_LEVEL: dict[str, Any] = {"storage": str | None, "work_dir": str, "reports_dir": str}


# Constraints beyond the type (key -> (predicate, what is expected)).
_MIN: dict[str, float] = {
    "dataset.max_length_s": 1e-9, "features.level": 1, "features.pca_frames_per_video": 1,
    "features.image_area": 64, "features.pca_shrinkage": 0, "features.batch_size": 1, "features.decode_workers": -1,
    "features.torch_threads": 0, "features.max_pixels": 1, "features.video_time_limit_s": 0,
    "features.worker_memory_mb": 0, "shards.size": 1, "shards.queries": 1, "index.nprobe": 1, "index.ef_search": 1,
    "index.train_size": 1, "index.delta_max": 0,
    "search.top_k": 1, "search.keep": 1, "search.qe_n1": 1, "search.qe_n2": 1, "search.background": 1,
    "search.verify_fps": 0.1, "search.refine_peak_s": 0, "search.refine_band_s": 0,
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
    "calibration.copy_units": 0, "calibration.videos": 2, "calibration.rows_per_video": 1,
    "align.fps": 0.05, "align.draq_paths": 1, "align.draq_top": 0,
    "tca_training.steps": 1, "tca_training.batch": 1, "tca_training.lr": 1e-12, "tca_training.weight_decay": 0,
    "tca_training.temperature": 1e-6, "tca_training.queue": 1, "tca_training.hard_negatives": 1,
    "tca_training.crop_min": 1e-3, "tca_training.checkpoint_every": 1,
}


REMOVED: dict[str, str] = {
    "index.type": "index.type was replaced by index.factory, a FAISS index_factory string or auto "
                  "(type: flat is factory: Flat; type: ivf is factory: IVF<lists>,Flat)",
    "index.ivf_threshold": "index.ivf_threshold was removed: index.factory: auto picks the index from the corpus "
                           "size (index/faiss_index.py, auto_factory)",
    "features.fps": "features.fps was removed: every video is sampled at 15 fps, the pipeline's one time base "
                    "(extractors/runtime/timebase.py)",
    "search.segment_threshold": "search.segment_threshold was replaced by segments.frame_threshold (copy segments "
                                "are located by segments.method: offset | hv | tn | dtw)",
    "search.segment_max_gap_s": "search.segment_max_gap_s was replaced by segments.max_gap_s",
}
