"""Frame-feature extraction for a shard of videos.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from extractors.decode.pool import decode_messages, file_fingerprint
from extractors.frame.base import FrameExtractor
from extractors.frame.black_bars import crop_black_bars
from extractors.runtime import failpoints
from extractors.runtime.progress import progress
from extractors.runtime.timebase import FPS
from pipeline.core.atomic import atomic_path, clean_stale_temporaries
from pipeline.core.hdf5 import ArtifactError
from pipeline.datasets.listing import Video
from pipeline.steps.features.extractor import check_weights, configured_extractor
from pipeline.steps.features.settings import (
    SAMPLING_RULE,
    ExtractionSettings,
    extraction_settings,
    feature_config_id,
    resolve_layout,
)
from pipeline.store.features import (
    ShardPack,
    VideoFeatures,
    read_video_features,
    video_filename,
    write_pack,
    write_video_features,
)
from pipeline.store.layout import Layout

log = logging.getLogger(__name__)


def write_failures(path: Path, failures: Sequence[Failure]) -> Path:
    """``failures.csv``: one line per file that failed (file, stage, cause)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["file", "stage", "cause"])
    for f in failures:
        w.writerow([f.path, f.stage, f.cause])
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    return path


def extract_videos(layout: Layout, videos: Sequence[Video], shard_dir: Path,
                   fingerprints, show_progress: bool = True,
                   extractor: FrameExtractor | None = None) -> ShardResult:
    """Frame features of ``videos`` into ``shard_dir`` (+ its pack and ``failures.csv``).

    Feature files computed earlier in another shard from identical content with the
    same settings are adopted instead of recomputed.  ``fingerprints`` maps video ids
    to content fingerprints.
    """
    cfg = layout.cfg
    ex = extractor or configured_extractor(layout)
    settings = extraction_settings(cfg.features, show_progress)
    unreadable = listing_failures(videos)
    videos = [v for v in videos if not v.problem]
    reuse_earlier_features([v.id for v in videos], shard_dir, layout.features_dir, ex, settings, fingerprints)
    res = extract_shard_videos([(v.id, v.path) for v in videos], shard_dir, ex, settings, {"dataset": cfg.name})
    res.failures[:0] = unreadable
    write_failures(layout.failures_file(shard_dir), res.failures)
    return res


def listing_failures(videos: Sequence[Video]) -> list[Failure]:
    """A failure (stage ``list``) for each corpus entry that is not a readable regular file."""
    for v in videos:
        if v.problem:
            log.error("%s: list: %s", v.path, v.problem)
    return [Failure(str(v.path), "list", v.problem) for v in videos if v.problem]


def extract_shard(layout: Layout, shard: int, show_progress: bool = True) -> ShardResult:
    """Frame features of corpus shard ``shard``."""

    check_weights(layout.cfg.features)
    videos = layout.shards[shard]
    path_of = {v.id: v.path for v in videos}
    return extract_videos(layout, videos, layout.feature_shard_dir(shard),
                          lambda ids: {v: file_fingerprint(path_of[v]) for v in ids}, show_progress)


@dataclass
class Failure:
    """One line of a failures report: which file, which stage, why."""

    path: str
    stage: str
    cause: str

    def __str__(self) -> str:
        return f"{self.path}: {self.stage}: {self.cause}"


@dataclass
class ShardResult:
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0


def extract_shard_videos(videos: Sequence[tuple[str, str | os.PathLike]], shard_dir: str | os.PathLike,
                  extractor: FrameExtractor,
                  settings: ExtractionSettings | None = None,
                  extra_attrs: dict | None = None) -> ShardResult:
    """Extract features of ``videos`` (``(video_id, path)`` pairs) into ``shard_dir``.

    Returns the ids written, skipped (already done with the same settings) and the
    failures; the pack lists every video that has a valid file.
    """
    settings = resolve_layout(settings or ExtractionSettings(), extractor.device.type)
    torch.set_num_threads(settings.torch_threads)
    shard = Path(shard_dir)
    shard.mkdir(parents=True, exist_ok=True)
    if n := clean_stale_temporaries(shard):
        log.info("%s: removed %d temporary file(s) left by an interrupted run", shard, n)
    cfg_id = feature_config_id(extractor, settings)
    result = ShardResult()
    todo: list[tuple[int, str]] = []
    for i, (vid, path) in enumerate(videos):
        out = shard / video_filename(vid)
        if out.is_file():
            try:
                if read_video_features(out).attrs.get("config_id") == cfg_id:
                    result.skipped.append(vid)
                    continue
            except ArtifactError as exc:
                log.warning("re-extracting %s: %s", vid, exc)
        todo.append((i, str(path)))

    t0 = time.perf_counter()
    bar = progress(total=len(todo), unit="video", wanted=settings.progress, desc=shard.name)
    for got in describe_videos([(videos[i][0], p) for i, p in todo], extractor, settings, extra_attrs, cfg_id):
        bar.update(1)
        if isinstance(got, Failure):
            result.failures.append(got)
            continue
        result.frames += len(got.features)
        elapsed = time.perf_counter() - t0
        bar.set_postfix(frames=result.frames, fps=f"{result.frames / max(elapsed, 1e-9):.1f}")
        write_video_features(shard / video_filename(got.video_id), got, settings.feature_dtype)
        result.written.append(got.video_id)
    bar.close()
    result.seconds = time.perf_counter() - t0
    _write_shard_pack(videos, shard, cfg_id)
    return result


