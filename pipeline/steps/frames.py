"""Frames by video id, as the search and the calibration read them: the 15-fps features through the
shard packs (:class:`FeatureLookup`) or the segment-frame store at the compared rate."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from index.localise import SampledFrames, sample_frames
from pipeline.core.hdf5 import ArtifactError
from pipeline.store import completeness
from pipeline.store.features import VideoFeatures, read_pack, read_video_features
from pipeline.store.layout import Layout
from pipeline.store.segment_frames import SegmentFrames


class FeatureLookup:
    """Frame features by video id (through the shard packs, or a published manifest)."""

    def __init__(self, where: dict[str, Path]) -> None:
        self.where = where

    @classmethod
    def of_layout(cls, layout: Layout) -> FeatureLookup:
        where: dict[str, Path] = {}
        for s in range(layout.n_shards):
            d = layout.feature_shard_dir(s)
            if not completeness.feature_shard_complete(d):
                continue
            pack = read_pack(d)
            for vid, name in zip(pack.video_ids, pack.files, strict=True):
                where[vid] = d / name
        return cls(where)

    @classmethod
    def of_manifest(cls, manifest: dict) -> FeatureLookup:
        return cls({vid: Path(e["features"]) for vid, e in manifest["videos"].items()})

    def __contains__(self, vid: str) -> bool:
        return vid in self.where

    def sampled(self, vid: str, step: int, dim: int | None = None) -> SampledFrames:
        """``vid``'s 15-fps features every ``step`` frames (refused unless ``dim``-dimensional, when given)."""
        vf = self.get(vid, dim)
        return sample_frames(vf.features, vf.timestamps_s, step)

    def get(self, vid: str, dim: int | None = None) -> VideoFeatures:
        """The features of ``vid``; with ``dim``, refused (naming the file) unless ``dim``-dimensional."""
        vf = read_video_features(self.where[vid])
        if dim is not None and vf.features.shape[1] != dim:
            raise ArtifactError(f"{self.where[vid]}: {vf.features.shape[1]}-dimensional features, expected {dim} "
                                f"(damaged, or from another configuration; run verify)")
        return vf


class FrameSource(Protocol):
    """Frames at the compared rate by video id: the 15-fps features (:class:`FeatureLookup`) or the
    segment-frame store (:class:`pipeline.store.segment_frames.SegmentFrames`)."""

    def __contains__(self, vid: str) -> bool: ...

    def sampled(self, vid: str, step: int, dim: int | None = None) -> SampledFrames: ...


def segment_frame_store(layout: Layout) -> SegmentFrames:
    return SegmentFrames([layout.segment_frames_path(s) for s in range(layout.n_shards)], layout.segment_step)
