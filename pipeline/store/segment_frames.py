"""The segment-frame store: frame features at the rate the frame-level stage compares them.

File ``<work>/segment-frames-<K>/<feature shard>.h5`` (schema ``videoalign/segment-frames``), one per
feature shard, K = features + ``segments.fps`` + precision: every ``step``-th frame of each video's
15-fps stream (``step = round(15 / segments.fps)``), concatenated:

* ``video_ids (n,)``, ``start (n + 1,) int64``: video ``i`` owns rows ``start[i]:start[i + 1]``;
* ``features (rows, d)``: ``float16`` (the stored features' values, exact for float16 features) or
  ``int8`` (``round(127 x)``: unit rows, every value within 1/254);
* ``times_s (rows,) float64``, ``duration_s (n,) float64`` (the 15-fps stream's duration);
* attributes ``step``, ``precision``, ``feature_shard``.

At 2 fps and 256 dimensions a second of video is 1,040 bytes in float16 and 528 in int8, against
7,700 for the 15-fps features.  Readers memory-map ``features`` and read a video's rows only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from index.localise import SampledFrames, sample_frames
from pipeline.core.atomic import clean_stale_temporaries
from pipeline.core.hdf5 import ArtifactError, atomic_h5, open_checked
from pipeline.store.features import read_pack, read_video_features

SEGMENT_FRAMES_SCHEMA = "videoalign/segment-frames"
SEGMENT_FRAMES_VERSION = 1
SEGMENT_PRECISIONS = ("float16", "int8")


def write_segment_frames(feature_shard: str | os.PathLike, out_path: str | os.PathLike, step: int,
                         precision: str) -> Path:
    """Sample every video of a feature shard every ``step`` frames; write one file atomically."""
    clean_stale_temporaries(Path(out_path).parent)
    pack = read_pack(feature_shard)
    parts: list[SampledFrames] = []
    for name in pack.files:
        vf = read_video_features(Path(feature_shard) / name)
        parts.append(sample_frames(vf.features, vf.timestamps_s, step))
    return write_sampled(out_path, pack.video_ids, parts, step, precision, str(Path(feature_shard).resolve()))


def write_sampled(out_path: str | os.PathLike, video_ids: list[str], parts: list[SampledFrames], step: int,
                  precision: str, source: str = "") -> Path:
    """One segment-frame file holding ``parts[i]`` for ``video_ids[i]``, atomically."""
    if precision not in SEGMENT_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(SEGMENT_PRECISIONS)}, got {precision!r}")
    d = parts[0].features.shape[1] if parts else 0
    feats = np.concatenate([p.features for p in parts]) if parts else np.zeros((0, d), np.float16)
    codes = (np.clip(np.rint(feats.astype(np.float32) * 127), -127, 127).astype(np.int8) if precision == "int8"
             else feats.astype(np.float16))
    with atomic_h5(out_path) as f:
        f.attrs["schema"] = SEGMENT_FRAMES_SCHEMA
        f.attrs["schema_version"] = SEGMENT_FRAMES_VERSION
        f.attrs["step"] = step
        f.attrs["precision"] = precision
        f.attrs["feature_shard"] = source
        f.attrs["units"] = "times and durations in seconds"
        f.create_dataset("video_ids", data=np.array(video_ids, dtype=object), dtype=h5py.string_dtype("utf-8"))
        f.create_dataset("start", data=np.r_[0, np.cumsum([len(p.features) for p in parts])].astype(np.int64))
        f.create_dataset("features", data=codes)
        f.create_dataset("times_s", data=np.concatenate([p.times_s for p in parts]) if parts else np.zeros(0))
        f.create_dataset("duration_s", data=np.array([p.duration_s for p in parts], dtype=np.float64))
    return Path(out_path)


@dataclass
class _File:
    features: np.ndarray  # (rows, d) memory map
    times_s: np.ndarray
    precision: str


class SegmentFrames:
    """Frames at the compared rate by video id, across the store's files (memory-mapped)."""

    def __init__(self, files: list[Path], step: int) -> None:
        self.files = files
        self.step = step
        self._where: dict[str, tuple[int, int, int, float]] = {}
        self._open: dict[int, _File] = {}
        for fi, p in enumerate(files):
            with open_checked(p, SEGMENT_FRAMES_SCHEMA, SEGMENT_FRAMES_VERSION) as f:
                if int(f.attrs["step"]) != step:
                    raise ArtifactError(f"{p}: frames every {int(f.attrs['step'])} frames, expected every {step}")
                ids = [s.decode() if isinstance(s, bytes) else s for s in f["video_ids"][()]]
                start, dur = f["start"][()], f["duration_s"][()]
            for i, vid in enumerate(ids):
                self._where[vid] = (fi, int(start[i]), int(start[i + 1]), float(dur[i]))

    def __contains__(self, vid: str) -> bool:
        return vid in self._where

    def _file(self, fi: int) -> _File:
        if fi not in self._open:
            p = self.files[fi]
            with h5py.File(p, "r") as f:
                ds = f["features"]
                offset = ds.id.get_offset()
                feats = (np.memmap(p, dtype=ds.dtype, mode="r", offset=offset, shape=ds.shape)
                         if offset is not None and ds.chunks is None and ds.size else ds[()])
                self._open[fi] = _File(feats, f["times_s"][()], str(f.attrs["precision"]))
        return self._open[fi]

    def sampled(self, vid: str, step: int, dim: int | None = None) -> SampledFrames:
        """``vid``'s frames every ``step`` frames of the 15-fps stream (features as float32; refused unless
        ``dim``-dimensional, when given)."""
        if step != self.step:
            raise ArtifactError(f"the segment-frame store samples every {self.step} frames, not {step}")
        fi, a, b, duration = self._where[vid]
        f = self._file(fi)
        if dim is not None and f.features.shape[1] != dim:
            raise ArtifactError(f"{self.files[fi]}: {f.features.shape[1]}-dimensional frames, expected {dim} "
                                f"(from another configuration; run verify)")
        x = np.asarray(f.features[a:b], dtype=np.float32)
        return SampledFrames(x / 127.0 if f.precision == "int8" else x, f.times_s[a:b], duration)
