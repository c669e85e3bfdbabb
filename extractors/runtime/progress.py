"""Progress that behaves in terminals, cron, CI, pipes and Luigi logs.

A bar is drawn only when it is wanted *and* stderr is a terminal *and*
``TQDM_DISABLE`` is not set (tqdm's own convention), so logs of unattended
runs are not filled with carriage returns.  A wanted progress in a run without
a terminal logs a line at INFO instead, at a steady interval
(``VIDEOALIGN_PROGRESS_S`` seconds, default 60) and when it ends: done / total,
rate, elapsed time and ETA (``frame model: training: 300/1500 step (2.1 step/s, elapsed
02:23, ETA 09:31)``), through the ``extractors.runtime.progress`` logger, which
reaches Luigi runs' logs as well as the CLI's.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

log = logging.getLogger(__name__)

_FALSE = ("", "0", "false", "no", "off")
INTERVAL_ENV = "VIDEOALIGN_PROGRESS_S"
LINE = "{desc}: {n_fmt}/{total_fmt} {unit} ({rate_fmt}, elapsed {elapsed}, ETA {remaining})"


def _off_by_user() -> bool:
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in _FALSE


def _terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def bars_disabled(wanted: bool = True) -> bool:
    """True when a progress bar must not be drawn."""
    return not wanted or _off_by_user() or not _terminal()


def interval_s() -> float:
    """Seconds between two progress lines of a run without a terminal."""
    try:
        return max(0.0, float(os.environ.get(INTERVAL_ENV, "60")))
    except ValueError:
        return 60.0


class LoggedProgress(tqdm):
    """A tqdm that draws nothing and logs its state at INFO every :func:`interval_s` seconds and at its end."""

    monitor_interval = 0  # no monitor thread: lines come from the progress itself

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.update(disable=False, file=_Null(), mininterval=interval_s(), maxinterval=float("inf"),
                      miniters=1, bar_format=LINE)
        self._logged: int | None = None
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        d = self.format_dict
        if d["n"] == self._logged or (d["n"] == 0 and not d["total"]):
            return True  # nothing new since the last line (e.g. the closing one)
        self._logged = d["n"]
        d["desc"] = d["prefix"] or "progress"
        log.info("%s", self.format_meter(**d))
        return True


class _Null:
    """A file that swallows what tqdm writes (its carriage-return bar)."""

    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        return None


def progress(iterable: Iterable | None = None, *, wanted: bool = True, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, ...)``: a bar on a terminal, INFO lines without one (when wanted and not turned
    off with ``TQDM_DISABLE``), nothing otherwise."""
    if wanted and not _off_by_user() and not _terminal():
        return LoggedProgress(iterable, **kwargs)
    return tqdm(iterable, disable=bars_disabled(wanted), **kwargs)
