"""The 15-fps sampling rule (spec section 1).

Nominal instant ``n / 15`` s is snapped to the nearest frame of a source whose
container frame rate is ``fps``; the result is expressed in 1/15-s units:
``t_n = 15 * round(n * fps / 15) / fps`` (NumPy round-half-to-even), computed
in float64 and returned as float32, like the reference loader.
"""

from __future__ import annotations

import numpy as np

from extractors.runtime.timebase import FPS, frames_to_seconds, seconds_to_frames

DEFAULT_CONTAINER_FPS = 25.0
"""Frame rate the reference assumes when the container's cannot be read."""


def sampling_timestamps(n_frames: int, container_fps: float, fps: float = FPS) -> np.ndarray:
    """Timestamps ``(n_frames,) float32`` in 1/``fps``-s units for a source at ``container_fps``.

    Rates below ``fps`` give repeated timestamps (frames are repeated).
    """
    if container_fps <= 0 or not np.isfinite(container_fps):
        raise ValueError(f"container frame rate must be a positive number, got {container_fps}")
    n = np.arange(int(n_frames), dtype=np.float64)
    return (fps * np.round(n * container_fps / fps) / container_fps).astype(np.float32)


def source_frame_indices(n_frames: int, container_fps: float, fps: float = FPS) -> np.ndarray:
    """Index ``(n_frames,) int64`` of the source frame nearest to each ``fps`` instant."""
    n = np.arange(int(n_frames), dtype=np.float64)
    return np.round(n * container_fps / fps).astype(np.int64)


__all__ = ["DEFAULT_CONTAINER_FPS", "FPS", "frames_to_seconds", "sampling_timestamps", "seconds_to_frames",
           "source_frame_indices"]
