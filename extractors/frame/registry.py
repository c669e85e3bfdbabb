"""The frame-extractor registry: what each ``features.extractor`` is.

One :class:`ExtractorType` record per extractor: what ``auto`` settings mean for it
(:class:`Recommendation`, chosen by measurement, see README), what it fits on the corpus before any
feature (a MultiVLAD vocabulary, the selfsup network, or nothing) and how it is built from its settings,
its PCA-whitening and that fitted object.  ``features.extractor`` is validated against
:data:`EXTRACTOR_TYPES`; a new extractor is one new module plus one record here (``docs/architecture.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from extractors.frame.base import FrameExtractor
from extractors.frame.mvlad import MultiVLADExtractor
from extractors.frame.pca import PCAWhitening
from extractors.frame.pdqf import PDQFExtractor
from extractors.frame.resnet_rmac import ExtractorSettings, FrameFeatureExtractor
from extractors.frame.selfsup import SelfSupExtractor

CorpusFit = Literal["vocabulary", "frame_model"]


@dataclass(frozen=True)
class Recommendation:
    """What ``features.<key>: auto`` means for an extractor (chosen by measurement, see README)."""

    pca: str  # none | trained
    image_area: int  # decoded frame area, pixels
    pca_shrinkage: float  # whitening regulariser (extractors.frame.pca.fit_pca)
    pca_dims: int | None  # output dimensions of the PCA (None: all)
    needs_weights: bool  # downloaded CNN weights (the others need nothing from outside)


@dataclass(frozen=True)
class ExtractorType:
    """A frame extractor: its recommended settings, what it fits on the corpus first (``fit``), and its
    builder ``(settings, pca, fitted) -> FrameExtractor`` (``fitted``: the object ``fit`` produced)."""

    name: str
    recommended: Recommendation
    build: Callable[[ExtractorSettings, PCAWhitening | None, object], FrameExtractor]
    fit: CorpusFit | None = None


EXTRACTOR_TYPES: dict[str, ExtractorType] = {e.name: e for e in (
    ExtractorType("resnet34_rmac", Recommendation("none", 12000, 0.0, None, True),
                  lambda s, pca, _: FrameFeatureExtractor(s, pca)),
    ExtractorType("pdqf", Recommendation("trained", 12000, 1.0, None, False),
                  lambda s, pca, _: PDQFExtractor(pca)),
    ExtractorType("mvlad", Recommendation("trained", 30000, 0.1, 512, False),
                  lambda s, pca, vocab: MultiVLADExtractor(vocab, pca), fit="vocabulary"),  # type: ignore[arg-type]
    ExtractorType("selfsup", Recommendation("trained", 12000, 0.1, None, False),
                  lambda s, pca, model: SelfSupExtractor(model, pca, s.device), fit="frame_model"),  # type: ignore[arg-type]
)}

OFFLINE_EXTRACTORS = tuple(n for n, e in EXTRACTOR_TYPES.items() if not e.recommended.needs_weights)
"""Extractors that need no downloaded weights."""


def extractor_type(name: str) -> ExtractorType:
    """The registry record of ``features.extractor`` (the configuration was validated against it)."""
    return EXTRACTOR_TYPES[name]
