"""Lazy access to FAISS.

The ``cpu`` and ``gpu`` extras install ``faiss-cpu`` or ``faiss-gpu``; both
provide the module ``faiss``.  Nothing imports it until an index is built or
searched, and :func:`faiss_build` says which build is active.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from types import ModuleType

from extractors.runtime.errors import VideoAlignError


class FaissUnavailableError(VideoAlignError, ImportError):
    """FAISS is not installed."""


@lru_cache(maxsize=1)
def load_faiss() -> ModuleType:
    """Import and return the ``faiss`` module, with a clear error when it is missing."""
    try:
        return importlib.import_module("faiss")
    except ImportError as exc:
        raise FaissUnavailableError(
            "FAISS is not installed: install the project with the 'cpu' extra "
            "(pip install -e '.[cpu]') or, on a CUDA machine, the 'gpu' extra") from exc


def gpu_count() -> int:
    """Number of GPUs FAISS can use (0 for the CPU build)."""
    faiss = load_faiss()
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def faiss_build() -> str:
    """Human-readable description of the active FAISS build, e.g. ``faiss 1.15.1 (CPU build)``."""
    faiss = load_faiss()
    n = gpu_count()
    kind = f"GPU build, {n} GPU(s) visible" if n else (
        "GPU build, no GPU visible" if hasattr(faiss, "StandardGpuResources") else "CPU build")
    return f"faiss {getattr(faiss, '__version__', '?')} ({kind})"
