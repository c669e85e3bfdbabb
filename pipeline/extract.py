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
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from extractors import failpoints
from extractors.black_bars import crop_black_bars
from extractors.decode import DEFAULT_IMAGE_AREA
from extractors.decode_pool import decode_messages
from extractors.frame_extractor import FrameExtractor
from extractors.progress import progress
from extractors.timebase import FPS
from pipeline.artifacts import (
    ArtifactError,
    ShardPack,
    VideoFeatures,
    clean_stale_temporaries,
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
    """Knobs of the decode + CNN loop (not of the features themselves, except the first two)."""

    image_area: int = DEFAULT_IMAGE_AREA
    feature_dtype: str = "float16"
    batch_size: int = 32
    decode_workers: int = -1  # -1: auto (see resolve_layout)
    decode_threads: int = 1
    torch_threads: int = 0  # 0: auto
    queue_chunks: int = 8
    max_pixels: int = 8192 * 8192
    video_time_limit_s: float = 600.0  # per video, decode included (0: none)
    worker_memory_mb: int = 8192  # address-space cap of each decode worker (0: none)
    hwaccel: str = "none"  # FFmpeg hardware decoder (cuda, vaapi, ...), software fallback
    remove_black_bars: bool = False  # crop letterbox / pillarbox bars before the extractor
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


def resolve_layout(settings: ExtractionSettings, device_type: str,
                   cores: int | None = None) -> ExtractionSettings:
    """Fill in the automatic thread layout (measured in ``benchmarks/bench_extract.py``).

    CPU: one decode worker per two cores and every core for torch: in float32
    (the CPU default) the CNN is the bottleneck, and 2 torch threads beside one
    decoder run 1.4x faster end to end than 1 (108 vs 78 frames/s on 2 cores;
    a decoder alone delivers ~380 frames/s).  CUDA: decoding is the
    bottleneck, so one decode worker per core and one torch thread.
    """
    cores = cores or os.cpu_count() or 1
    s = ExtractionSettings(**asdict(settings))
    if s.decode_workers < 0:
        s.decode_workers = cores if device_type == "cuda" else max(1, cores // 2)
    if s.torch_threads <= 0:
        s.torch_threads = 1 if device_type == "cuda" else cores
    return s


def feature_config_id(extractor: FrameExtractor, settings: ExtractionSettings) -> str:
    """Hash of everything that changes the numbers in a feature file."""
    cfg = {"model": extractor.model_id, "weights": extractor.weights_id,
           "pca": extractor.pca.pca_id if extractor.pca else "none",
           "image_area": settings.image_area, "fps": FPS, "dtype": settings.feature_dtype,
           "precision": extractor.precision, "black_bars": "removed" if settings.remove_black_bars else "kept"}
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- shard extraction


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
    buffers: dict[int, list] = {}
    bar = progress(total=len(todo), unit="video", wanted=settings.progress, desc=shard.name)
    for msg in decode_messages(todo, asdict(settings)):
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


class _EvenSample:
    """Keeps about ``n`` evenly spaced frames of a stream of unknown length in bounded memory: every
    ``stride``-th frame, halving what is kept (and doubling the stride) whenever ``2 n`` are held."""

    def __init__(self, n: int) -> None:
        self.n, self.stride, self.seen = max(1, n), 1, 0
        self.kept: list[np.ndarray] = []

    def add(self, frames: np.ndarray) -> None:
        idx = np.arange(self.seen, self.seen + len(frames))
        self.seen += len(frames)
        self.kept.extend(frames[(idx % self.stride) == 0])
        while len(self.kept) >= 2 * self.n:
            self.kept = self.kept[::2]
            self.stride *= 2

    def result(self) -> np.ndarray:
        if not self.kept:
            return np.zeros((0, 0, 0, 3), np.uint8)
        pick = np.unique(np.linspace(0, len(self.kept) - 1, min(self.n, len(self.kept))).astype(int))
        return np.stack([self.kept[i] for i in pick])


def sampled_frames(paths: Sequence[str | os.PathLike], settings: ExtractionSettings, frames_per_video: int,
                   what: str) -> Iterator[tuple[str, np.ndarray]]:
    """``(path, (n, H, W, 3) uint8)`` about ``frames_per_video`` evenly spaced frames of each video
    that decodes (others are skipped with a warning): the sample every corpus fit (vocabulary,
    network, PCA) is made on. Decoding goes through the decode pool, so the per-video time limit and
    memory cap apply and no more than ``2 * frames_per_video`` frames of a video are held at once."""
    items = [(i, str(p)) for i, p in enumerate(paths)]
    samples: dict[int, _EvenSample] = {}
    bar = progress(total=len(items), unit="video", desc=what, wanted=settings.progress)
    for msg in decode_messages(items, asdict(settings)):
        kind, i = msg[0], msg[1]
        if kind == "chunk":
            frames = msg[2]
            samples.setdefault(i, _EvenSample(frames_per_video)).add(frames)
        elif kind == "error":
            samples.pop(i, None)
            bar.update(1)
            log.warning("%s: skipping %s: %s: %s", what, items[i][1], msg[2], msg[3])
        elif kind == "done":
            bar.update(1)
            got = samples.pop(i, None)
            if got is not None and got.seen:
                picked = got.result()  # bars are found on the whole sample, as for the whole video
                yield items[i][1], crop_black_bars(picked) if settings.remove_black_bars else picked
    bar.close()


def map_sample(paths: Sequence[str | os.PathLike], settings: ExtractionSettings, device_type: str,
               frames_per_video: int, what: str, per_batch: Callable[[np.ndarray], object]) -> tuple[list, list[str]]:
    """``per_batch`` of every batch of the evenly spaced sample (:func:`sampled_frames`) of each video
    that decodes, and those videos; raises when none does. Torch gets the extraction layout's threads,
    so a fit computes the same numbers whatever ran before in this process."""
    settings = resolve_layout(settings, device_type)
    torch.set_num_threads(settings.torch_threads)
    out, used = [], []
    for p, frames in sampled_frames(paths, settings, frames_per_video, what):
        out += [per_batch(frames[b0:b0 + settings.batch_size]) for b0 in range(0, len(frames), settings.batch_size)]
        used.append(p)
    if not out:
        raise ValueError(f"{what} training: no video could be decoded")
    return out, used


def train_pca_on_videos(paths: Sequence[str | os.PathLike], extractor: FrameExtractor,
                        settings: ExtractionSettings | None = None, frames_per_video: int = 300,
                        max_vectors: int = 500_000, seed: int = 0,
                        provenance: dict | None = None, n_components: int | None = None,
                        shrinkage: float = 0.0):
    """Train a PCA-whitening on the extractor's PCA samples of ``paths`` (evenly spaced frames).

    Videos that fail to decode are skipped with a warning.  Returns a
    :class:`extractors.pca.PCAWhitening` whose provenance records the corpus.
    """
    from extractors.pca import train_pca

    vectors, used = map_sample(paths, settings or ExtractionSettings(), extractor.device.type, frames_per_video,
                               "PCA", extractor.pca_samples)
    x = np.concatenate(vectors)
    rng = np.random.default_rng(seed)
    if len(x) > max_vectors:
        x = x[rng.choice(len(x), max_vectors, replace=False)]
    prov = {"videos": len(used), "model": extractor.model_id, "weights_id": extractor.weights_id,
            "frames_per_video": frames_per_video, **(provenance or {})}
    return train_pca(x, prov, n_components=n_components, shrinkage=shrinkage)


def train_vocabulary_on_videos(paths: Sequence[str | os.PathLike], settings: ExtractionSettings,
                               frames_per_video: int, provenance: dict | None = None):
    """Fit MultiVLAD vocabularies on dense RootSIFT of evenly spaced frames of ``paths``
    (descriptors of textured regions only, ``weight > 0.5``)."""
    from extractors.mvlad import MVLADSettings, dense_sift, fit_vocabulary

    ms = MVLADSettings()

    def textured(batch: np.ndarray) -> np.ndarray:
        d, w = dense_sift(batch, ms.cell, ms.stride, ms.contrast)
        return d.reshape(-1, 128)[w.reshape(-1) > 0.5].numpy()

    local, used = map_sample(paths, settings, "cpu", frames_per_video, "vocabulary", textured)
    return fit_vocabulary(np.concatenate(local), ms, {"videos": len(used), "frames_per_video": frames_per_video,
                                                      **(provenance or {})})


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


def train_frame_model_on_videos(paths: Sequence[str | os.PathLike], settings: ExtractionSettings, fm,
                                training_state_path: Path, provenance: dict | None = None):
    """Train the ``selfsup`` network (``fm``: :class:`pipeline.config.FrameModelConfig`) on evenly
    spaced frames of ``paths``, resuming from ``training_state_path`` when it holds a state for the
    same settings; returns a :class:`extractors.selfsup.FrameModel`."""
    from extractors.features import pick_device
    from extractors.selfsup import FrameModel, TrainSettings, to_input, train_copy_net
    from pipeline.frame_model_store import load_training_state, save_training_state

    ts = TrainSettings(steps=fm.steps, batch=fm.batch, input_size=fm.input_size, dim=fm.dim, width=fm.width,
                       lr=fm.lr, temperature=fm.temperature, koleo_weight=fm.koleo_weight, seed=fm.seed)
    chunks, used = map_sample(paths, settings, "cpu", fm.frames_per_video, "frame model",
                              lambda b: (to_input(b, fm.input_size) * 255).round().to(torch.uint8))
    data = torch.cat(chunks)
    key = {**asdict(ts), "frames": len(data), "videos": used}
    resume = load_training_state(training_state_path, key)
    if resume is not None:
        log.info("frame model: resuming training at step %d of %d", resume.step, ts.steps)
    device = str(pick_device(fm.device))

    def checkpoint(state) -> None:
        save_training_state(state, key, training_state_path)
        log.info("frame model: step %d of %d, loss %.4f (checkpoint saved)", state.step, ts.steps,
                 float(np.mean(state.losses[-fm.checkpoint_every:])))
        failpoints.hit("train_frame_model.checkpoint")

    with progress(total=ts.steps, initial=resume.step if resume else 0, unit="step", desc="frame model",
                      wanted=settings.progress) as bar:
        def on_step(step: int, loss: float) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

        net, state = train_copy_net(data, ts, resume=resume, device=device, on_step=on_step,
                                    checkpoint_every=fm.checkpoint_every, on_checkpoint=checkpoint)
    losses = state.losses
    return FrameModel.from_training(net, ts, {"videos": len(used), "frames": len(data),
                                              "frames_per_video": fm.frames_per_video, "device": device,
                                              "loss_first": losses[0], "loss_last": losses[-1],
                                              "loss_every_100": losses[::100], **(provenance or {})})
