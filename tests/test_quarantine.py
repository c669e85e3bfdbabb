"""The quarantine (pipeline/store/quarantine.py): transient failures come back with a bounded backoff,
permanent ones wait for the file to change."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.store import quarantine as qn

T0 = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
KILLED = "decoder process crashed (exit code -9; killed (SIGKILL: out of memory?))"


@pytest.mark.parametrize(("cause", "transient"), [
    (KILLED, True),
    ("decoding exceeded the time limit of 2 s (decoder killed)", True),
    ("no progress for 600 s (decoder killed by the watchdog)", True),
    ("out of memory (cap 512 MB per decoder)", True),
    ("cannot open ([Errno 5] Input/output error)", True),
    ("permission denied (file not readable)", True),
    ("cannot read the container: not a video, truncated or corrupt", False),
    ("no video stream", False),
    ("an image, not a video (format png_pipe)", False),
    ("empty file (0 bytes)", False),
])
def test_causes_that_say_nothing_about_the_file_are_transient(cause, transient):
    assert qn.is_transient(cause) is transient


def test_a_transient_failure_is_retried_with_a_growing_wait_then_held(tmp_path):
    p = tmp_path / "v.mp4"
    entries: dict[str, qn.QuarantineEntry] = {}
    e = qn.entry(p, 100, 5.0, "decode", KILLED, None, T0)
    entries[e.path] = e
    assert e.attempts == 1 and not e.permanent
    assert not qn.holds(entries, p, 100, 5.0, T0)  # the next refresh retries it at once
    e2 = qn.entry(p, 100, 5.0, "decode", KILLED, e, T0 + timedelta(minutes=5))  # failed again
    entries[e.path] = e2
    assert e2.attempts == 2 and e2.since == e.since
    assert qn.holds(entries, p, 100, 5.0, T0 + timedelta(minutes=30))  # backing off: 1 h
    assert not qn.holds(entries, p, 100, 5.0, T0 + timedelta(minutes=66))
    e3 = qn.entry(p, 100, 5.0, "decode", KILLED, e2, T0 + timedelta(hours=2))
    entries[e.path] = e3
    assert e3.permanent and qn.holds(entries, p, 100, 5.0, T0 + timedelta(days=30))  # 3 in a row: held
    assert "failed 3 times in a row: retried when the file changes" in qn.describe(entries)[0]
    assert qn.needs_operator(entries) == [e3]
    assert not qn.holds(entries, p, 101, 5.0, T0 + timedelta(days=30))  # the file changed: tried again
    fresh = qn.entry(p, 101, 6.0, "decode", KILLED, e3, T0 + timedelta(days=30))
    assert fresh.attempts == 1  # a changed file starts over


def test_a_permanent_failure_waits_for_the_file_to_change(tmp_path):
    p = tmp_path / "v.mp4"
    e = qn.entry(p, 100, 5.0, "decode", "no video stream", None, T0)
    entries = {e.path: e}
    assert e.permanent and qn.holds(entries, p, 100, 5.0, T0 + timedelta(days=365))
    assert not qn.holds(entries, p, 100, 7.0, T0)
    assert "permanent: retried when the file changes" in qn.describe(entries)[0]


def test_entries_written_before_causes_were_told_apart_are_classified_when_read(tmp_path):
    f = tmp_path / "quarantine.json"
    f.write_text(json.dumps({"schema": "videoalign/quarantine", "entries": [
        {"path": "/c/a.mp4", "size": 1, "mtime": 1.0, "stage": "decode", "cause": KILLED, "since": "2026-11-01"},
        {"path": "/c/b.mp4", "size": 1, "mtime": 1.0, "stage": "decode", "cause": "no video stream",
         "since": "2026-11-01"}]}))
    got = qn.load_quarantine(f)
    assert got["/c/a.mp4"].transient and got["/c/a.mp4"].due(T0)  # an old OOM kill is retried now
    assert got["/c/b.mp4"].permanent
    qn.save_quarantine(f, got)
    assert qn.load_quarantine(f) == got
