"""Ground-truth readers for the benchmark datasets (spec section 6).

All times are seconds.  Every malformed line raises :class:`AnnotationError`
naming the file and the 1-based line number.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from extractors.runtime.errors import VideoAlignError
from pipeline.metrics.copies import Segment, spans_overlap


class AnnotationError(VideoAlignError, ValueError):
    """A ground-truth file that cannot be parsed; the message names file and line."""


MAX_TIME_S = 1e6
"""No annotated time is beyond ~11.6 days: larger values are corrupt, not video times."""


def check_span(where: str, what: str, begin: float, end: float) -> None:
    """``begin``/``end`` are finite, in ``[0, MAX_TIME_S]`` and ``end >= begin`` (else AnnotationError)."""
    for label, v in (("begin", begin), ("end", end)):
        if not math.isfinite(v):
            raise AnnotationError(f"{where}: {what} {label} is {v} (times must be finite seconds)")
        if v < 0 or v > MAX_TIME_S:
            raise AnnotationError(f"{where}: {what} {label} {v:g} s is outside [0, {MAX_TIME_S:g}] s")
    if end < begin:
        raise AnnotationError(f"{where}: {what} ends ({end:g} s) before it begins ({begin:g} s)")


def read_annotation_text(path: Path) -> str:
    """``path``'s UTF-8 text, or :class:`AnnotationError` naming it (missing, not UTF-8)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AnnotationError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise AnnotationError(f"{path}: not UTF-8 text") from None


