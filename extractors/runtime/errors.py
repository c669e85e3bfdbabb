"""The root of every error the pipeline raises on purpose.

Each kind of error subclasses :class:`VideoAlignError` (and, where callers may expect it, the matching
built-in: ``ValueError``, ``OSError`` ...).  Its message is one line that names the file or the setting
and says what to do; the command line prints that line and exits with the error's ``exit_code``, the
Luigi entry logs it as ``FAILED <task>: <line>``.  Anything else is a bug and keeps its traceback.
It lives in the lowest layer so that every layer's errors share it.
"""

from __future__ import annotations


class VideoAlignError(Exception):
    """An error with a one-line message for the user (exit code ``exit_code`` on the command line)."""

    exit_code: int = 2
