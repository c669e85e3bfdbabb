"""Index directories: ``index.faiss`` + ``meta.h5`` (schema ``videoalign/index``), and
``index.ivfdata`` for an IVF index whose inverted lists live on disk.

``meta.h5`` holds ``video_ids`` in FAISS id order, ``faiss_ids``, the factory string
(``index_type``), the model and the configuration the index was built with (so ``query``
can use the same settings), and the sha256 of the other files.  Every file is written
atomically, the metadata last; a reader checks that they agree.  On-disk inverted lists
(``faiss.OnDiskInvertedLists``) are memory-mapped by readers, so a search process holds
only the pages it visits.

A *layered* index (schema version 2, written by a refresh: :func:`write_layered_index`)
hard-links the base files of the version it refreshes (never rewriting them) and adds
``delta.faiss``, an exact index of the videos added since the base was built
(``delta_video_ids`` / ``delta_faiss_ids`` in ``meta.h5``, checksum ``delta_sha256``), and
``removed_faiss_ids``, the base videos gone or changed since.  Version 1 files (no layers)
are still written for plain indexes and read.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
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
LAYERED_VERSION = 2
INDEX_FILE = "index.faiss"
META_FILE = "meta.h5"
IVFDATA_FILE = "index.ivfdata"
DELTA_FILE = "delta.faiss"
BASE_ATTRS = ("index_sha256", "ivfdata_sha256", "faiss_build", "ntotal", "index_type", "trained_on")


class IndexFileError(VideoAlignError, ValueError):
    """An index directory that is missing or inconsistent (message names the file)."""


@dataclass(frozen=True)
class IndexMeta:
    """What ``meta.h5`` says, without loading any FAISS file: the base's ids, its attributes, and a
    layered index's delta ids and removed base ids (empty for a plain index)."""

    directory: Path
    video_ids: list[str]
    faiss_ids: np.ndarray
    attrs: dict
    delta_ids: list[str] = field(default_factory=list)
    delta_faiss_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    removed: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


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
    base = {"index_sha256": file_sha256(d / INDEX_FILE), "faiss_build": faiss_build(), "ntotal": int(index.ntotal)}
    if lists_digest is not None:
        base["ivfdata_sha256"] = lists_digest
    (d / DELTA_FILE).unlink(missing_ok=True)
    fid = np.arange(len(video_ids), dtype=np.int64) if faiss_ids is None else np.asarray(faiss_ids, np.int64)
    _write_meta(d, INDEX_VERSION, {**base, **attrs}, video_ids, fid)
    return d


def _write_meta(d: Path, version: int, attrs: dict, video_ids: list[str], faiss_ids: np.ndarray,
                layers: dict[str, np.ndarray] | None = None) -> None:
    with atomic_h5(d / META_FILE) as f:
        f.attrs["schema"] = INDEX_SCHEMA
        f.attrs["schema_version"] = version
        for k, v in attrs.items():
            f.attrs[k] = v if isinstance(v, str | int | float) else json.dumps(v, sort_keys=True)
        f.create_dataset("video_ids", data=np.array(video_ids, dtype=object), dtype=h5py.string_dtype("utf-8"))
        f.create_dataset("faiss_ids", data=np.asarray(faiss_ids, np.int64))
        for name, a in (layers or {}).items():
            if a.dtype == object:
                f.create_dataset(name, data=a, dtype=h5py.string_dtype("utf-8"))
            else:
                f.create_dataset(name, data=a)


