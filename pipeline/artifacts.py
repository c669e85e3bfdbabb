"""HDF5 artifacts: schema, atomic writing, reading with schema checks, inspection.

Layout of a feature shard directory::

    <shard>/<video file>.h5   one file per video (written as soon as it is done)
    <shard>/_pack.h5          written last: ids, frame counts, mean-frame matrix

Every file carries ``schema`` and ``schema_version`` file attributes; readers
refuse any other schema or version with a one-line :class:`ArtifactError`.
Files are written to a temporary name in the same directory, fsynced and
renamed, so a crash never leaves a half-written artifact under a final name.
The file format is pinned to the HDF5 1.8 feature set (``libver=('earliest',
'v108')``) so older HDF5 tools can read it.  Artifacts carry no wall-clock
time, so the same inputs and settings give byte-identical files whichever
entry point (CLI or Luigi) made them; ``task_runs.log`` records when.
See ``docs/artifacts.md``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from extractors import failpoints
from extractors.timebase import FPS, frame_count_seconds
from pipeline.version import __version__

LIBVER = ("earliest", "v108")
FEATURES_SCHEMA = "videoalign/features"
PACK_SCHEMA = "videoalign/features-pack"
FEATURES_VERSION = 1
PACK_NAME = "_pack.h5"


class ArtifactError(ValueError):
    """An artifact that is missing, unreadable or of the wrong schema (message names the file)."""


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


TEMP_RE = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]+$")


def stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Temporary files left in ``directory`` by writers that are no longer running (e.g. killed)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        m = TEMP_RE.match(p.name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            out.append(p)
    return out


def clean_stale_temporaries(directory: str | os.PathLike) -> int:
    """Delete :func:`stale_temporaries`; returns how many."""
    n = 0
    for p in stale_temporaries(directory):
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                import shutil

                shutil.rmtree(p)
            else:
                p.unlink()
            n += 1
    return n


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success fsync it and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        failpoints.hit("artifact.before_rename")
        os.replace(tmp, path)
        failpoints.hit("artifact.after_rename")
        fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """An HDF5 file opened for writing that appears at ``path`` only once complete."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w", libver=LIBVER) as f:
        f.attrs["package_version"] = __version__
        yield f


def video_filename(video_id: str) -> str:
    """A safe, unique file name for a video id (readable stem + short hash)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", video_id)[-80:].strip("._") or "video"
    return f"{stem}-{hashlib.sha1(video_id.encode('utf-8')).hexdigest()[:8]}.h5"


def open_h5(p: Path) -> h5py.File:
    """Open an HDF5 file read-only, or raise a one-line :class:`ArtifactError`."""
    if not p.is_file():
        raise ArtifactError(f"{p}: file not found")
    try:
        return h5py.File(p, "r")
    except OSError as exc:
        raise ArtifactError(f"{p}: not a readable HDF5 file ({exc})") from None


def open_checked(path: str | os.PathLike, schema: str, version: int) -> h5py.File:
    """Open an artifact read-only after checking its schema and version."""
    p = Path(path)
    f = open_h5(p)
    found = f.attrs.get("schema")
    found_v = f.attrs.get("schema_version")
    if isinstance(found, bytes):
        found = found.decode("utf-8", "replace")
    if not (isinstance(found, str) and found == schema):
        f.close()
        raise ArtifactError(f"{p}: schema is {found!r}, expected {schema!r}")
    try:
        found_v = None if found_v is None else int(found_v)
    except (TypeError, ValueError):
        found_v = repr(found_v)
    if found_v is None or found_v != version:
        f.close()
        raise ArtifactError(f"{p}: {schema} schema version {found_v} is not supported by this "
                            f"version of the package (expected {version}); re-run extraction")
    return f


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a whole file (read in 4 MiB blocks): the checksums of published artifacts."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- fitted arrays


def save_fitted(path: str | os.PathLike, schema: str, version: int, arrays: dict[str, np.ndarray],
                provenance: dict, ident: tuple[str, str]) -> Path:
    """Write something fitted on a corpus (PCA, vocabulary) atomically: one dataset per array,
    ``provenance`` as JSON and an identity attribute ``ident = (name, value)``."""
    path = Path(path)
    with atomic_h5(path) as f:
        f.attrs["schema"] = schema
        f.attrs["schema_version"] = version
        for name, a in arrays.items():
            f.create_dataset(name, data=a)
        f.attrs["provenance"] = json.dumps(provenance, sort_keys=True)
        f.attrs[ident[0]] = ident[1]
    return path


def load_fitted(path: str | os.PathLike, schema: str, version: int, names: tuple[str, ...],
                what: str) -> tuple[list[np.ndarray], dict]:
    """The arrays ``names`` and the provenance of a file written by :func:`save_fitted`; any problem is
    one :class:`ArtifactError` naming the file (``what`` says what it should have been)."""
    try:
        with open_checked(path, schema, version) as f:
            return [f[n][()] for n in names], json.loads(f.attrs["provenance"])
    except ArtifactError:
        raise
    except (KeyError, OSError, ValueError, TypeError) as exc:
        raise ArtifactError(f"{path}: not a readable {what} ({type(exc).__name__}: {exc})") from None


# --------------------------------------------------------------------------- per-video features


@dataclass
class VideoFeatures:
    """One video's frame features.

    Attributes:
        features: ``(N, D)`` frame descriptors (float16 or float32, unit L2 norm).
        timestamps_s: ``(N,) float64`` seconds since the first frame.
        attrs: provenance (see ``docs/artifacts.md``).
    """

    video_id: str
    features: np.ndarray
    timestamps_s: np.ndarray
    attrs: dict = field(default_factory=dict)

    @property
    def mean_frame(self) -> np.ndarray:
        m = self.features.astype(np.float32).mean(axis=0)
        return m / max(float(np.linalg.norm(m)), 1e-12)


def write_video_features(path: str | os.PathLike, vf: VideoFeatures, dtype: str = "float16") -> Path:
    """Write one video's features atomically."""
    if dtype not in ("float16", "float32"):
        raise ValueError(f"feature dtype must be float16 or float32, got {dtype!r}")
    if vf.features.ndim != 2 or len(vf.features) != len(vf.timestamps_s):
        raise ValueError(f"{vf.video_id}: features {vf.features.shape} and timestamps "
                         f"{vf.timestamps_s.shape} do not match")
    with atomic_h5(path) as f:
        f.attrs["schema"] = FEATURES_SCHEMA
        f.attrs["schema_version"] = FEATURES_VERSION
        f.attrs["video_id"] = vf.video_id
        for k, v in vf.attrs.items():
            f.attrs[k] = v
        f.create_dataset("features", data=vf.features.astype(dtype))
        failpoints.hit("features.mid_write")
        ts = f.create_dataset("timestamps", data=np.asarray(vf.timestamps_s, dtype=np.float64))
        ts.attrs["units"] = "seconds since the first decoded frame"
    return Path(path)


