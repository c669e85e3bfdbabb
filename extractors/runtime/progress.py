"""Progress bars that behave in cron, CI and pipes.

A bar is shown only when it is wanted *and* stderr is a terminal *and*
``TQDM_DISABLE`` is not set (tqdm's own convention), so logs of unattended
runs are not filled with carriage returns.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

_FALSE = ("", "0", "false", "no", "off")


def bars_disabled(wanted: bool = True) -> bool:
    """True when a progress bar must not be drawn."""
    if not wanted or os.environ.get("TQDM_DISABLE", "").strip().lower() not in _FALSE:
        return True
    try:
        return not sys.stderr.isatty()
    except (AttributeError, ValueError):
        return True


def progress(iterable: Iterable | None = None, *, wanted: bool = True, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, ...)`` that follows :func:`bars_disabled`."""
    return tqdm(iterable, disable=bars_disabled(wanted), **kwargs)
