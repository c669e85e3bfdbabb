"""Corpus fits: the MultiVLAD vocabulary, the selfsup network, the PCA-whitening (no annotations).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from extractors.decode.pool import decode_messages
from extractors.frame.base import FrameExtractor
from extractors.frame.black_bars import crop_black_bars
from extractors.frame.mvlad import MVLADSettings, dense_sift, fit_vocabulary
from extractors.frame.pca import train_pca as fit_whitening
from extractors.frame.registry import EXTRACTOR_TYPES
from extractors.frame.resnet_rmac import pick_device
from extractors.frame.selfsup import FrameModel, TrainSettings, to_input, train_copy_net
from extractors.runtime import failpoints
from extractors.runtime.progress import progress
from pipeline.core.errors import StepError
from pipeline.steps.features.extractor import (
    check_weights,
    fitting_sample,
    load_configured_frame_model,
    load_configured_vocabulary,
    make_extractor,
    pca_needed,
)
from pipeline.steps.features.settings import ExtractionSettings, extraction_settings, resolve_layout
from pipeline.store import completeness
from pipeline.store.fitted.frame_model import load_training_state, save_frame_model, save_training_state
from pipeline.store.fitted.pca import save_pca
from pipeline.store.fitted.vocabulary import save_vocabulary
from pipeline.store.layout import Layout

log = logging.getLogger(__name__)


def train_vocabulary(layout: Layout, show_progress: bool = True) -> Path:
    """Fit the MultiVLAD vocabularies on the corpus's own frames (no annotations) and save them."""
    layout.clean_work_root()  # what a killed run of this step left beside its file

    cfg = layout.cfg
    vocab = train_vocabulary_on_videos(fitting_sample(layout), extraction_settings(cfg.features, show_progress),
                                       cfg.features.pca_frames_per_video,
                                       {"dataset": cfg.name, "root": str(cfg.root), "settings": layout.vocab_key})
    return save_vocabulary(vocab, layout.vocab_path)


def train_frame_model(layout: Layout, show_progress: bool = True) -> Path:
    """Train the ``selfsup`` network on the corpus's own frames (no annotations) and save it.

    Resumable: every ``frame_model.checkpoint_every`` steps the training state is saved
    atomically; a re-run continues from it and ends with the same weights.
    """
    layout.clean_work_root()  # what a killed run of this step left beside its file

    cfg = layout.cfg
    model = train_frame_model_on_videos(
        fitting_sample(layout), extraction_settings(cfg.features, show_progress), cfg.frame_model,
        layout.frame_model_training_path,
        {"dataset": cfg.name, "root": str(cfg.root), "settings": layout.frame_model_key})
    path = save_frame_model(model, layout.frame_model_path)
    layout.frame_model_training_path.unlink(missing_ok=True)
    return path


def train_pca(layout: Layout, show_progress: bool = True) -> Path:
    """Train the corpus PCA-whitening (``features.pca: trained``) and save it with its provenance."""
    layout.clean_work_root()  # what a killed run of this step left beside its file

    cfg = layout.cfg
    check_weights(cfg.features)
    ex = make_extractor(cfg.features, None, load_configured_vocabulary(layout), load_configured_frame_model(layout))
    pca = train_pca_on_videos(fitting_sample(layout), ex, extraction_settings(cfg.features, show_progress),
                              frames_per_video=cfg.features.pca_frames_per_video,
                              provenance={"dataset": cfg.name, "root": str(cfg.root), "settings": layout.pca_key},
                              n_components=EXTRACTOR_TYPES[cfg.features.extractor].recommended.pca_dims,
                              shrinkage=float(cfg.features.pca_shrinkage))
    return save_pca(pca, layout.pca_path)


def ensure_fitted(layout: Layout, show_progress: bool = True) -> None:
    """Fit what the features need from the corpus (vocabulary or network, PCA) when it is not there yet."""
    if layout.needs_vocabulary and not completeness.vocabulary_complete(layout.vocab_path):
        train_vocabulary(layout, show_progress)
    if layout.trains_frame_model and not completeness.frame_model_complete(layout.frame_model_path):
        train_frame_model(layout, show_progress)
    if pca_needed(layout) and not completeness.pca_complete(layout.pca_path):
        train_pca(layout, show_progress)


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
        raise StepError(f"{what} training: no video could be decoded")
    return out, used


def train_pca_on_videos(paths: Sequence[str | os.PathLike], extractor: FrameExtractor,
                        settings: ExtractionSettings | None = None, frames_per_video: int = 300,
                        max_vectors: int = 500_000, seed: int = 0,
                        provenance: dict | None = None, n_components: int | None = None,
                        shrinkage: float = 0.0):
    """Train a PCA-whitening on the extractor's PCA samples of ``paths`` (evenly spaced frames).

    Videos that fail to decode are skipped with a warning.  Returns a
    :class:`extractors.frame.pca.PCAWhitening` whose provenance records the corpus.
    """

    vectors, used = map_sample(paths, settings or ExtractionSettings(), extractor.device.type, frames_per_video,
                               "PCA", extractor.pca_samples)
    x = np.concatenate(vectors)
    rng = np.random.default_rng(seed)
    if len(x) > max_vectors:
        x = x[rng.choice(len(x), max_vectors, replace=False)]
    prov = {"videos": len(used), "model": extractor.model_id, "weights_id": extractor.weights_id,
            "frames_per_video": frames_per_video, **(provenance or {})}
    return fit_whitening(x, prov, n_components=n_components, shrinkage=shrinkage)


def train_vocabulary_on_videos(paths: Sequence[str | os.PathLike], settings: ExtractionSettings,
                               frames_per_video: int, provenance: dict | None = None):
    """Fit MultiVLAD vocabularies on dense RootSIFT of evenly spaced frames of ``paths``
    (descriptors of textured regions only, ``weight > 0.5``)."""

    ms = MVLADSettings()

    def textured(batch: np.ndarray) -> np.ndarray:
        d, w = dense_sift(batch, ms.cell, ms.stride, ms.contrast)
        return d.reshape(-1, 128)[w.reshape(-1) > 0.5].numpy()

    local, used = map_sample(paths, settings, "cpu", frames_per_video, "vocabulary", textured)
    return fit_vocabulary(np.concatenate(local), ms, {"videos": len(used), "frames_per_video": frames_per_video,
                                                      **(provenance or {})})


def train_frame_model_on_videos(paths: Sequence[str | os.PathLike], settings: ExtractionSettings, fm,
                                training_state_path: Path, provenance: dict | None = None):
    """Train the ``selfsup`` network (``fm``: :class:`pipeline.config.schema.FrameModelConfig`) on evenly
    spaced frames of ``paths``, resuming from ``training_state_path`` when it holds a state for the
    same settings; returns a :class:`extractors.frame.selfsup.FrameModel`."""

    ts = TrainSettings(steps=fm.steps, batch=fm.batch, input_size=fm.input_size, dim=fm.dim, width=fm.width,
                       lr=fm.lr, temperature=fm.temperature, koleo_weight=fm.koleo_weight, seed=fm.seed)
    chunks, used = map_sample(paths, settings, "cpu", fm.frames_per_video, "frame model: sampling frames",
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

    with progress(total=ts.steps, initial=resume.step if resume else 0, unit="step", desc="frame model: training",
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
