"""Search results: ``results.h5`` (schema ``videoalign/search``) and ``results.csv``.

One row per (query, match): score, offset (s, ``t_query - t_match``), rank and the
matching spans (s) when frame features located them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np

from index.search import Match
from pipeline.artifacts import atomic_h5, atomic_path, open_checked

SEARCH_SCHEMA = "videoalign/search"
SEARCH_VERSION = 2  # 2: raw_score (the score before per-query normalisation)
RESULTS_H5 = "results.h5"
RESULTS_CSV = "results.csv"

CSV_FIELDS = ["query", "match", "score", "offset_s", "rank", "query_start_s", "query_end_s",
              "match_start_s", "match_end_s", "raw_score"]


def write_search_results(directory: Path, rows: list[Match], attrs: dict) -> Path:
    """``results.h5`` and the human-readable ``results.csv`` (both atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    w.writeheader()
    for r in rows:
        d = asdict(r)
        w.writerow({k: (f"{d[k]:.6g}" if k in ("score", "raw_score") else
                        f"{d[k]:.3f}" if isinstance(d[k], float) else d[k]) for k in CSV_FIELDS})
    with atomic_path(directory / RESULTS_CSV) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    str_t = h5py.string_dtype("utf-8")
    with atomic_h5(directory / RESULTS_H5) as f:
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
                f.create_dataset(key, data=np.asarray(vals, dtype=np.int64 if key == "rank" else np.float64))
    return directory


def read_search_results(directory: Path) -> list[Match]:
    with open_checked(Path(directory) / RESULTS_H5, SEARCH_SCHEMA, SEARCH_VERSION) as f:
        cols = {k: f[k][()] for k in CSV_FIELDS}
    dec = [[s.decode() if isinstance(s, bytes) else s for s in cols[k]] for k in ("query", "match")]
    return [Match(dec[0][i], dec[1][i], float(cols["score"][i]), float(cols["offset_s"][i]),
                  int(cols["rank"][i]), float(cols["query_start_s"][i]), float(cols["query_end_s"][i]),
                  float(cols["match_start_s"][i]), float(cols["match_end_s"][i]), float(cols["raw_score"][i]))
            for i in range(len(dec[0]))]
