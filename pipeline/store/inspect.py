"""A readable summary of any artifact file or shard (``python -m pipeline inspect``).
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from extractors.runtime.timebase import FPS, frame_count_seconds
from pipeline.core.hdf5 import ArtifactError, open_h5
from pipeline.store.features import FEATURES_SCHEMA, PACK_NAME, PACK_SCHEMA
from pipeline.store.index_files import INDEX_FILE
from pipeline.store.index_files import META_FILE as INDEX_META


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def describe(path: str | os.PathLike, video: str | None = None) -> str:
    """Readable summary of any artifact file or shard directory (``python -m pipeline inspect``)."""
    p = Path(path)
    if p.is_dir() and (p / INDEX_META).is_file():  # an index directory: its metadata and its FAISS file
        text = describe(p / INDEX_META, video)
        faiss_file = p / INDEX_FILE
        size = _size(faiss_file.stat().st_size) if faiss_file.is_file() else "missing"
        return text if video is not None else f"{text}\n  {INDEX_FILE}: {size}"
    if p.is_dir():
        if (p / PACK_NAME).is_file() and video is None:
            return describe(p / PACK_NAME)
        files = sorted(x for x in p.glob("*.h5") if x.name != PACK_NAME)
        if video is not None:
            for x in files:
                with h5py.File(x, "r") as f:
                    if f.attrs.get("video_id") == video:
                        return describe(x)
            raise ArtifactError(f"{p}: no video {video!r} in this directory")
        lines = [f"{p}: directory with {len(files)} HDF5 file(s), no {PACK_NAME} (shard incomplete)"]
        lines += [f"  {x.name}  {_size(x.stat().st_size)}" for x in files]
        return "\n".join(lines)
    with open_h5(p) as f:
        if video is not None:
            return _describe_video_in(p, f, video)
        lines = [f"{p}  ({_size(p.stat().st_size)})"]
        lines.append(f"  schema: {f.attrs.get('schema', '?')} v{f.attrs.get('schema_version', '?')}")
        for k in sorted(f.attrs):
            if k not in ("schema", "schema_version"):
                lines.append(f"  @{k} = {_fmt_attr(f.attrs[k])}")

        def visit(name: str, obj) -> None:
            if isinstance(obj, h5py.Dataset):
                lines.append(f"  /{name}: shape {obj.shape} {obj.dtype}, "
                             f"{_size(obj.id.get_storage_size())} on disk")
                for k in sorted(obj.attrs):
                    lines.append(f"      @{k} = {_fmt_attr(obj.attrs[k])}")
            else:
                lines.append(f"  /{name}/ (group, {len(obj)} members)")

        f.visititems(visit)
        if f.attrs.get("schema") == PACK_SCHEMA and "video_ids" in f:
            ids, counts = f["video_ids"][()], f["frame_counts"][()]
            lines.append(f"  videos ({len(ids)}):")
            for vid, n in zip(ids[:50], counts[:50], strict=False):
                vid = vid.decode() if isinstance(vid, bytes) else vid
                lines.append(f"    {vid}: {int(n)} frames ({frame_count_seconds(int(n)):.1f} s at {FPS:g} fps)")
            if len(ids) > 50:
                lines.append(f"    ... {len(ids) - 50} more")
        if f.attrs.get("schema") == FEATURES_SCHEMA and "features" in f:
            lines += _feature_stats(f)
    return "\n".join(lines)


def _describe_video_in(p: Path, f: h5py.File, video: str) -> str:
    if f.attrs.get("schema") == PACK_SCHEMA:
        ids = [v.decode() if isinstance(v, bytes) else v for v in f["video_ids"][()]]
        if video not in ids:
            raise ArtifactError(f"{p}: no video {video!r} in this pack ({len(ids)} videos)")
        name = f["files"][()][ids.index(video)]
        name = name.decode() if isinstance(name, bytes) else name
        return describe(p.parent / name)
    if f.attrs.get("video_id") == video:
        return describe(p)
    if isinstance(f.get("video_ids"), h5py.Dataset):  # descriptors, index metadata: one row per video
        ids = [v.decode() if isinstance(v, bytes) else v for v in f["video_ids"][()]]
        if video not in ids:
            raise ArtifactError(f"{p}: no video {video!r} in this file ({len(ids)} videos)")
        row = ids.index(video)
        lines = [f"{p} :: {video} (row {row} of {len(ids)})"]
        for name, obj in f.items():
            if isinstance(obj, h5py.Dataset) and obj.shape[:1] == (len(ids),) and name != "video_ids":
                value = obj[row]
                if np.ndim(value) == 0:
                    lines.append(f"  {name}: {_fmt_attr(value)}")
                else:
                    value = np.asarray(value, dtype=np.float64)
                    lines.append(f"  {name}: shape {value.shape}, L2 norm {np.linalg.norm(value):.4f}")
        return "\n".join(lines)
    for key in ("videos", "descriptors"):
        if isinstance(f.get(key), h5py.Group) and video in f[key]:
            g = f[key][video]
            lines = [f"{p} :: {video}"]
            lines += [f"  @{k} = {_fmt_attr(v)}" for k, v in sorted(g.attrs.items())]
            lines += [f"  {n}: {o.shape} {o.dtype}" for n, o in g.items()
                      if isinstance(o, h5py.Dataset)]
            return "\n".join(lines)
    raise ArtifactError(f"{p}: no video {video!r} in this file")


def _feature_stats(f: h5py.File) -> list[str]:
    feats = f["features"][()].astype(np.float32)
    ts = f["timestamps"][()]
    norms = np.linalg.norm(feats, axis=1) if len(feats) else np.zeros(0)
    out = [f"  frames: {len(feats)}, {ts[-1] if len(ts) else 0:.3f} s last timestamp"]
    if len(feats):
        out.append(f"  feature norms: min {norms.min():.4f} max {norms.max():.4f}")
        out.append(f"  first timestamps (s): {np.round(ts[:8], 4).tolist()}")
    return out


def _fmt_attr(v) -> str:
    if isinstance(v, bytes):
        v = v.decode(errors="replace")
    if isinstance(v, np.ndarray):
        v = v.tolist()
    s = str(v)
    return s if len(s) < 200 else s[:197] + "..."
