"""Identities that output paths hash: a digest of settings, the weights file, the resolved
precision and device, the corpus listing.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from extractors.frame.registry import EXTRACTOR_TYPES
from extractors.frame.resnet_rmac import resolve_precision
from pipeline.config.schema import FeaturesConfig
from pipeline.datasets.listing import Video


def digest(payload: object, n: int = 10) -> str:
    """Short, stable hash of a JSON-serialisable value."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _file_identity(path: str) -> str:
    """``file:<resolved path>:<size>:<mtime_ns>`` (or ``:missing``): changes when the file does."""
    p = Path(os.path.expanduser(path))
    try:
        st = p.stat()
    except OSError:
        return f"file:{p}:missing"
    return f"file:{p.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def weights_identity(features: FeaturesConfig) -> str:
    """What the CNN weights are: the published checkpoint, random with a seed, or a given file
    (``none`` for extractors without weights)."""

    if not EXTRACTOR_TYPES[features.extractor].recommended.needs_weights:
        return "none"
    w = features.weights
    if w == "imagenet":
        return "torchvision:resnet34-b627a593"
    if w == "random":
        return f"random:seed={features.seed}"
    return _file_identity(w)


def resolved_precision(features: FeaturesConfig) -> str:
    """The precision the CNN runs at, decided from the settings alone (no measurement).

    ``auto``: float32 on the CPU; bfloat16 on CUDA (float16 where bfloat16 is unsupported).
    """
    import torch

    return resolve_precision(features.precision, torch.device(resolved_device(features)))


def resolved_device(features: FeaturesConfig) -> str:
    dev = features.device
    if dev != "auto":
        return dev
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def listing_hash(videos: list[Video]) -> str:
    """Hash of a listing: ids, sizes and mtimes."""
    return digest([[v.id, v.size, v.mtime] for v in videos], 16)
