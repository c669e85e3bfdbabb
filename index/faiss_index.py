"""FAISS inner-product index over L2-normalised mean-frame vectors (no file I/O here:
``pipeline.store.index_files`` reads and writes index directories)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from index.faiss_backend import gpu_count, load_faiss

log = logging.getLogger(__name__)

def choose_index_type(n: int, kind: str = "auto", ivf_threshold: int = 50_000) -> str:
    """``flat`` for small corpora, ``ivf<nlist>`` (nlist ~ 4 sqrt(n)) at and above the threshold."""
    if kind == "flat" or (kind == "auto" and n < ivf_threshold):
        return "flat"
    nlist = max(1, min(int(4 * math.sqrt(max(n, 1))), max(1, n // 39)))
    return f"ivf{nlist}"


def build_faiss(vectors: np.ndarray, index_type: str, use_gpu: bool | None = None,
                ids: np.ndarray | None = None):
    """Build an inner-product index holding ``vectors (n, d) float32``.

    With ``ids (n,) int64`` the index maps FAISS ids explicitly (flat indexes are
    wrapped in ``IndexIDMap2``), so vectors can later be removed and added by id.
    """
    faiss = load_faiss()
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    d = x.shape[1]
    if index_type == "flat":
        index = faiss.IndexFlatIP(d)
        if ids is not None:
            index = faiss.IndexIDMap2(index)
    elif index_type.startswith("ivf"):
        nlist = int(index_type[3:])
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    else:
        raise ValueError(f"unknown index type {index_type!r}")
    gpu = (gpu_count() > 0) if use_gpu is None else use_gpu
    work = faiss.index_cpu_to_all_gpus(index) if gpu and ids is None else index
    if not work.is_trained:
        work.train(x)
    if ids is None:
        work.add(x)
    else:
        work.add_with_ids(x, np.ascontiguousarray(ids, dtype=np.int64))
    return faiss.index_gpu_to_cpu(work) if work is not index else index


def update_faiss(index, remove_ids: np.ndarray, add_vectors: np.ndarray, add_ids: np.ndarray):
    """Remove ``remove_ids`` and add ``add_vectors`` under ``add_ids`` (an id-mapped index)."""
    if len(remove_ids):
        index.remove_ids(np.ascontiguousarray(remove_ids, dtype=np.int64))
    if len(add_ids):
        index.add_with_ids(np.ascontiguousarray(add_vectors, dtype=np.float32),
                           np.ascontiguousarray(add_ids, dtype=np.int64))
    return index


@dataclass
class VideoIndex:
    """A loaded index with its id map (``faiss_ids[i]`` is the FAISS id of ``video_ids[i]``)."""

    index: object
    video_ids: list[str]
    attrs: dict = field(default_factory=dict)
    faiss_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.faiss_ids is None:
            self.faiss_ids = np.arange(len(self.video_ids), dtype=np.int64)
        self._name = dict(zip(self.faiss_ids.tolist(), self.video_ids, strict=True))

    def search(self, queries: np.ndarray, k: int, nprobe: int = 32) -> tuple[np.ndarray, list[list[str]]]:
        """Top-``k`` by inner product: ``(scores (q, k'), ids)`` with ``k' = min(k, n)``."""
        k = min(k, len(self.video_ids))
        if k == 0:
            return np.zeros((len(queries), 0), np.float32), [[] for _ in queries]
        if hasattr(self.index, "nprobe"):
            self.index.nprobe = nprobe
        scores, idx = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        names = [[self._name[int(i)] for i in row if i >= 0] for row in idx]
        return scores, names


def stored_ids(index) -> np.ndarray | None:
    """The FAISS ids an id-mapped index holds, in storage order (``None`` when it keeps no id map)."""
    faiss = load_faiss()
    if not hasattr(index, "id_map"):
        return None
    return faiss.vector_to_array(index.id_map).astype(np.int64)


def stored_vectors(index) -> np.ndarray | None:
    """``(ntotal, d)`` vectors of a flat index (id-mapped or not), ``None`` for other kinds."""
    faiss = load_faiss()
    inner = faiss.downcast_index(index.index) if hasattr(index, "id_map") else index
    if not isinstance(inner, faiss.IndexFlat):
        return None
    return faiss.rev_swig_ptr(inner.get_xb(), inner.ntotal * inner.d).reshape(inner.ntotal, inner.d).copy()
