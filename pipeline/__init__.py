"""Video copy detection, event retrieval and temporal alignment pipeline.

This package is also the Luigi entry module (``luigi --module pipeline BuildIndex ...``): when Luigi's
command line imports it, it registers the tasks of the ``tasks`` package (which apply the pipeline's
Luigi settings).  Importing the package or any of its modules otherwise never imports the tasks or
touches Luigi's configuration, even when Luigi is already imported (a notebook, another project's
worker); ``python -m pipeline luigi`` and the demo import ``tasks`` themselves.

Layers, one per folder (``docs/architecture.md``): ``core``, ``config``, ``datasets``, ``store``
(storage and layout) <- ``steps`` <- ``entry``; ``metrics`` is pure.
"""

from __future__ import annotations

import sys

from pipeline.core.version import __version__  # noqa: F401


def _imported_by_luigi_command_line() -> bool:
    """True while Luigi's command-line parser loads ``--module pipeline``."""
    if "luigi.cmdline_parser" not in sys.modules:
        return False
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "_attempt_load_module" and "luigi" in code.co_filename:
            return True
        frame = frame.f_back
    return False


if _imported_by_luigi_command_line():  # pragma: no cover - exercised by the luigi CLI tests (subprocesses)
    from tasks import *  # noqa: F403
