"""Frame-feature extraction for a shard of videos.

Decoding runs in ``decode_workers`` processes that stream fixed-size chunks
of resized 15-fps frames to the main process, which runs the CNN on each
chunk as it arrives (decode and CNN overlap).  Each finished video is written
to its own HDF5 file at once (atomically); the shard's ``_pack.h5`` is
written last.  A video that fails (unreadable, corrupt, no video stream ...)
is reported with a one-line reason and the rest of the shard continues.
Re-running skips videos whose file already exists with the same settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import queue
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from extractors.decode import DEFAULT_IMAGE_AREA, DecodeError, iter_samples, to_model_input
from extractors.features import FrameFeatureExtractor
from pipeline.artifacts import (
    ArtifactError,
    ShardPack,
    VideoFeatures,
    file_fingerprint,
    read_video_features,
    video_filename,
    write_pack,
    write_video_features,
)

log = logging.getLogger(__name__)

SAMPLING_RULE = ("nearest source frame to each n/15 s instant by presentation time "
                 "(ties to the even frame); real timestamps kept")


@dataclass
class ExtractionSettings:
    """Knobs of the decode + CNN loop (not of the features themselves, except the first four)."""

    image_area: int = DEFAULT_IMAGE_AREA
    fps: float = 15.0
    feature_dtype: str = "float16"
    batch_size: int = 32
    decode_workers: int = 1
    decode_threads: int = 1
    torch_threads: int = 0  # 0: leave torch's default
    queue_chunks: int = 8
    max_pixels: int = 8192 * 8192
    progress: bool = True


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


def feature_config_id(extractor: FrameFeatureExtractor, settings: ExtractionSettings) -> str:
    """Hash of everything that changes the numbers in a feature file."""
    cfg = {"model": extractor.model_id, "weights": extractor.weights_id,
           "pca": extractor.pca.pca_id if extractor.pca else "none",
           "image_area": settings.image_area, "fps": settings.fps, "dtype": settings.feature_dtype}
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- decode workers


def _decode_worker(tasks, results, settings: dict) -> None:  # pragma: no cover - subprocess
    while True:
        item = tasks.get()
        if item is None:
            return
        i, path = item
        try:
            fp = file_fingerprint(path)
            info = None
            for chunk in iter_samples(
                    path, settings["image_area"], settings["fps"], chunk=settings["batch_size"],
                    threads=settings["decode_threads"], max_pixels=settings["max_pixels"]):
                frames, ts, src, info = chunk
                results.put(("chunk", i, frames, ts, src))
            results.put(("done", i, {**asdict(info), "fingerprint": fp}))
        except DecodeError as exc:
            results.put(("error", i, "decode", exc.cause))
        except OSError as exc:
            results.put(("error", i, "read", str(exc)))
        except Exception as exc:  # one bad file must not kill the worker
            results.put(("error", i, "decode", f"{type(exc).__name__}: {exc}"))


def _inline_decode(items: Sequence[tuple[int, str]], settings: ExtractionSettings):
    for i, path in items:
        try:
            fp = file_fingerprint(path)
            info = None
            for chunk in iter_samples(path, settings.image_area, settings.fps,
                                      chunk=settings.batch_size, threads=settings.decode_threads,
                                      max_pixels=settings.max_pixels):
                frames, ts, src, info = chunk
                yield ("chunk", i, frames, ts, src)
            yield ("done", i, {**asdict(info), "fingerprint": fp})
        except DecodeError as exc:
            yield ("error", i, "decode", exc.cause)
        except OSError as exc:
            yield ("error", i, "read", str(exc))


def _messages(items: Sequence[tuple[int, str]], settings: ExtractionSettings):
    """Decode messages in completion order, from worker processes or inline."""
    if settings.decode_workers <= 0 or len(items) == 0:
        yield from _inline_decode(items, settings)
        return
    ctx = mp.get_context("spawn")
    tasks = ctx.Queue()
    results = ctx.Queue(maxsize=max(2, settings.queue_chunks))
    n_workers = min(settings.decode_workers, len(items))
    cfg = {"image_area": settings.image_area, "fps": settings.fps, "batch_size": settings.batch_size,
           "decode_threads": settings.decode_threads, "max_pixels": settings.max_pixels}
    procs = [ctx.Process(target=_decode_worker, args=(tasks, results, cfg), daemon=True)
             for _ in range(n_workers)]
    for p in procs:
        p.start()
    for it in items:
        tasks.put(it)
    for _ in procs:
        tasks.put(None)
    pending = {i for i, _ in items}
    try:
        while pending:
            try:
                msg = results.get(timeout=1.0)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    for i in sorted(pending):
                        yield ("error", i, "decode", "decoder process died")
                    return
                continue
            if msg[0] != "chunk":
                pending.discard(msg[1])
            yield msg
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()


# --------------------------------------------------------------------------- shard extraction


def extract_shard(videos: Sequence[tuple[str, str | os.PathLike]], shard_dir: str | os.PathLike,
                  extractor: FrameFeatureExtractor,
                  settings: ExtractionSettings | None = None,
                  extra_attrs: dict | None = None) -> ShardResult:
    """Extract features of ``videos`` (``(video_id, path)`` pairs) into ``shard_dir``.

    Returns the ids written, skipped (already done with the same settings) and the
    failures; the pack lists every video that has a valid file.
    """
    settings = settings or ExtractionSettings()
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    shard = Path(shard_dir)
    shard.mkdir(parents=True, exist_ok=True)
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
    buffers: dict[int, list] = {}
    bar = tqdm(total=len(todo), unit="video", disable=not settings.progress, desc=shard.name)
    for msg in _messages(todo, settings):
        kind, i = msg[0], msg[1]
        if kind == "chunk":
            frames, ts, src = msg[2], msg[3], msg[4]
            feats = extractor(torch.from_numpy(to_model_input(frames))).numpy()
            b = buffers.setdefault(i, [[], [], [], frames.shape[1:3]])
            b[0].append(feats)
            b[1].append(ts)
            b[2].append(src)
            result.frames += len(frames)
            elapsed = time.perf_counter() - t0
            bar.set_postfix(frames=result.frames, fps=f"{result.frames / max(elapsed, 1e-9):.1f}")
            continue
        vid, path = videos[i][0], str(videos[i][1])
        bar.update(1)
        if kind == "error":
            buffers.pop(i, None)
            result.failures.append(Failure(path, msg[2], msg[3]))
            log.error("%s: %s: %s", path, msg[2], msg[3])
            continue
        info = msg[2]
        feats, ts, src, hw = buffers.pop(i)
        attrs = _video_attrs(info, extractor, settings, cfg_id, hw, extra_attrs)
        vf = VideoFeatures(vid, np.concatenate(feats), np.concatenate(ts), attrs)
        write_video_features(shard / video_filename(vid), vf, settings.feature_dtype)
        result.written.append(vid)
    bar.close()
    result.seconds = time.perf_counter() - t0
    _write_shard_pack(videos, shard, cfg_id)
    return result


def _video_attrs(info: dict, extractor: FrameFeatureExtractor, settings: ExtractionSettings,
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
        "sampling_fps": float(settings.fps),
        "sampling_rule": SAMPLING_RULE,
        "input_size_wh": np.array([hw[1], hw[0]], dtype=np.int64),
        "image_area": int(settings.image_area),
        "model": extractor.model_id,
        "level": int(extractor.settings.level),
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
