"""Index directories: ``index.faiss`` + ``meta.h5`` (schema ``videoalign/index``).

``meta.h5`` holds ``video_ids`` in FAISS id order, ``faiss_ids``, the index type,
the model and the configuration the index was built with (so ``query`` can use
the same settings).  Both files are written atomically, the metadata last; a
reader checks that they agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from extractors.runtime import failpoints
from extractors.runtime.errors import VideoAlignError
from index.faiss_backend import faiss_build, load_faiss
from index.faiss_index import VideoIndex, stored_ids, stored_vectors
from pipeline.core.atomic import atomic_path, clean_stale_temporaries, file_sha256
from pipeline.core.hdf5 import ArtifactError, atomic_h5, open_checked

INDEX_SCHEMA = "videoalign/index"
INDEX_VERSION = 1
INDEX_FILE = "index.faiss"
META_FILE = "meta.h5"


class IndexFileError(VideoAlignError, ValueError):
    """An index directory that is missing or inconsistent (message names the file)."""


def write_index(directory: str | Path, index, video_ids: list[str], attrs: dict,
                faiss_ids: np.ndarray | None = None) -> Path:
    """Write ``index.faiss`` then ``meta.h5`` into ``directory`` (each atomically)."""
    faiss = load_faiss()
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(d)
    with atomic_path(d / INDEX_FILE) as tmp:
        faiss.write_index(index, str(tmp))
        digest = file_sha256(tmp)
    failpoints.hit("index.between_files")
    with atomic_h5(d / META_FILE) as f:
        f.attrs["schema"] = INDEX_SCHEMA
        f.attrs["schema_version"] = INDEX_VERSION
        f.attrs["index_sha256"] = digest
        f.attrs["faiss_build"] = faiss_build()
        f.attrs["ntotal"] = int(index.ntotal)
        for k, v in attrs.items():
            f.attrs[k] = v if isinstance(v, str | int | float) else json.dumps(v, sort_keys=True)
        f.create_dataset("video_ids", data=np.array(video_ids, dtype=object),
                         dtype=h5py.string_dtype("utf-8"))
        fid = np.arange(len(video_ids), dtype=np.int64) if faiss_ids is None else np.asarray(faiss_ids, np.int64)
        f.create_dataset("faiss_ids", data=fid)
    return d


def read_index(directory: str | Path) -> VideoIndex:
    """Load an index directory, checking that index and metadata agree."""
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
    recorded = attrs.get("index_sha256")
    if recorded and file_sha256(d / INDEX_FILE) != recorded:
        raise IndexFileError(f"{d / INDEX_FILE}: content does not match the checksum recorded in {META_FILE} "
                             f"(damaged; rebuild it or roll back)")
    try:
        index = faiss.read_index(str(d / INDEX_FILE))
    except RuntimeError as exc:
        raise IndexFileError(f"{d / INDEX_FILE}: unreadable FAISS index ({str(exc).splitlines()[0]})") from None
    if index.ntotal != len(ids):
        raise IndexFileError(f"{d}: index holds {index.ntotal} vectors but the metadata lists {len(ids)} ids")
    if fids is not None and len(fids) != len(ids):
        raise IndexFileError(f"{d / META_FILE}: {len(fids)} FAISS ids for {len(ids)} videos")
    held = stored_ids(index)
    if held is not None and fids is not None and not np.array_equal(np.sort(held), np.sort(fids)):
        raise IndexFileError(f"{d / INDEX_FILE}: its id map does not match the {len(fids)} ids in {META_FILE}")
    vectors = stored_vectors(index)
    if vectors is not None and not np.isfinite(vectors).all():
        bad = int((~np.isfinite(vectors).all(axis=1)).sum())
        raise IndexFileError(f"{d / INDEX_FILE}: {bad} vector(s) are not finite (damaged)")
    return VideoIndex(index, ids, attrs, fids)

