"""Search results: ``results.h5`` (schema ``videoalign/search``), ``results.csv``, and the copies in the
VSC 2022 (``matches.csv``) and VCSL (``vcsl_pred.json``) formats.

One row per (query, match): score, offset (s, ``t_query - t_match``), rank, the copy decision and the
best segment's spans (s) when frame features located them.  ``results.h5`` also holds every segment
found (group ``segments``, scored, below the copy threshold too: what the segment metrics rank);
``matches.csv`` and ``vcsl_pred.json`` hold the segments of the pairs decided to be copies.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np

from index.rerank import Match
from pipeline.core.atomic import atomic_path
from pipeline.core.hdf5 import atomic_h5, open_checked
from pipeline.metrics.segments import Box
from pipeline.store.results.segments import VCSL_PREDICTIONS, VSC_MATCHES, write_vcsl_json, write_vsc_csv

SEARCH_SCHEMA = "videoalign/search"
SEARCH_VERSION = 3  # 2: raw_score (the score before per-query normalisation); 3: copy decision, segments
RESULTS_H5 = "results.h5"
RESULTS_CSV = "results.csv"

CSV_FIELDS = ["query", "match", "score", "offset_s", "rank", "query_start_s", "query_end_s",
              "match_start_s", "match_end_s", "raw_score", "copy", "segment_score", "draq"]
SEGMENT_FIELDS = ["query", "ref", "q0", "q1", "r0", "r1", "score"]


def write_results_h5(path: Path, rows: list[Match], attrs: dict, segments: list[Box],
                     copy_threshold: float) -> Path:
    """The rows and segments of a search (or of one query shard of it) in one HDF5 file, atomically."""
    str_t = h5py.string_dtype("utf-8")
    with atomic_h5(path) as f:
        f.attrs["schema"] = SEARCH_SCHEMA
        f.attrs["schema_version"] = SEARCH_VERSION
        for k, v in attrs.items():
            f.attrs[k] = v
        f.attrs["units"] = "offsets and spans in seconds; offset = t_query - t_match"
        for key in CSV_FIELDS:
            vals = [getattr(r, key) for r in rows]
            if key in ("query", "match"):
                f.create_dataset(key, data=np.array(vals, dtype=object), dtype=str_t)
            else:
                f.create_dataset(key, data=np.asarray(vals, dtype=np.int64 if key in ("rank", "copy")
                                                      else np.float64))
        g = f.create_group("segments")
        g.attrs["copy_threshold"] = copy_threshold
        for key, field in zip(SEGMENT_FIELDS, ("query", "ref", "q0", "q1", "r0", "r1", "score"), strict=True):
            vals = [getattr(b, field) for b in segments]
            if key in ("query", "ref"):
                g.create_dataset(key, data=np.array(vals, dtype=object), dtype=str_t)
            else:
                g.create_dataset(key, data=np.asarray(vals, dtype=np.float64))
    return Path(path)


def write_search_results(directory: Path, rows: list[Match], attrs: dict, segments: list[Box] | None = None,
                         copy_threshold: float = float("inf")) -> Path:
    """``results.h5``, the human-readable ``results.csv``, and the copies (segments scoring at least
    ``copy_threshold``) as ``matches.csv`` (VSC 2022) and ``vcsl_pred.json`` (all atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    segments = segments or []
    copies = [b for b in segments if b.score >= copy_threshold]
    write_vsc_csv(directory / VSC_MATCHES, copies)
    write_vcsl_json(directory / VCSL_PREDICTIONS, copies)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    w.writeheader()
    for r in rows:
        d = asdict(r)
        w.writerow({k: (f"{d[k]:.6g}" if k in ("score", "raw_score", "segment_score", "draq") else
                        int(d[k]) if k == "copy" else
                        f"{d[k]:.3f}" if isinstance(d[k], float) else d[k]) for k in CSV_FIELDS})
    with atomic_path(directory / RESULTS_CSV) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    write_results_h5(directory / RESULTS_H5, rows, attrs, segments, copy_threshold)
    return directory


def read_attrs(path: Path) -> dict:
    """The attributes of a results file."""
    with open_checked(path, SEARCH_SCHEMA, SEARCH_VERSION) as f:
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}


def read_search_results(directory: Path) -> list[Match]:
    return read_matches(Path(directory) / RESULTS_H5)


def read_matches(path: Path) -> list[Match]:
    """The rows of a results file (:func:`write_results_h5`)."""
    with open_checked(path, SEARCH_SCHEMA, SEARCH_VERSION) as f:
        cols = {k: f[k][()] for k in CSV_FIELDS}
    dec = [[s.decode() if isinstance(s, bytes) else s for s in cols[k]] for k in ("query", "match")]
    return [Match(dec[0][i], dec[1][i], float(cols["score"][i]), float(cols["offset_s"][i]),
                  int(cols["rank"][i]), float(cols["query_start_s"][i]), float(cols["query_end_s"][i]),
                  float(cols["match_start_s"][i]), float(cols["match_end_s"][i]), float(cols["raw_score"][i]),
                  bool(cols["copy"][i]), float(cols["segment_score"][i]), float(cols["draq"][i]))
            for i in range(len(dec[0]))]


def read_segments(directory: Path) -> tuple[list[Box], float]:
    """Every segment of a search (scored) and the copy threshold it was decided with."""
    return read_file_segments(Path(directory) / RESULTS_H5)


def read_file_segments(path: Path) -> tuple[list[Box], float]:
    """The segments of a results file (:func:`write_results_h5`) and its copy threshold."""
    with open_checked(path, SEARCH_SCHEMA, SEARCH_VERSION) as f:
        g = f["segments"]
        cols = {k: g[k][()] for k in SEGMENT_FIELDS}
        threshold = float(g.attrs["copy_threshold"])
    q = [s.decode() if isinstance(s, bytes) else s for s in cols["query"]]
    r = [s.decode() if isinstance(s, bytes) else s for s in cols["ref"]]
    return [Box(q[i], r[i], float(cols["q0"][i]), float(cols["q1"][i]), float(cols["r0"][i]), float(cols["r1"][i]),
                float(cols["score"][i])) for i in range(len(q))], threshold
