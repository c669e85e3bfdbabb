"""Frame-feature files: one HDF5 file per video and a shard's pack (schemas ``videoalign/features``
and ``videoalign/features-pack``).

Layout of a feature shard directory::

    <shard>/<video file>.h5   one file per video (written as soon as it is done)
    <shard>/_pack.h5          written last: ids, frame counts, mean-frame matrix

See ``docs/artifacts.md``.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from extractors.runtime import failpoints
from pipeline.core.hdf5 import ArtifactError, atomic_h5, open_checked

FEATURES_SCHEMA = "videoalign/features"


PACK_SCHEMA = "videoalign/features-pack"


FEATURES_VERSION = 1


PACK_NAME = "_pack.h5"


def video_filename(video_id: str) -> str:
    """A safe, unique file name for a video id (readable stem + short hash)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", video_id)[-80:].strip("._") or "video"
    return f"{stem}-{hashlib.sha1(video_id.encode('utf-8')).hexdigest()[:8]}.h5"


@dataclass
class VideoFeatures:
    """One video's frame features.

    Attributes:
        features: ``(N, D)`` frame descriptors (float16 or float32, unit L2 norm).
        timestamps_s: ``(N,) float64`` seconds since the first frame.
        attrs: provenance (see ``docs/artifacts.md``).
    """

    video_id: str
    features: np.ndarray
    timestamps_s: np.ndarray
    attrs: dict = field(default_factory=dict)

    @property
    def mean_frame(self) -> np.ndarray:
        m = self.features.astype(np.float32).mean(axis=0)
        return m / max(float(np.linalg.norm(m)), 1e-12)


def write_video_features(path: str | os.PathLike, vf: VideoFeatures, dtype: str = "float16") -> Path:
    """Write one video's features atomically."""
    if dtype not in ("float16", "float32"):
        raise ValueError(f"feature dtype must be float16 or float32, got {dtype!r}")
    if vf.features.ndim != 2 or len(vf.features) != len(vf.timestamps_s):
        raise ValueError(f"{vf.video_id}: features {vf.features.shape} and timestamps "
                         f"{vf.timestamps_s.shape} do not match")
    with atomic_h5(path) as f:
        f.attrs["schema"] = FEATURES_SCHEMA
        f.attrs["schema_version"] = FEATURES_VERSION
        f.attrs["video_id"] = vf.video_id
        for k, v in vf.attrs.items():
            f.attrs[k] = v
        f.create_dataset("features", data=vf.features.astype(dtype))
        failpoints.hit("features.mid_write")
        ts = f.create_dataset("timestamps", data=np.asarray(vf.timestamps_s, dtype=np.float64))
        ts.attrs["units"] = "seconds since the first decoded frame"
    return Path(path)


def read_video_features(path: str | os.PathLike) -> VideoFeatures:
    """Read a per-video feature file (refuses other schemas/versions)."""
    with open_checked(path, FEATURES_SCHEMA, FEATURES_VERSION) as f:
        try:
            feats = f["features"][()]
            ts = f["timestamps"][()]
        except KeyError as exc:
            raise ArtifactError(f"{path}: missing dataset {exc}") from None
        attrs = {k: _plain(v) for k, v in f.attrs.items()}
    if feats.ndim != 2 or ts.shape != (feats.shape[0],):
        raise ArtifactError(f"{path}: features {feats.shape} and timestamps {ts.shape} do not match")
    return VideoFeatures(str(attrs.get("video_id", "")), feats, ts, attrs)


def _plain(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


@dataclass
class ShardPack:
    """Summary of a shard: ids, file names, frame counts and mean frames ``(n, D) float32``."""

    video_ids: list[str]
    files: list[str]
    frame_counts: np.ndarray
    mean_frames: np.ndarray
    attrs: dict = field(default_factory=dict)


def write_pack(shard_dir: str | os.PathLike, pack: ShardPack) -> Path:
    """Write ``_pack.h5`` atomically (the last file of a shard)."""
    path = Path(shard_dir) / PACK_NAME
    str_t = h5py.string_dtype("utf-8")
    with atomic_h5(path) as f:
        f.attrs["schema"] = PACK_SCHEMA
        f.attrs["schema_version"] = FEATURES_VERSION
        for k, v in pack.attrs.items():
            f.attrs[k] = v
        f.attrs["n_videos"] = len(pack.video_ids)
        f.create_dataset("video_ids", data=np.array(pack.video_ids, dtype=object), dtype=str_t)
        f.create_dataset("files", data=np.array(pack.files, dtype=object), dtype=str_t)
        f.create_dataset("frame_counts", data=np.asarray(pack.frame_counts, dtype=np.int64))
        mf = np.asarray(pack.mean_frames, dtype=np.float32)
        if mf.ndim != 2 or mf.shape[0] != len(pack.video_ids):
            raise ValueError(f"mean frames {mf.shape} do not match {len(pack.video_ids)} videos")
        f.create_dataset("mean_frames", data=mf)
    return path


def read_pack(shard_dir: str | os.PathLike) -> ShardPack:
    path = Path(shard_dir)
    if path.is_dir():
        path = path / PACK_NAME
    with open_checked(path, PACK_SCHEMA, FEATURES_VERSION) as f:
        return ShardPack([s.decode() if isinstance(s, bytes) else s for s in f["video_ids"][()]],
                         [s.decode() if isinstance(s, bytes) else s for s in f["files"][()]],
                         f["frame_counts"][()], f["mean_frames"][()],
                         {k: _plain(v) for k, v in f.attrs.items()})