def describe_videos(videos: Sequence[tuple[str, str]], extractor: FrameExtractor,
                    settings: ExtractionSettings, extra_attrs: dict | None = None,
                    cfg_id: str | None = None) -> Iterator[VideoFeatures | Failure]:
    """Frame features of ``(video_id, path)`` pairs, decoded by the decode pool (worker processes with the
    per-video time limit and memory cap of ``settings``), in completion order; a :class:`Failure`
    (logged) for a video that could not be decoded."""
    cfg_id = cfg_id or feature_config_id(extractor, settings)
    buffers: dict[int, list] = {}
    for msg in decode_messages([(i, path) for i, (_, path) in enumerate(videos)], asdict(settings)):
        kind, i = msg[0], msg[1]
        if kind == "start":
            continue
        if kind == "chunk":
            frames, ts, src = msg[2], msg[3], msg[4]
            feats = extractor.describe(crop_black_bars(frames) if settings.remove_black_bars else frames)
            failpoints.hit("extract.batch")
            b = buffers.setdefault(i, [[], [], [], frames.shape[1:3]])
            b[0].append(feats)
            b[1].append(ts)
            b[2].append(src)
            continue
        vid, path = videos[i]
        if kind == "error":
            buffers.pop(i, None)
            log.error("%s: %s: %s", path, msg[2], msg[3])
            yield Failure(str(path), msg[2], msg[3])
            continue
        info = msg[2]
        feats, ts, src, hw = buffers.pop(i)
        attrs = _video_attrs(info, extractor, settings, cfg_id, hw, extra_attrs)
        yield VideoFeatures(vid, np.concatenate(feats), np.concatenate(ts), attrs)


def _video_attrs(info: dict, extractor: FrameExtractor, settings: ExtractionSettings,
                 cfg_id: str, hw: tuple[int, int], extra: dict | None) -> dict:
    return {
        "source_path": os.path.abspath(info["path"]),
        "source_size": int(info["size_bytes"]),
        "source_mtime": float(info["mtime"]),
        "source_fingerprint": info["fingerprint"],
        "container_fps": float(info["container_fps"]),
        "container_fps_source": info["fps_source"],
        "duration_s": float(info["duration_s"]),
        "decoded_frames": int(info["decoded_frames"]),
        "corrupt_packets": int(info["corrupt_packets"]),
        "rotation_deg": int(info["rotation"]),
        "codec": info["codec"],
        "source_width": int(info["width"]),
        "source_height": int(info["height"]),
        "sampling_fps": float(FPS),
        "sampling_rule": SAMPLING_RULE,
        "input_size_wh": np.array([hw[1], hw[0]], dtype=np.int64),
        "image_area": int(settings.image_area),
        "model": extractor.model_id,
        **({"level": int(extractor.settings.level)} if hasattr(getattr(extractor, "settings", None), "level")
           else {}),
        "weights_id": extractor.weights_id,
        "pca_id": extractor.pca.pca_id if extractor.pca else "none",
        "precision": str(extractor.precision),
        "device": str(extractor.device),
        "config_id": cfg_id,
        "warnings": "; ".join(info.get("warnings", [])),
        **(extra or {}),
    }


def _write_shard_pack(videos: Sequence[tuple[str, str | os.PathLike]], shard: Path,
                      cfg_id: str) -> None:
    ids, files, counts, means = [], [], [], []
    for vid, _ in videos:
        out = shard / video_filename(vid)
        if not out.is_file():
            continue
        vf = read_video_features(out)
        if vf.attrs.get("config_id") != cfg_id:
            continue
        ids.append(vid)
        files.append(out.name)
        counts.append(len(vf.features))
        means.append(vf.mean_frame)
    dim = means[0].shape[0] if means else 0
    write_pack(shard, ShardPack(ids, files, np.asarray(counts, dtype=np.int64),
                                np.stack(means) if means else np.zeros((0, dim), np.float32),
                                {"config_id": cfg_id, "shard": shard.name}))


def existing_feature_files(features_root: Path) -> dict[str, Path]:
    """Feature files already computed under ``features_root`` (every shard), by file name."""
    out: dict[str, Path] = {}
    if features_root.is_dir():
        for d in sorted(features_root.iterdir()):
            if d.is_dir():
                for f in d.glob("*.h5"):
                    if f.name != "_pack.h5":
                        out.setdefault(f.name, f)
    return out


def reuse_earlier_features(video_ids: Sequence[str], shard: Path, features_root: Path,
                           extractor: FrameExtractor, settings: ExtractionSettings,
                           fingerprints: Callable[[list[str]], dict[str, str]]) -> int:
    """Hard-link feature files computed earlier in another shard of ``features_root`` into
    ``shard`` (so :func:`extract_shard_videos` skips them), when they were made with the same
    settings from content with the same fingerprint; returns how many.

    ``fingerprints`` maps video ids to the current content fingerprints of their sources.
    """
    import shutil

    reusable = {k: v for k, v in existing_feature_files(features_root).items() if v.parent != shard}
    candidates = [v for v in video_ids if video_filename(v) in reusable and not (shard / video_filename(v)).exists()]
    if not candidates:
        return 0
    fps = fingerprints(candidates)
    cfg_id = feature_config_id(extractor, settings)
    shard.mkdir(parents=True, exist_ok=True)
    n = 0
    for vid in candidates:
        src = reusable[video_filename(vid)]
        try:
            attrs = read_video_features(src).attrs
        except ArtifactError:
            continue
        if attrs.get("config_id") != cfg_id or attrs.get("source_fingerprint") != fps.get(vid):
            continue
        try:
            os.link(src, shard / src.name)
        except OSError:
            shutil.copy2(src, shard / src.name)
        n += 1
    if n:
        log.info("%s: reusing %d feature file(s) computed earlier with the same settings", shard.name, n)
    return n