def _lines(source: str | Path, text: str | None) -> tuple[str, list[str]]:
    if text is None:
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise AnnotationError(f"{path}: annotation file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise AnnotationError(f"{path}: cannot read annotation file ({exc})") from None
    return str(source), text.splitlines()


# --------------------------------------------------------------------------- Climbing / Madonna


@dataclass(frozen=True)
class AlignItem:
    """One line of a ``.align`` file: span ``[begin, end)`` of ``video``; video time
    ``u`` is global time ``global_s + u``."""

    video: str
    path: str
    begin_s: float
    end_s: float
    global_s: float

    @property
    def global_start_s(self) -> float:
        return self.global_s + self.begin_s


def align_video_name(path: str, kind: str) -> str:
    """Item name from the path field: Climbing -> path up to the first ``.``;
    Madonna -> second ``/`` component up to the first ``.``."""
    if kind.lower() == "madonna":
        parts = path.split("/")
        base = parts[1] if len(parts) > 1 else parts[0]
        return base.split(".")[0]
    return path.split(".")[0]


def parse_align(source: str | Path, kind: str = "Climbing", text: str | None = None
                ) -> list[AlignItem]:
    """Parse ``<video path> <begin> <end> <global>`` lines (blank lines skipped)."""
    name, lines = _lines(source, text)
    items = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 4:
            raise AnnotationError(f"{name}:{no}: expected '<video> <begin> <end> <global>', "
                                  f"got {len(fields)} fields: {line.strip()!r}")
        try:
            b, e, g = (float(f) for f in fields[1:])
        except ValueError:
            raise AnnotationError(f"{name}:{no}: begin/end/global must be numbers (seconds): "
                                  f"{line.strip()!r}") from None
        check_span(f"{name}:{no}", "the span", b, e)
        if not math.isfinite(g) or abs(g) > MAX_TIME_S:
            raise AnnotationError(f"{name}:{no}: the global time {g:g} is not a finite time within "
                                  f"{MAX_TIME_S:g} s")
        items.append(AlignItem(align_video_name(fields[0], kind), fields[0], b, e, g))
    return items


def align_ground_truth(items: Sequence[AlignItem]) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping item pairs ``(g, 2)`` (i < j, file order) and their offsets ``(g,)``
    ``start_i - start_j`` on the global timeline, seconds."""
    pairs, offsets = [], []
    for i, j in itertools.combinations(range(len(items)), 2):
        a, b = items[i], items[j]
        if spans_overlap(a.global_s + a.begin_s, a.global_s + a.end_s,
                         b.global_s + b.begin_s, b.global_s + b.end_s):
            pairs.append((i, j))
            offsets.append(a.global_start_s - b.global_start_s)
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2), np.asarray(offsets, dtype=np.float64)


# --------------------------------------------------------------------------- VCDB


@dataclass(frozen=True)
class CopyPair:
    """A ground-truth partial copy: ``a`` span of video ``video_a`` = ``b`` span of ``video_b``."""

    video_a: str
    video_b: str
    a_begin_s: float
    a_end_s: float
    b_begin_s: float
    b_end_s: float


def parse_hms(value: str) -> float:
    """``HH:MM:SS`` (any number of integer fields) -> seconds."""
    total = 0
    for field in value.strip().split(":"):
        if not field.isdigit():  # no signs, no spaces, no fractions
            raise ValueError(f"not a non-negative integer: {field!r}")
        total = total * 60 + int(field)
    return float(total)


def parse_vcdb_annotation(source: str | Path, text: str | None = None,
                          topic: str | None = None) -> list[CopyPair]:
    """Parse an original VCDB ``annotation/<topic>.txt``.

    Lines: ``<A file>,<B file>,<A begin>,<A end>,<B begin>,<B end>`` with times in
    ``HH:MM:SS``.  Video ids are ``<topic>/<file stem>``.  Self-lines (``A == B``,
    present in the real VCDB files) are dropped, as the converted-JSON reader does:
    copies inside one video are never searched, so they are not copy pairs.
    """
    name, lines = _lines(source, text)
    topic = topic if topic is not None else Path(str(source)).stem
    pairs = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 6:
            raise AnnotationError(f"{name}:{no}: expected 6 comma-separated fields "
                                  f"'A,B,Abegin,Aend,Bbegin,Bend', got {len(fields)}")
        try:
            times = [parse_hms(f) for f in fields[2:]]
        except ValueError:
            raise AnnotationError(f"{name}:{no}: times must be HH:MM:SS integers: "
                                  f"{line.strip()!r}") from None
        va, vb = (f"{topic}/{Path(f).stem}" for f in fields[:2])
        check_span(f"{name}:{no}", "A", times[0], times[1])
        check_span(f"{name}:{no}", "B", times[2], times[3])
        if va == vb:
            continue
        pairs.append(CopyPair(va, vb, *times))
    return pairs


def vcdb_segments(pairs: Iterable[CopyPair]) -> tuple[list[Segment], np.ndarray]:
    """Distinct annotated segments, sorted by (video, begin, end), and the ground-truth
    pairs as ``(g, 2)`` segment indices in annotation order."""
    pairs = list(pairs)
    segs = sorted({Segment(p.video_a, p.a_begin_s, p.a_end_s) for p in pairs}
                  | {Segment(p.video_b, p.b_begin_s, p.b_end_s) for p in pairs},
                  key=lambda s: (s.video, s.begin_s, s.end_s))
    index = {s: i for i, s in enumerate(segs)}
    gt = [(index[Segment(p.video_a, p.a_begin_s, p.a_end_s)],
           index[Segment(p.video_b, p.b_begin_s, p.b_end_s)]) for p in pairs]
    return segs, np.asarray(gt, dtype=np.int64).reshape(-1, 2)


# --------------------------------------------------------------------------- EVVE


@dataclass(frozen=True)
class EvveEntry:
    """One line of an EVVE ``annotations/<event>.dat``."""

    event: str
    name: str
    label: int
    split: str

    @property
    def key(self) -> str:
        return f"{self.event}/{self.name}"


def parse_evve_dat(source: str | Path, text: str | None = None,
                   event: str | None = None) -> list[EvveEntry]:
    """Parse ``<video name> <label> <split>`` lines; ``label`` in {1, 0, -1},
    ``split`` in {query, database}; event = file name before the first ``.``."""
    name, lines = _lines(source, text)
    event = event if event is not None else Path(str(source)).name.split(".")[0]
    out = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 3:
            raise AnnotationError(f"{name}:{no}: expected '<video> <label> <split>', "
                                  f"got {len(fields)} fields")
        try:
            label = int(fields[1])
        except ValueError:
            label = None
        if label not in (1, 0, -1):
            raise AnnotationError(f"{name}:{no}: label must be 1, 0 or -1, got {fields[1]!r}")
        if fields[2] not in ("query", "database"):
            raise AnnotationError(f"{name}:{no}: split must be 'query' or 'database', "
                                  f"got {fields[2]!r}")
        out.append(EvveEntry(event, fields[0], label, fields[2]))
    return out


def parse_vcdb_json(label_file: str | Path, pair_file: str | Path | None = None) -> list[CopyPair]:
    """The converted VCDB format: ``{"<A>-<B>": [[a_start, b_start, a_end, b_end], ...]}``
    (integer seconds).  Self-pairs are dropped (copies inside one video are never searched).
    A ``pair_file`` (a VCSL split, ``query_id,reference_id`` CSV) is checked row by row; the pairs it lists
    without boxes are the split's negatives (not copies)."""
    path = Path(label_file)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AnnotationError(f"{path}: annotation file not found") from None
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected an object of '<A>-<B>': [boxes]")
    pairs = []
    for key, boxes in data.items():
        a, sep, b = key.partition("-")
        if not sep or not a or not b:
            raise AnnotationError(f"{path}: key {key!r} is not '<videoA>-<videoB>'")
        if not isinstance(boxes, list):
            raise AnnotationError(f"{path}: {key}: expected a list of boxes")
        for box in boxes:
            if not (isinstance(box, list) and len(box) == 4
                    and all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)):
                raise AnnotationError(f"{path}: {key}: box {str(box)[:80]} is not [a_start, b_start, a_end, b_end] "
                                      f"(numbers of seconds)")
            try:
                a0, b0, a1, b1 = (float(v) for v in box)
            except OverflowError:
                raise AnnotationError(f"{path}: {key}: a box value is too large to be a time "
                                      f"(at most {MAX_TIME_S:g} s)") from None
            check_span(f"{path}: {key}", "A", a0, a1)
            check_span(f"{path}: {key}", "B", b0, b1)
            if a == b:
                continue
            pairs.append(CopyPair(a, b, a0, a1, b0, b1))
    if pair_file is not None:
        pf = Path(pair_file)
        with pf.open(newline="", encoding="utf-8") as f:
            for no, row in enumerate(csv.reader(f), 1):
                if no == 1 or not row:
                    continue
                if len(row) != 2 or not row[0].strip() or not row[1].strip():
                    raise AnnotationError(f"{pf}:{no}: expected 'query_id,reference_id'")
    return pairs


def _map_ids(pairs: list[CopyPair], ids: list[str]) -> list[CopyPair]:
    """Map annotation video names (stems, or topic/stem) onto corpus ids."""
    by_stem: dict[str, str] = {}
    for vid in ids:
        by_stem.setdefault(vid.rsplit("/", 1)[-1], vid)
    known = set(ids)

    def m(v: str) -> str | None:
        return v if v in known else by_stem.get(v.rsplit("/", 1)[-1])

    out = []
    for p in pairs:
        a, b = m(p.video_a), m(p.video_b)
        if a and b:
            out.append(CopyPair(a, b, p.a_begin_s, p.a_end_s, p.b_begin_s, p.b_end_s))
    return out
