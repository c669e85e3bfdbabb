"""The configured frame-feature extractor and everything fitted on the corpus that it uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from extractors.frame.base import FrameExtractor
from extractors.frame.mvlad import Vocabulary
from extractors.frame.pca import PCAWhitening, load_published
from extractors.frame.registry import EXTRACTOR_TYPES
from extractors.frame.resnet import WeightsNotFoundError, resolve_weights
from extractors.frame.resnet_rmac import ExtractorSettings
from extractors.frame.selfsup import FrameModel
from pipeline.config.schema import FeaturesConfig
from pipeline.core.errors import StepError
from pipeline.core.hdf5 import ArtifactError
from pipeline.store.fitted.frame_model import load_frame_model
from pipeline.store.fitted.pca import load_pca
from pipeline.store.fitted.vocabulary import load_vocabulary
from pipeline.store.layout import Layout

FIT_TASKS = {"vocabulary": ("vocabulary", "TrainVocabulary"), "frame_model": ("trained network", "TrainFrameModel")}
"""What an extractor's corpus fit is called, and the task that makes it."""


def weights_hint() -> str:
    return ('give the checkpoint with --overrides "features.weights=/path/to/resnet34-b627a593.pth" '
            "(or put it in torch's hub cache), or use an extractor that needs no weights: "
            '--overrides "features.extractor=selfsup;search.model=cte" (the recommended offline '
            'configuration, benchmarks/RESULTS.md; or features.extractor=mvlad, pdqf)')


def needs_weights(features: FeaturesConfig) -> bool:
    return EXTRACTOR_TYPES[features.extractor].recommended.needs_weights


def check_weights(features: FeaturesConfig) -> None:
    """Fail fast, before any work, when the configured CNN weights cannot be found."""
    if not needs_weights(features):
        return
    try:
        resolve_weights(features.weights, download=False)
    except WeightsNotFoundError as exc:
        if features.weights == "imagenet" and features.download_weights:
            return  # make_extractor will try the download and fail with the same hint
        raise StepError(f"{str(exc).split(':')[0]}: {weights_hint()}") from None


def make_extractor(f: FeaturesConfig, pca: PCAWhitening | None, vocab: Vocabulary | None = None,
                   frame_model: FrameModel | None = None) -> FrameExtractor:
    """The configured frame-feature extractor (``features.extractor``)."""
    kind = EXTRACTOR_TYPES[f.extractor]
    fitted = {"vocabulary": vocab, "frame_model": frame_model}.get(kind.fit) if kind.fit else None
    if kind.fit and fitted is None:
        raise StepError(f"the {f.extractor} extractor needs its {FIT_TASKS[kind.fit][0]} ({FIT_TASKS[kind.fit][1]})")
    settings = ExtractorSettings(level=f.level, weights=f.weights, download_weights=f.download_weights,
                                 seed=f.seed, device=f.device, precision=f.precision)
    try:
        return kind.build(settings, pca, fitted)
    except WeightsNotFoundError as exc:
        first = str(exc).split(" (or set")[0]
        raise StepError(f"{first}; {weights_hint()}") from None
    except ValueError as exc:  # refused or foreign checkpoint (the message names the file)
        raise StepError(f"{exc}; {weights_hint()}") from None


def configured_extractor(layout: Layout) -> FrameExtractor:
    """The extractor with everything fitted on the corpus that it uses (vocabulary or network, PCA)."""
    ex = make_extractor(layout.cfg.features, load_configured_pca(layout), load_configured_vocabulary(layout),
                        load_configured_frame_model(layout))
    if ex.pca is not None:  # a PCA made for other vectors fails here, naming its file, not deep in a batch
        dim = ex.pca_samples(np.zeros((1, 64, 64, 3), np.uint8)).shape[1]
        if ex.pca.mean.shape[-1] != dim:
            spec = layout.cfg.features.pca
            where = layout.pca_path if spec == "trained" else spec
            raise StepError(f"{where}: a PCA for {ex.pca.mean.shape[-1]}-dimensional vectors, but the "
                            f"{layout.cfg.features.extractor} extractor gives {dim}-dimensional ones "
                            f"(a PCA made for another extractor or level)")
    return ex


def load_configured_frame_model(layout: Layout) -> FrameModel | None:
    if not layout.needs_frame_model:
        return None
    try:
        return load_frame_model(layout.frame_model_path)
    except (ArtifactError, OSError) as exc:
        if not layout.trains_frame_model:
            raise StepError(f"{layout.frame_model_path}: the selfsup network 'frame_model.checkpoint' names is "
                            f"missing or unreadable ({exc}); give a selfsup-<key>.pt written by TrainFrameModel, "
                            f"or set frame_model.checkpoint: trained to train one on this corpus") from None
        raise StepError(f"{layout.frame_model_path}: the selfsup network is missing or unreadable ({exc}); run "
                        f"TrainFrameModel (any Luigi task or 'python -m pipeline build' trains it first)") from None


def fitting_sample(layout: Layout) -> list[Path]:
    """The videos a corpus fit (vocabulary, network, PCA) reads: every readable regular file (never a
    FIFO, device or symlink loop, which could block or fail the fit)."""
    return [v.path for v in layout.videos if not v.problem]


def load_configured_vocabulary(layout: Layout) -> Vocabulary | None:
    if not layout.needs_vocabulary:
        return None
    try:
        return load_vocabulary(layout.vocab_path)
    except (ArtifactError, OSError):
        raise StepError(f"{layout.vocab_path}: the MultiVLAD vocabulary is missing; run TrainVocabulary "
                        f"(any Luigi task or 'python -m pipeline build' fits it first)") from None


def pca_needed(layout: Layout) -> bool:
    """True when features need a PCA trained on this corpus first."""
    return layout.cfg.features.pca == "trained"


def load_configured_pca(layout: Layout) -> PCAWhitening | None:
    """The PCA the config asks for: none, trained (:func:`train_pca`'s output), a published prefix or a file."""
    spec = layout.cfg.features.pca
    if spec in ("none", ""):
        return None
    if spec == "trained":
        if not layout.pca_path.is_file():
            raise StepError(f"{layout.pca_path}: the trained PCA is missing; run TrainPCA "
                            f"(any Luigi task or 'python -m pipeline build' trains it first)")
        return load_pca(layout.pca_path)
    if spec.endswith(".h5"):
        return load_pca(spec)
    return load_published(spec, layout.cfg.features.level)
