"""FAISS inner-product index over L2-normalised mean-frame vectors.

An index directory holds ``index.faiss`` and ``meta.h5`` (schema
``videoalign/index``: ``video_ids`` in FAISS id order, the index type, the
model, the build's configuration).  Both are written atomically, the
metadata last; a reader checks that they agree.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from index.faiss_backend import faiss_build, gpu_count, load_faiss

log = logging.getLogger(__name__)

INDEX_SCHEMA = "videoalign/index"
INDEX_VERSION = 1
INDEX_FILE = "index.faiss"
META_FILE = "meta.h5"


class IndexFileError(ValueError):
    """An index directory that is missing or inconsistent (message names the file)."""


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


def write_index(directory: str | os.PathLike, index, video_ids: list[str], attrs: dict,
                faiss_ids: np.ndarray | None = None) -> Path:
    """Write ``index.faiss`` then ``meta.h5`` into ``directory`` (each atomically)."""
    from pipeline.artifacts import atomic_h5, atomic_path, clean_stale_temporaries

    faiss = load_faiss()
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(d)
    with atomic_path(d / INDEX_FILE) as tmp:
        faiss.write_index(index, str(tmp))
    with atomic_h5(d / META_FILE) as f:
        f.attrs["schema"] = INDEX_SCHEMA
        f.attrs["schema_version"] = INDEX_VERSION
        f.attrs["faiss_build"] = faiss_build()
        f.attrs["ntotal"] = int(index.ntotal)
        for k, v in attrs.items():
            f.attrs[k] = v if isinstance(v, str | int | float) else json.dumps(v, sort_keys=True)
        f.create_dataset("video_ids", data=np.array(video_ids, dtype=object),
                         dtype=h5py.string_dtype("utf-8"))
        fid = np.arange(len(video_ids), dtype=np.int64) if faiss_ids is None else np.asarray(faiss_ids, np.int64)
        f.create_dataset("faiss_ids", data=fid)
    return d


def read_index(directory: str | os.PathLike) -> VideoIndex:
    """Load an index directory, checking that index and metadata agree."""
    from pipeline.artifacts import ArtifactError, open_checked

    d = Path(directory)
    faiss = load_faiss()
    try:
        meta = open_checked(d / META_FILE, INDEX_SCHEMA, INDEX_VERSION)
    except ArtifactError as exc:
        raise IndexFileError(str(exc)) from None
    with meta:
        ids = [s.decode() if isinstance(s, bytes) else s for s in meta["video_ids"][()]]
        fids = meta["faiss_ids"][()] if "faiss_ids" in meta else None
        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in meta.attrs.items()}
    if not (d / INDEX_FILE).is_file():
        raise IndexFileError(f"{d / INDEX_FILE}: index file not found")
    try:
        index = faiss.read_index(str(d / INDEX_FILE))
    except RuntimeError as exc:
        raise IndexFileError(f"{d / INDEX_FILE}: unreadable FAISS index ({str(exc).splitlines()[0]})") from None
    if index.ntotal != len(ids):
        raise IndexFileError(f"{d}: index holds {index.ntotal} vectors but the metadata lists {len(ids)} ids")
    if fids is not None and len(fids) != len(ids):
        raise IndexFileError(f"{d / META_FILE}: {len(fids)} FAISS ids for {len(ids)} videos")
    return VideoIndex(index, ids, attrs, fids)