def _link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` as a hard link to ``src`` (the same bytes, nothing written), a copy where the file
    system cannot link."""
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)


def write_layered_index(directory: str | Path, base: IndexMeta, delta, delta_ids: list[str],
                        delta_faiss_ids: np.ndarray, removed: np.ndarray, attrs: dict) -> Path:
    """A layered index in ``directory``: ``base``'s FAISS files hard-linked (their checksums carried
    over, not recomputed), ``delta`` (an exact index of ``delta_ids`` under ``delta_faiss_ids``, or
    ``None`` when empty) in ``delta.faiss``, ``removed`` the base's FAISS ids no longer live; the
    metadata, written last, commits them."""
    faiss = load_faiss()
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(d)
    names = [INDEX_FILE] + ([IVFDATA_FILE] if base.attrs.get("ivfdata_sha256") else [])
    for name in names:
        _link_or_copy(base.directory / name, d / name)
    base_attrs = {k: base.attrs[k] for k in BASE_ATTRS if k in base.attrs}
    (d / DELTA_FILE).unlink(missing_ok=True)
    if delta is not None and len(delta_ids):
        with atomic_path(d / DELTA_FILE) as tmp:
            faiss.write_index(delta, str(tmp))
        base_attrs["delta_sha256"] = file_sha256(d / DELTA_FILE)
    failpoints.hit("index.between_files")
    _write_meta(d, LAYERED_VERSION, {**attrs, **base_attrs}, base.video_ids, base.faiss_ids,
                {"delta_video_ids": np.array(delta_ids, dtype=object),
                 "delta_faiss_ids": np.asarray(delta_faiss_ids, np.int64),
                 "removed_faiss_ids": np.unique(np.asarray(removed, np.int64))})
    return d


def _strings(a) -> list[str]:
    return [s.decode() if isinstance(s, bytes) else s for s in a[()]]


def read_meta(directory: str | Path) -> IndexMeta:
    """The metadata of an index directory (schema-checked; no FAISS file is read)."""
    d = Path(directory)
    try:
        meta = open_checked(d / META_FILE, INDEX_SCHEMA, (INDEX_VERSION, LAYERED_VERSION))
    except ArtifactError as exc:
        raise IndexFileError(str(exc)) from None
    with meta:
        ids = _strings(meta["video_ids"])
        fids = meta["faiss_ids"][()] if "faiss_ids" in meta else np.arange(len(ids), dtype=np.int64)
        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in meta.attrs.items()}
        layers = {}
        if "delta_video_ids" in meta:
            layers = {"delta_ids": _strings(meta["delta_video_ids"]),
                      "delta_faiss_ids": meta["delta_faiss_ids"][()].astype(np.int64),
                      "removed": meta["removed_faiss_ids"][()].astype(np.int64)}
    if len(fids) != len(ids):
        raise IndexFileError(f"{d / META_FILE}: {len(fids)} FAISS ids for {len(ids)} videos")
    return IndexMeta(d, ids, np.asarray(fids, np.int64), attrs, **layers)


def _checked(path: Path, digest: str | None, what: str) -> None:
    if not path.is_file():
        raise IndexFileError(f"{path}: {what} not found")
    if digest and file_sha256(path) != digest:
        raise IndexFileError(f"{path}: content does not match the checksum recorded in {META_FILE} "
                             f"(damaged; rebuild it or roll back)")


def read_delta(meta: IndexMeta) -> VideoIndex | None:
    """The delta layer of a layered index (checked against its checksum and ids), ``None`` if it has none."""
    if not meta.delta_ids:
        return None
    faiss = load_faiss()
    path = meta.directory / DELTA_FILE
    _checked(path, str(meta.attrs.get("delta_sha256", "")), "delta index")
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        raise IndexFileError(f"{path}: unreadable FAISS index ({str(exc).splitlines()[0]})") from None
    held = stored_ids(index)
    if held is None or not np.array_equal(np.sort(held), np.sort(meta.delta_faiss_ids)) \
            or len(meta.delta_ids) != len(meta.delta_faiss_ids):
        raise IndexFileError(f"{path}: its ids do not match the {len(meta.delta_ids)} delta ids in {META_FILE}")
    return VideoIndex(index, meta.delta_ids, {}, meta.delta_faiss_ids)


def read_index(directory: str | Path) -> VideoIndex:
    """Load an index directory (with its delta and removed ids when layered), checking that the
    FAISS files and the metadata agree."""
    meta = read_meta(directory)
    return open_index(meta, read_delta(meta))


def open_index(meta: IndexMeta, delta: VideoIndex | None) -> VideoIndex:
    """The index of already-read metadata and delta layer (:func:`read_meta`, :func:`read_delta`):
    its base FAISS file loaded and checked against ``meta``."""
    d, ids, fids, attrs = meta.directory, meta.video_ids, meta.faiss_ids, meta.attrs
    faiss = load_faiss()
    _checked(d / INDEX_FILE, attrs.get("index_sha256"), "index file")
    lists_digest = attrs.get("ivfdata_sha256")
    if lists_digest:
        _checked(d / IVFDATA_FILE, lists_digest, "on-disk inverted lists")
    try:
        index = faiss.read_index(str(d / INDEX_FILE), faiss.IO_FLAG_ONDISK_SAME_DIR if lists_digest else 0)
    except RuntimeError as exc:
        raise IndexFileError(f"{d / INDEX_FILE}: unreadable FAISS index ({str(exc).splitlines()[0]})") from None
    if index.ntotal != len(ids):
        raise IndexFileError(f"{d}: index holds {index.ntotal} vectors but the metadata lists {len(ids)} ids")
    held = stored_ids(index)
    if held is not None and not np.array_equal(np.sort(held), np.sort(fids)):
        raise IndexFileError(f"{d / INDEX_FILE}: its id map does not match the {len(fids)} ids in {META_FILE}")
    if not np.isin(meta.removed, fids).all():
        raise IndexFileError(f"{d / META_FILE}: removed ids that the base index does not hold")
    vectors = stored_vectors(index)
    if vectors is not None and not np.isfinite(vectors).all():
        bad = int((~np.isfinite(vectors).all(axis=1)).sum())
        raise IndexFileError(f"{d / INDEX_FILE}: {bad} vector(s) are not finite (damaged)")
    return VideoIndex(index, ids, attrs, fids, delta=delta, removed=meta.removed)
