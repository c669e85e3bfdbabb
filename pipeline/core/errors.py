"""Errors of the pipeline's steps (their root, :class:`VideoAlignError`, is shared with every layer).
"""

from __future__ import annotations

from extractors.runtime.errors import VideoAlignError


class StepError(VideoAlignError, RuntimeError):
    """A step that cannot run; the message is one line that says what to do."""
