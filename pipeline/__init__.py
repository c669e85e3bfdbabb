"""Video copy detection, event retrieval and temporal alignment pipeline.

This package is also the Luigi entry module (``luigi --module pipeline
BuildIndex ...``): when Luigi is already imported (the ``luigi`` command line,
a worker), importing ``pipeline`` registers the tasks of the ``tasks``
package.  Plain library use (metrics, datasets, schema) never imports Luigi.
"""

from __future__ import annotations

import sys

from pipeline.version import __version__  # noqa: F401

if "luigi" in sys.modules:  # pragma: no cover - exercised by the luigi CLI tests
    from tasks import *  # noqa: F403
