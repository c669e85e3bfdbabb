"""FAISS inner-product indexes over L2-normalised mean-frame vectors, made from an
``index_factory`` string (no file I/O here: ``pipeline.store.index_files`` reads and
writes index directories).

Every index keeps explicit ids (IVF indexes natively, the others inside ``IDMap2``), so
a refresh can remove and add videos by id.  ``auto`` picks a factory string from the
corpus size (:func:`auto_factory`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from extractors.runtime.errors import VideoAlignError
from index.faiss_backend import gpu_count, load_faiss

log = logging.getLogger(__name__)

FLAT_BELOW = 50_000  # auto: exact search below this many videos
SQ8_FROM = 500_000  # auto: 8-bit scalar-quantised vectors (d bytes each) from this many videos
ADD_BLOCK = 65_536  # vectors added per call (bounds the temporary copies FAISS makes)


class IndexFactoryError(VideoAlignError, ValueError):
    """A factory string FAISS cannot build, or a corpus too small to train it."""


@dataclass(frozen=True)
class SearchParams:
    """Search-time knobs: ``nprobe`` (IVF lists visited), ``ef_search`` (HNSW beam width)."""

    nprobe: int = 32
    ef_search: int = 128


def ivf_lists(n: int) -> int:
    """Inverted lists for ``n`` vectors: about ``4 sqrt(n)``, at most one per 39 vectors (FAISS's
    minimum training points per centroid)."""
    return max(1, min(int(4 * math.sqrt(max(n, 1))), max(1, n // 39)))


def auto_factory(n: int) -> str:
    """The factory string ``auto`` stands for at ``n`` vectors.

    ``Flat`` below 50,000 (exact, ``4 d`` bytes a video); ``IVF<lists>,Flat`` below 500,000;
    ``IVF<lists>,SQ8`` above (``d`` bytes a video: 256 MB for a million 256-d vectors).
    """
    if n < FLAT_BELOW:
        return "Flat"
    return f"IVF{ivf_lists(n)},{'Flat' if n < SQ8_FROM else 'SQ8'}"


def resolve_factory(factory: str, n: int) -> str:
    """``factory`` itself, or what ``auto`` means for ``n`` vectors."""
    return auto_factory(n) if factory == "auto" else factory


def new_index(factory: str, d: int):
    """An empty inner-product index made by ``faiss.index_factory``, wrapped in ``IDMap2`` unless
    it keeps ids itself (IVF)."""
    faiss = load_faiss()
    try:
        index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise IndexFactoryError(f"index factory {factory!r} cannot index {d}-d vectors: "
                                f"{_faiss_message(exc)}") from None
    if ivf_of(index) is None and not hasattr(index, "id_map"):
        index = faiss.IndexIDMap2(index)
    return index


def ivf_of(index):
    """The IVF index inside ``index`` (through ``IDMap``/``PreTransform``), or ``None``."""
    faiss = load_faiss()
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def updatable(index) -> bool:
    """Whether vectors can be removed by id (IVF and flat-code indexes; not graph indexes such as HNSW)."""
    faiss = load_faiss()
    if ivf_of(index) is not None:
        return True
    inner = faiss.downcast_index(index.index) if hasattr(index, "id_map") else index
    return isinstance(inner, faiss.IndexFlatCodes)


def training_sample(x: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """At most ``size`` rows of ``x``, drawn without replacement (fixed seed, original order)."""
    if len(x) <= size:
        return x
    rows = np.sort(np.random.default_rng(seed).choice(len(x), size, replace=False))
    return x[rows]


def train(index, sample: np.ndarray, use_gpu: bool | None = None) -> None:
    """Train ``index`` on ``sample (m, d) float32``; with a GPU, the IVF coarse clustering runs there."""
    faiss = load_faiss()
    if index.is_trained:
        return
    ivf = ivf_of(index)
    if ivf is not None and len(sample) < ivf.nlist:
        raise IndexFactoryError(f"an index with {ivf.nlist} inverted lists needs at least {ivf.nlist} "
                                f"training vectors; the corpus has {len(sample)} (use a smaller IVF or Flat)")
    gpu = (gpu_count() > 0) if use_gpu is None else use_gpu
    if gpu and ivf is not None:
        ivf.clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatL2(ivf.d))
    try:
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
    except RuntimeError as exc:
        raise IndexFactoryError(f"training the index on {len(sample)} vectors failed: "
                                f"{_faiss_message(exc)}") from None
    if ivf is not None:
        ivf.clustering_index = None


def add(index, vectors: np.ndarray, ids: np.ndarray) -> None:
    """Add ``vectors (n, d)`` under ``ids (n,) int64``, in blocks of :data:`ADD_BLOCK`."""
    for s in range(0, len(ids), ADD_BLOCK):
        index.add_with_ids(np.ascontiguousarray(vectors[s:s + ADD_BLOCK], dtype=np.float32),
                           np.ascontiguousarray(ids[s:s + ADD_BLOCK], dtype=np.int64))


def build_faiss(vectors: np.ndarray, factory: str = "Flat", ids: np.ndarray | None = None,
                train_size: int = 100_000, use_gpu: bool | None = None):
    """An index holding ``vectors (n, d) float32`` under ``ids (n,) int64`` (``0..n-1`` when omitted),
    trained on a sample of at most ``train_size`` of them."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    index = new_index(factory, x.shape[1])
    train(index, training_sample(x, train_size), use_gpu)
    add(index, x, np.arange(len(x), dtype=np.int64) if ids is None else np.asarray(ids, np.int64))
    return index


