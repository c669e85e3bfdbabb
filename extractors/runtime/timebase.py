"""The pipeline's one time base.

Every video is sampled at :data:`FPS` frames per second (the reference's
15 fps).  Inside the kernels (TMK, CTE, offset scoring) time is counted in
1/:data:`FPS`-s frames; everything a user sees (timestamps, offsets, spans,
durations) is in seconds.  This module is the only place that states the rate:
every other module converts with the helpers below.
"""

from __future__ import annotations

import numpy as np

FPS: float = 15.0
"""Sampling rate of the frame stream; one kernel time unit is ``1 / FPS`` seconds."""

FRAME_S: float = 1.0 / FPS
"""Duration of one sampled frame, seconds."""


def seconds_to_frames(seconds: np.ndarray | float) -> np.ndarray:
    """Seconds -> kernel units (1/FPS s), float64."""
    return np.asarray(seconds, dtype=np.float64) * FPS


def frames_to_seconds(frames: np.ndarray | float) -> np.ndarray:
    """Kernel units (1/FPS s) -> seconds, float64."""
    return np.asarray(frames, dtype=np.float64) / FPS


def frame_count_seconds(n_frames: int) -> float:
    """Duration in seconds covered by ``n_frames`` sampled frames."""
    return float(n_frames) / FPS
