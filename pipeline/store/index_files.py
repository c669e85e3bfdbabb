"""Index directories: ``index.faiss`` + ``meta.h5`` (schema ``videoalign/index``), and
``index.ivfdata`` for an IVF index whose inverted lists live on disk.

``meta.h5`` holds ``video_ids`` in FAISS id order, ``faiss_ids``, the factory string
(``index_type``), the model and the configuration the index was built with (so ``query``
can use the same settings), and the sha256 of the other files.  Every file is written
atomically, the metadata last; a reader checks that they agree.  On-disk inverted lists
(``faiss.OnDiskInvertedLists``) are memory-mapped by readers, so a search process holds
only the pages it visits.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import h5py
import numpy as np

from extractors.runtime import failpoints
from extractors.runtime.errors import VideoAlignError
from index.faiss_backend import faiss_build, load_faiss
from index.faiss_index import VideoIndex, ivf_of, stored_ids, stored_vectors
from pipeline.core.atomic import atomic_path, clean_stale_temporaries, file_sha256, fsync_dir
from pipeline.core.hdf5 import ArtifactError, atomic_h5, open_checked

INDEX_SCHEMA = "videoalign/index"
INDEX_VERSION = 1
INDEX_FILE = "index.faiss"
META_FILE = "meta.h5"
IVFDATA_FILE = "index.ivfdata"


class IndexFileError(VideoAlignError, ValueError):
    """An index directory that is missing or inconsistent (message names the file)."""


def _write_on_disk(d: Path, index) -> str:
    """Move the inverted lists of IVF ``index`` into ``d/index.ivfdata`` (the index then reads them
    from there) and write ``d/index.faiss``; returns the sha256 of the lists file."""
    faiss = load_faiss()
    ivf = ivf_of(index)
    work = d / f".ondisk.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"  # cleaned as stale if this process dies
    work.mkdir()
    try:
        lists = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(work / IVFDATA_FILE))
        vector = faiss.InvertedListsPtrVector()
        vector.push_back(ivf.invlists)
        lists.merge_from_multiple(vector.data(), vector.size(), False)
        ivf.replace_invlists(lists, True)
        lists.this.disown()
        faiss.write_index(index, str(work / INDEX_FILE))
        for name in (IVFDATA_FILE, INDEX_FILE):
            with open(work / name, "rb") as fh:
                os.fsync(fh.fileno())
        digest = file_sha256(work / IVFDATA_FILE)
        os.replace(work / IVFDATA_FILE, d / IVFDATA_FILE)
        failpoints.hit("index.between_files")
        os.replace(work / INDEX_FILE, d / INDEX_FILE)
        fsync_dir(d)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return digest


def write_index(directory: str | Path, index, video_ids: list[str], attrs: dict,
                faiss_ids: np.ndarray | None = None, on_disk: bool = False) -> Path:
    """Write ``index.faiss`` (with ``on_disk``, an IVF index's lists in ``index.ivfdata``) then
    ``meta.h5`` into ``directory`` (each atomically; the metadata, written last, commits them)."""
    faiss = load_faiss()
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(d)
    lists_digest = None
    if on_disk and ivf_of(index) is not None:
        lists_digest = _write_on_disk(d, index)
    else:
        (d / IVFDATA_FILE).unlink(missing_ok=True)
    if lists_digest is None:
        with atomic_path(d / INDEX_FILE) as tmp:
            faiss.write_index(index, str(tmp))
        failpoints.hit("index.between_files")
    digest = file_sha256(d / INDEX_FILE)
    with atomic_h5(d / META_FILE) as f:
        f.attrs["schema"] = INDEX_SCHEMA
        f.attrs["schema_version"] = INDEX_VERSION
        f.attrs["index_sha256"] = digest
        if lists_digest is not None:
            f.attrs["ivfdata_sha256"] = lists_digest
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
    lists_digest = attrs.get("ivfdata_sha256")
    if lists_digest:
        if not (d / IVFDATA_FILE).is_file():
            raise IndexFileError(f"{d / IVFDATA_FILE}: on-disk inverted lists not found")
        if file_sha256(d / IVFDATA_FILE) != lists_digest:
            raise IndexFileError(f"{d / IVFDATA_FILE}: content does not match the checksum recorded in "
                                 f"{META_FILE} (damaged; rebuild it or roll back)")
    try:
        index = faiss.read_index(str(d / INDEX_FILE), faiss.IO_FLAG_ONDISK_SAME_DIR if lists_digest else 0)
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

