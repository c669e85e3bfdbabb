"""Temporal descriptors of a feature shard, stored in HDF5, and a store to read them by id.

File ``<work>/descriptors/<model>-<hash>/<shard>.h5`` (schema ``videoalign/descriptors``):
``video_ids`` (n,), ``descriptors`` (n, ...) (TMK ``(P, 2m, d)``, CTE ``(d, 2m)``, TCA
``(padding_size, d)``: TCA_f, zero rows for padding) in the attribute ``precision``
(``float32`` when absent, ``float16``, or ``int8`` with ``scales`` (n, ...) float32, one per row:
``index/quantise.py``), ``mean_frames`` (n, d) float32 (the L2-normalised mean-frame component
used by the FAISS index; TCA: TCA_c), ``n_frames`` (n,), ``duration_s`` (n,); attribute
``model`` is the JSON model specification.

The descriptors are stored contiguously, so a reader memory-maps them and reads the rows of
the candidates it re-ranks, not the shard (:class:`DescriptorStore`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from extractors.runtime.progress import progress
from extractors.runtime.timebase import FPS
from extractors.temporal.cte import CTE
from extractors.temporal.tca import TCA
from extractors.temporal.tmk import TMK
from index.quantise import decode, encode
from pipeline.core.atomic import clean_stale_temporaries
from pipeline.core.hdf5 import ArtifactError, atomic_h5, open_checked
from pipeline.store.features import VideoFeatures, read_pack, read_video_features
from pipeline.store.model_types import TemporalModel, build_model

log = logging.getLogger(__name__)

DESCRIPTORS_SCHEMA = "videoalign/descriptors"
DESCRIPTORS_VERSION = 1
def video_times(vf: VideoFeatures) -> np.ndarray:
    """Kernel timestamps ``(N,) float64`` in 1/15 s from the stored seconds."""
    return np.asarray(vf.timestamps_s, dtype=np.float64) * FPS


def describe_video(model: TemporalModel, features: np.ndarray, times: np.ndarray) -> torch.Tensor:
    """One descriptor (no batch dimension).  CTE videos longer than its window are truncated."""
    x = np.asarray(features, dtype=np.float32)
    t = np.asarray(times, dtype=np.float64)
    if isinstance(model, CTE):
        keep = t <= model.length / 2
        if not keep.all():
            log.warning("CTE window is %.0f s: truncating a %.0f s video", model.length / 2 / FPS,
                        t[-1] / FPS)
            x, t = x[keep], t[keep]
    return model.descriptor(x, t)


def mean_frame_component(model: TemporalModel, fv: torch.Tensor) -> torch.Tensor:
    """``(B, d)`` L2-normalised mean frame of each descriptor (TMK: k=0 cosine row; CTE: DC bin; TCA: the
    TCA_c video vector)."""
    if isinstance(model, TMK):
        return model.mean_frame(fv)
    if isinstance(model, TCA):
        return model.video_vector(fv if fv.dim() == 3 else fv[None])
    dc = fv[..., 0] if fv.dim() == 3 else fv[None, :, 0]
    return dc / dc.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@dataclass(frozen=True)
class DescribedVideos:
    """The descriptors of the videos of one shard file: ``descriptors (n, ...) float32``,
    ``mean_frames (n, d) float32``, ``n_frames (n,)``, ``duration_s (n,)``."""

    video_ids: list[str]
    descriptors: np.ndarray
    mean_frames: np.ndarray
    n_frames: np.ndarray
    duration_s: np.ndarray


def compute_shard_descriptors(feature_shard: str | os.PathLike, out_path: str | os.PathLike,
                              model_name: str, spec: dict, max_length_s: float | None,
                              precision: str = "float32", show_progress: bool = False) -> Path:
    """Describe every video listed in a feature shard's pack; write one HDF5 atomically, the descriptors
    in ``precision`` (:data:`index.quantise.PRECISIONS`)."""
    model = build_model(spec, max_length_s)
    clean_stale_temporaries(Path(out_path).parent)
    pack = read_pack(feature_shard)
    fvs, means, counts, durations = [], [], [], []
    for name in progress(pack.files, unit="video", desc=f"describe {model_name} {Path(feature_shard).name}",
                         wanted=show_progress):
        vf = read_video_features(Path(feature_shard) / name)
        fv = describe_video(model, vf.features, video_times(vf))
        fvs.append(fv.numpy())
        means.append(mean_frame_component(model, fv[None] if fv.dim() == 3 else fv).numpy()[0])
        counts.append(len(vf.features))
        durations.append(float(vf.timestamps_s[-1]) + 1 / FPS if len(vf.timestamps_s) else 0.0)
    shape = fvs[0].shape if fvs else (0,)
    dim = means[0].shape[0] if means else 0
    described = DescribedVideos(pack.video_ids, np.stack(fvs) if fvs else np.zeros((0, *shape), np.float32),
                                np.stack(means) if means else np.zeros((0, dim), np.float32),
                                np.asarray(counts, dtype=np.int64), np.asarray(durations, dtype=np.float64))
    return write_descriptors(out_path, described, model_name, spec, precision,
                             str(Path(feature_shard).resolve()))


def write_descriptors(out_path: str | os.PathLike, videos: DescribedVideos, model_name: str, spec: dict,
                      precision: str = "float32", source: str = "") -> Path:
    """One descriptor file (schema ``videoalign/descriptors``), atomically."""
    str_t = h5py.string_dtype("utf-8")
    with atomic_h5(out_path) as f:
        f.attrs["schema"] = DESCRIPTORS_SCHEMA
        f.attrs["schema_version"] = DESCRIPTORS_VERSION
        f.attrs["model_name"] = model_name
        f.attrs["model"] = json.dumps(spec, sort_keys=True)
        f.attrs["feature_shard"] = source
        f.create_dataset("video_ids", data=np.array(videos.video_ids, dtype=object), dtype=str_t)
        enc = encode(videos.descriptors, precision)
        codes, scales = enc.codes, enc.scales
        if precision == "int8" and codes.ndim >= 3:  # rows zero in every video (TMK's sine of frequency 0)
            n, shape = codes.shape[0], codes.shape[1:]
            flat = codes.reshape(n, -1, shape[-1])
            kept = np.flatnonzero(np.any(flat != 0, axis=(0, 2))) if n else np.arange(flat.shape[1])
            codes, scales = flat[:, kept], scales.reshape(n, -1)[:, kept]
            f.attrs["row_shape"] = np.asarray(shape[:-1], dtype=np.int64)
            f.create_dataset("kept_rows", data=kept.astype(np.int64))
        f.create_dataset("descriptors", data=codes)
        if precision != "float32":
            f.attrs["precision"] = precision
        if scales is not None:
            f.create_dataset("scales", data=scales)
        f.create_dataset("mean_frames", data=np.asarray(videos.mean_frames, dtype=np.float32))
        f.create_dataset("n_frames", data=np.asarray(videos.n_frames, dtype=np.int64))
        d = f.create_dataset("duration_s", data=np.asarray(videos.duration_s, dtype=np.float64))
        d.attrs["units"] = "seconds"
    return Path(out_path)


@dataclass
class DescriptorStore:
    """Random access to descriptors by video id across shard files.

    Each file's descriptors are memory-mapped (they are stored contiguously), so reading the
    candidates of one query touches their rows only, whatever the shard size.
    """

    files: list[Path]

    def __post_init__(self) -> None:
        self._where: dict[str, tuple[int, int]] = {}
        self._maps: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        self._rows: dict[int, tuple[np.ndarray, tuple[int, ...]]] = {}
        self.n_frames: dict[str, int] = {}
        self.model_spec: dict | None = None
        for fi, p in enumerate(self.files):
            with open_checked(p, DESCRIPTORS_SCHEMA, DESCRIPTORS_VERSION) as f:
                ids = [s.decode() if isinstance(s, bytes) else s for s in f["video_ids"][()]]
                counts = f["n_frames"][()]
                spec = json.loads(f.attrs["model"])
                if self.model_spec is None:
                    self.model_spec = spec
                elif spec != self.model_spec:
                    raise ArtifactError(f"{p}: model {spec} differs from {self.model_spec}")
            for row, (vid, n) in enumerate(zip(ids, counts, strict=True)):
                self._where[vid] = (fi, row)
                self.n_frames[vid] = int(n)

    @classmethod
    def from_manifest(cls, videos: dict[str, dict], model: str) -> DescriptorStore:
        """Exactly the published videos, at the (file, row) the manifest records for ``model``."""
        files = sorted({e["descriptors"][model][0] for e in videos.values()})
        store = cls([Path(f) for f in files])
        pos = {f: i for i, f in enumerate(files)}
        store._where = {vid: (pos[e["descriptors"][model][0]], int(e["descriptors"][model][1]))
                        for vid, e in videos.items()}
        store.n_frames = {vid: int(e["n_frames"]) for vid, e in videos.items()}
        return store

    @property
    def ids(self) -> list[str]:
        return list(self._where)

    def __contains__(self, vid: str) -> bool:
        return vid in self._where

    def _mapped(self, fi: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``(codes, scales)`` of file ``fi``: memory maps of its contiguous datasets (read into memory
        when HDF5 stored them otherwise, e.g. chunked)."""
        if fi not in self._maps:
            with h5py.File(self.files[fi], "r") as f:
                self._maps[fi] = (_memory_map(self.files[fi], f["descriptors"]),
                                  _memory_map(self.files[fi], f["scales"]) if "scales" in f else None)
                if "kept_rows" in f:  # int8 files leave out rows that are zero in every video
                    self._rows[fi] = (f["kept_rows"][()], tuple(int(v) for v in f.attrs["row_shape"]))
        return self._maps[fi]

    def _decoded(self, fi: int, rows: np.ndarray) -> np.ndarray:
        """``(len(rows), ...) float32`` descriptors of rows ``rows`` of file ``fi``."""
        codes, scales = self._mapped(fi)
        block = decode(codes[rows], None if scales is None else scales[rows])
        if fi not in self._rows:
            return block
        kept, row_shape = self._rows[fi]
        full = np.zeros((len(rows), int(np.prod(row_shape)), block.shape[-1]), np.float32)
        full[:, kept] = block
        return full.reshape(len(rows), *row_shape, block.shape[-1])

    def get(self, ids: Sequence[str]) -> torch.Tensor:
        """Descriptors of ``ids`` stacked ``(len(ids), ...) float32``."""
        missing = [vid for vid in ids if vid not in self._where]
        if missing:
            raise KeyError(f"no descriptor for video {missing[0]!r}")
        if not ids:
            return torch.zeros(0)
        where = np.array([self._where[vid] for vid in ids], dtype=np.int64).reshape(-1, 2)
        out = None
        for fi in np.unique(where[:, 0]):
            pick = np.flatnonzero(where[:, 0] == fi)
            block = self._decoded(int(fi), where[pick, 1])
            if out is None:
                out = np.empty((len(ids), *block.shape[1:]), np.float32)
            out[pick] = block
        return torch.from_numpy(out)

    def mean_frames(self) -> tuple[list[str], np.ndarray]:
        """Ids and ``(n, d)`` mean-frame vectors of the videos this store serves."""
        mats = {}
        for fi, p in enumerate(self.files):
            with h5py.File(p, "r") as f:
                mats[fi] = f["mean_frames"][()]
        ids = list(self._where)
        if not ids:
            return [], np.zeros((0, 0), np.float32)
        return ids, np.stack([mats[fi][row] for fi, row in (self._where[v] for v in ids)])


def _memory_map(path: Path, ds: h5py.Dataset) -> np.ndarray:
    """A read-only memory map of a contiguous HDF5 dataset (its values, for other layouts)."""
    offset = ds.id.get_offset()
    if offset is None or ds.chunks is not None or ds.compression is not None or ds.size == 0:
        return ds[()]
    return np.memmap(path, dtype=ds.dtype, mode="r", offset=offset, shape=ds.shape)