def read_video_features(path: str | os.PathLike) -> VideoFeatures:
    """Read a per-video feature file (refuses other schemas/versions)."""
    with open_checked(path, FEATURES_SCHEMA, FEATURES_VERSION) as f:
        try:
            feats = f["features"][()]
            ts = f["timestamps"][()]
        except KeyError as exc:
            raise ArtifactError(f"{path}: missing dataset {exc}") from None
        attrs = {k: _plain(v) for k, v in f.attrs.items()}
    if feats.ndim != 2 or ts.shape != (feats.shape[0],):
        raise ArtifactError(f"{path}: features {feats.shape} and timestamps {ts.shape} do not match")
    return VideoFeatures(str(attrs.get("video_id", "")), feats, ts, attrs)


def _plain(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


# --------------------------------------------------------------------------- shard pack


@dataclass
class ShardPack:
    """Summary of a shard: ids, file names, frame counts and mean frames ``(n, D) float32``."""

    video_ids: list[str]
    files: list[str]
    frame_counts: np.ndarray
    mean_frames: np.ndarray
    attrs: dict = field(default_factory=dict)


def write_pack(shard_dir: str | os.PathLike, pack: ShardPack) -> Path:
    """Write ``_pack.h5`` atomically (the last file of a shard)."""
    path = Path(shard_dir) / PACK_NAME
    str_t = h5py.string_dtype("utf-8")
    with atomic_h5(path) as f:
        f.attrs["schema"] = PACK_SCHEMA
        f.attrs["schema_version"] = FEATURES_VERSION
        for k, v in pack.attrs.items():
            f.attrs[k] = v
        f.attrs["n_videos"] = len(pack.video_ids)
        f.create_dataset("video_ids", data=np.array(pack.video_ids, dtype=object), dtype=str_t)
        f.create_dataset("files", data=np.array(pack.files, dtype=object), dtype=str_t)
        f.create_dataset("frame_counts", data=np.asarray(pack.frame_counts, dtype=np.int64))
        mf = np.asarray(pack.mean_frames, dtype=np.float32)
        if mf.ndim != 2 or mf.shape[0] != len(pack.video_ids):
            raise ValueError(f"mean frames {mf.shape} do not match {len(pack.video_ids)} videos")
        f.create_dataset("mean_frames", data=mf)
    return path


def read_pack(shard_dir: str | os.PathLike) -> ShardPack:
    path = Path(shard_dir)
    if path.is_dir():
        path = path / PACK_NAME
    with open_checked(path, PACK_SCHEMA, FEATURES_VERSION) as f:
        return ShardPack([s.decode() if isinstance(s, bytes) else s for s in f["video_ids"][()]],
                         [s.decode() if isinstance(s, bytes) else s for s in f["files"][()]],
                         f["frame_counts"][()], f["mean_frames"][()],
                         {k: _plain(v) for k, v in f.attrs.items()})


# --------------------------------------------------------------------------- inspection


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def describe(path: str | os.PathLike, video: str | None = None) -> str:
    """Readable summary of any artifact file or shard directory (``python -m pipeline inspect``)."""
    p = Path(path)
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
    for key in ("videos", "descriptors"):
        if key in f and video in f[key]:
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
