"""The Luigi settings the pipeline needs, applied from any working directory.

Luigi reads ``luigi.cfg`` only from the current directory (and ``/etc/luigi``,
``$LUIGI_CONFIG_PATH``), so a cron job started elsewhere used to run with exit
code 0 on failure, DEBUG logging and no retries.  :func:`apply_defaults` adds
``configs/luigi.cfg`` (shipped with the package) for every option the user's
configuration leaves unset, and :func:`log_failures` prints one line per failed
task that says what went wrong.
"""

from __future__ import annotations

import configparser
import logging
import re
from importlib import resources

import luigi
import luigi.configuration

log = logging.getLogger("pipeline")


def defaults() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read_string(resources.files("configs").joinpath("luigi.cfg").read_text(encoding="utf-8"))
    return parser


def apply_defaults() -> None:
    """Set every option of ``configs/luigi.cfg`` that the user's configuration does not set."""
    config = luigi.configuration.get_config()
    ours = defaults()
    for section in ours.sections():
        for key, value in ours.items(section):
            if not config.has_option(section, key):
                if not config.has_section(section):
                    config.add_section(section)
                config.set(section, key, value)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def log_failures() -> None:
    """After Luigi's traceback, one line per failed task: which task, what to do."""

    @luigi.Task.event_handler(luigi.Event.FAILURE)
    def _failed(task: luigi.Task, exc: BaseException) -> None:
        log.error("FAILED %s: %s", task.task_id, one_line(exc))

    @luigi.Task.event_handler(luigi.Event.BROKEN_TASK)
    def _broken(task: luigi.Task, exc: BaseException) -> None:
        log.error("CANNOT SCHEDULE %s: %s", task.task_id, one_line(exc))

    interface = logging.getLogger("luigi-interface")
    if not any(isinstance(f, _OneLineSchedulingErrors) for f in interface.filters):
        interface.addFilter(_OneLineSchedulingErrors())


_OURS = re.compile(r"^(?:pipeline|extractors|index|tasks)(?:\.\w+)*\.(\w+): (.+)$")
_WILL_NOT_RUN = re.compile(r"^Will not run (.+) or any dependencies due to error in (complete|deps)\(\) method:")


class _OneLineSchedulingErrors(logging.Filter):
    """Luigi logs the whole traceback when ``complete()`` or ``requires()`` raises; for the pipeline's own
    errors (a bad configuration, a missing data root or weights), whose message already says what to
    do, the traceback becomes one ``CANNOT SCHEDULE <task>: <message>`` line (``requires()`` errors are
    printed by the ``BROKEN_TASK`` handler, so their traceback is dropped)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        head = _WILL_NOT_RUN.match(text)
        if head is None:
            return True
        last = next((ln for ln in reversed(text.splitlines()) if ln.strip()), "")
        ours = _OURS.match(last)
        if ours is None:
            return True  # someone else's error: Luigi's traceback stays
        if head.group(2) == "deps":
            return False
        record.msg, record.args = "CANNOT SCHEDULE %s: %s", (head.group(1), ours.group(2))
        record.levelno, record.levelname = logging.ERROR, "ERROR"
        return True


PACKAGE_LOGGERS = ("pipeline", "extractors", "index", "tasks")


class _PlainStderr(logging.StreamHandler):
    """INFO lines as Luigi prints its own (``INFO: ...``); warnings and errors as the bare line they are
    (``FAILED <task>: ...``), as Python printed them before any handler existed."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        return msg if record.levelno >= logging.WARNING else f"{record.levelname}: {msg}"


def route_package_logs() -> None:
    """Luigi's command line configures only its own ``luigi-interface`` logger, so the steps' INFO lines
    (where a run writes, training and extraction progress) were lost in a Luigi run's log.  When nothing
    configured logging (no root handler, no handler of ours), the package loggers get one stderr handler
    at INFO; a user's logging configuration is left alone."""
    if logging.getLogger().handlers:
        return
    for name in PACKAGE_LOGGERS:
        logger = logging.getLogger(name)
        if logger.handlers:
            continue
        logger.addHandler(_PlainStderr())
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