def update_faiss(index, remove_ids: np.ndarray, add_vectors: np.ndarray, add_ids: np.ndarray):
    """Remove ``remove_ids`` and add ``add_vectors`` under ``add_ids`` (an :func:`updatable` index)."""
    if len(remove_ids):
        index.remove_ids(np.ascontiguousarray(remove_ids, dtype=np.int64))
    if len(add_ids):
        add(index, add_vectors, np.asarray(add_ids, np.int64))
    return index


def set_search_params(index, params: SearchParams) -> None:
    """Apply ``nprobe`` and ``efSearch`` wherever ``index`` has them (through any wrapper)."""
    faiss = load_faiss()
    space = faiss.ParameterSpace()
    for name, value in (("nprobe", params.nprobe), ("efSearch", params.ef_search),
                        ("quantizer_efSearch", params.ef_search)):
        try:
            space.set_index_parameter(index, name, value)
        except RuntimeError:
            continue  # this kind of index has no such parameter


@dataclass
class VideoIndex:
    """A loaded index with its id map (``faiss_ids[i]`` is the FAISS id of ``video_ids[i]``).

    A refreshed corpus's index can be *layered*: ``delta``, a small exact index of the videos added
    since ``index`` (the base) was built, and ``removed``, the FAISS ids of base videos that are gone
    or changed since.  :meth:`search` merges both and never returns a removed video; :meth:`live`
    lists what the index holds.  FAISS ids are unique across base and delta.
    """

    index: object
    video_ids: list[str]
    attrs: dict = field(default_factory=dict)
    faiss_ids: np.ndarray | None = None
    delta: VideoIndex | None = None
    removed: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        if self.faiss_ids is None:
            self.faiss_ids = np.arange(len(self.video_ids), dtype=np.int64)
        self.removed = np.unique(np.asarray(self.removed, np.int64))
        self._name = dict(zip(self.faiss_ids.tolist(), self.video_ids, strict=True))
        if self.delta is not None:
            self._name.update(self.delta._name)
        self._params: SearchParams | None = None

    @property
    def layered(self) -> bool:
        return self.delta is not None or len(self.removed) > 0

    def live(self) -> tuple[list[str], np.ndarray]:
        """``(video ids, FAISS ids)`` of every video the index returns: the base's less ``removed``,
        then the delta's."""
        fids = np.asarray(self.faiss_ids, np.int64)
        keep = ~np.isin(fids, self.removed)
        names = [v for v, k in zip(self.video_ids, keep.tolist(), strict=True) if k]
        if self.delta is None:
            return names, fids[keep]
        d_names, d_fids = self.delta.live()
        return names + d_names, np.r_[fids[keep], d_fids]

    def __len__(self) -> int:
        return len(self.video_ids) - len(self.removed) + (len(self.delta) if self.delta is not None else 0)

    def _raw(self, queries: np.ndarray, k: int, params: SearchParams | None) -> tuple[np.ndarray, np.ndarray]:
        """FAISS's own ``(scores (q, k), ids (q, k))`` of the base index (``-1`` where it has fewer)."""
        if params is not None and params != self._params:
            set_search_params(self.index, params)
            self._params = params
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def search(self, queries: np.ndarray, k: int, params: SearchParams | None = None,
               ) -> tuple[np.ndarray, list[list[str]]]:
        """Top-``k`` by inner product: ``(scores (q, k'), ids)`` with ``k' = min(k, live videos)``."""
        k = min(k, len(self))
        if k == 0:
            return np.zeros((len(queries), 0), np.float32), [[] for _ in queries]
        scores, idx = self._raw(queries, min(k + len(self.removed), len(self.video_ids)), params)
        if self.layered:
            gone = (idx < 0) | np.isin(idx, self.removed)
            scores, idx = np.where(gone, -np.inf, scores), np.where(gone, -1, idx)
            if self.delta is not None and len(self.delta):
                d_scores, d_idx = self.delta._raw(queries, min(k, len(self.delta)), params)
                scores, idx = np.hstack([scores, d_scores]), np.hstack([idx, d_idx])
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            scores, idx = np.take_along_axis(scores, order, 1), np.take_along_axis(idx, order, 1)
        names = [[self._name[int(i)] for i in row if i >= 0] for row in idx]
        return scores, names

    def folded(self):
        """The base FAISS index with ``removed`` taken out and the delta's vectors added: one plain
        index holding exactly :meth:`live` (the base must be :func:`updatable`; it is changed in place)."""
        if self.delta is not None and len(self.delta):
            vectors, ids = stored_vectors(self.delta.index), stored_ids(self.delta.index)
            assert vectors is not None and ids is not None  # a delta is an exact, id-mapped index
        else:
            vectors, ids = np.zeros((0, 1), np.float32), np.zeros(0, np.int64)
        return update_faiss(self.index, self.removed, vectors, ids)


def delta_index(vectors: np.ndarray, ids: np.ndarray):
    """The exact index of a layered index's delta: ``vectors (n, d)`` under FAISS ``ids (n,)``."""
    return build_faiss(vectors, "Flat", ids)


def stored_ids(index) -> np.ndarray | None:
    """The FAISS ids an ``IDMap`` index holds, in storage order (``None`` for indexes that keep them
    in inverted lists)."""
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


def _faiss_message(exc: RuntimeError) -> str:
    """The useful line of a FAISS C++ exception ("Error in ... at ...: <this>")."""
    text = str(exc).strip().splitlines()
    line = next((t for t in text if "Error" in t or "error" in t), text[0] if text else "")
    return line.split("': ", 1)[-1].strip() if "': " in line else line.strip()
