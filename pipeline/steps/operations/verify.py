"""``python -m pipeline verify``: check every artifact and say exactly what is wrong.

Checks: schema and version of every HDF5 artifact; shapes and dtypes; unit
norms and increasing timestamps of features; that each shard pack lists
existing files with the right frame counts; descriptor files; index/metadata
consistency; every published version's manifest against its index and the
files it references; the ``current`` pointer; and temporary files left by
an interrupted writer.  With ``--fingerprints`` semantics built in: a feature
file whose source still exists with the same size and mtime must match its
recorded content fingerprint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from extractors.decode.pool import file_fingerprint
from pipeline.config.load import is_config_path, load_config
from pipeline.config.schema import ConfigError
from pipeline.core.atomic import stale_temporaries
from pipeline.core.hdf5 import ArtifactError
from pipeline.store.features import FEATURES_SCHEMA, PACK_NAME, read_pack, read_video_features
from pipeline.store.fitted.thresholds import read_thresholds
from pipeline.store.index_files import IndexFileError, read_index
from pipeline.store.publish import CHECKSUMS, check_version, never_current, pinned, versions
from pipeline.store.quarantine import describe, load_quarantine, needs_operator


def _check_features(p: Path, problems: list[str]) -> None:
    try:
        vf = read_video_features(p)
    except ArtifactError as exc:
        problems.append(str(exc))
        return
    if vf.features.ndim != 2 or vf.features.shape[0] == 0:
        problems.append(f"{p}: no frames" if vf.features.ndim == 2 else
                        f"{p}: features have shape {vf.features.shape}, expected (frames, dimensions)")
        return
    x = vf.features.astype(np.float32)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        problems.append(f"{p}: {int((~finite).sum())} frame descriptor(s) are not finite (NaN or infinity)")
    norms = np.linalg.norm(x[finite], axis=1)
    wrong = (np.abs(norms - 1) >= 2e-2) & (norms > 1e-6)  # zero vectors: featureless frames (e.g. PDQF, uniform)
    if wrong.any():
        problems.append(f"{p}: {int(wrong.sum())} frame descriptor(s) are neither unit-norm nor zero (featureless)")
    if np.any(np.diff(vf.timestamps_s) < 0):
        problems.append(f"{p}: timestamps decrease")
    src = vf.attrs.get("source_path")
    if src and os.path.isfile(src):
        st = os.stat(src)
        same_stat = st.st_size == vf.attrs.get("source_size")
        same_stat = same_stat and abs(st.st_mtime - float(vf.attrs.get("source_mtime", 0))) < 1e-3
        if same_stat and file_fingerprint(src) != vf.attrs.get("source_fingerprint"):
            problems.append(f"{p}: source {src} has the recorded size and mtime but different content "
                            f"(fingerprint mismatch)")


def _check_pack(shard: Path, problems: list[str], reported: set[Path]) -> int:
    """Check a shard's pack against its feature files; files found wrong go into ``reported``."""
    try:
        pack = read_pack(shard)
    except ArtifactError as exc:
        problems.append(str(exc))
        return 1
    n = 1
    dim = pack.mean_frames.shape[1] if pack.mean_frames.ndim == 2 else None
    for vid, name, count in zip(pack.video_ids, pack.files, pack.frame_counts, strict=True):
        f = shard / name
        if not f.is_file():
            problems.append(f"{shard / PACK_NAME}: lists {vid!r} but {name} is missing")
            continue
        try:
            with h5py.File(f, "r") as h:
                shape = h["features"].shape
            wrong = [f"{shape[0]} frames but the pack says {count}"] if shape[0] != count else []
            if dim is not None and len(shape) == 2 and shape[1] != dim:
                wrong.append(f"{shape[1]}-dimensional features in a shard of {dim}-dimensional ones "
                             f"(damaged, or from another configuration)")
        except (OSError, KeyError, TypeError, ValueError) as exc:
            wrong = [f"unreadable HDF5 ({type(exc).__name__}: {exc})"]
        problems += [f"{f}: {w}" for w in wrong]
        if wrong:
            reported.add(f)
        n += 1
    if pack.mean_frames.shape[0] != len(pack.video_ids):
        problems.append(f"{shard / PACK_NAME}: {pack.mean_frames.shape[0]} mean frames for "
                        f"{len(pack.video_ids)} videos")
    return n


def _check_h5(p: Path, problems: list[str]) -> None:
    try:
        with h5py.File(p, "r") as f:
            schema = f.attrs.get("schema")
            if isinstance(schema, bytes):
                schema = schema.decode("utf-8", "replace")
            if schema is None:
                problems.append(f"{p}: no schema attribute (not a pipeline artifact)")
                return
            if not isinstance(schema, str):
                problems.append(f"{p}: its schema attribute is not a string ({type(schema).__name__})")
                return
            if not schema.startswith("videoalign/"):
                problems.append(f"{p}: unknown schema {schema!r} (not a pipeline artifact)")
                return
            if schema == "videoalign/descriptors":
                ids, d = f["video_ids"].shape[0], f["descriptors"]
                if d.shape[0] != ids or f["mean_frames"].shape[0] != ids or f["n_frames"].shape[0] != ids:
                    problems.append(f"{p}: {ids} ids but descriptors {d.shape}, mean frames "
                                    f"{f['mean_frames'].shape}, counts {f['n_frames'].shape}")
                elif ids and not np.all(np.isfinite(d[()])):
                    problems.append(f"{p}: non-finite descriptor values")
                elif "scales" in f and (f["scales"].shape != d.shape[:-1] or not np.all(np.isfinite(f["scales"][()]))):
                    problems.append(f"{p}: int8 scales {f['scales'].shape} do not fit descriptors {d.shape} "
                                    f"or are not finite")
            if schema == "videoalign/segment-frames":
                start, rows = f["start"][()], f["features"].shape[0]
                if (len(start) != f["video_ids"].shape[0] + 1 or start[0] != 0 or start[-1] != rows
                        or np.any(np.diff(start) < 0) or f["times_s"].shape[0] != rows):
                    problems.append(f"{p}: its row table does not match its {rows} frame rows")
    except OSError as exc:
        problems.append(f"{p}: unreadable HDF5 ({exc})")
        return
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        problems.append(f"{p}: damaged {schema} file ({type(exc).__name__}: {exc})")
        return
    if schema == FEATURES_SCHEMA:
        _check_features(p, problems)


def _check_index(d: Path, problems: list[str]) -> None:
    try:
        idx = read_index(d)
    except (IndexFileError, ArtifactError) as exc:
        problems.append(str(exc))
        return
    mf = d / "manifest.json"
    if mf.is_file():
        try:
            m = json.loads(mf.read_text(encoding="utf-8"))
            vids = dict(m.get("videos", {}))
        except (ValueError, TypeError, AttributeError) as exc:
            problems.append(f"{mf}: unreadable manifest ({type(exc).__name__})")
            return
        live_ids, live_fids = idx.live()
        if sorted(vids) != sorted(live_ids):
            problems.append(f"{mf}: manifest lists {len(vids)} videos, the index {len(live_ids)}")
        held = set(live_fids.tolist())
        for vid, e in vids.items():
            if int(e["faiss_id"]) not in held:
                problems.append(f"{mf}: {vid!r} has FAISS id {e['faiss_id']} which the index does not hold")
            for path in [e.get("features")] + [v[0] for v in e.get("descriptors", {}).values()]:
                if path and not Path(path).is_file():
                    problems.append(f"{mf}: {vid!r} references missing file {path}")


def verify_path(target: Path) -> tuple[list[str], int]:
    problems: list[str] = []
    reported: set[Path] = set()  # files a shard check found wrong: not checked (and reported) again
    checked = 0
    if target.is_file():
        _check_h5(target, problems)
        return problems, 1
    if not target.is_dir():
        return [f"{target}: no such file or directory"], 0
    # every directory once: not again through a link (``published/current``)
    for d in [target, *[p for p in target.rglob("*") if p.is_dir() and not p.is_symlink()]]:
        for t in stale_temporaries(d):
            problems.append(f"{t}: half-written temporary left by an interrupted run (re-run to clean)")
        if (d / PACK_NAME).is_file():
            checked += _check_pack(d, problems, reported)
        if (d / "meta.h5").is_file():
            checked += 1
            if not (d.parent.name == "published" and check_version(d)):  # its checksum lines say it already
                _check_index(d, problems)
        if d.name == "published":
            for v in versions(d):
                problems.extend(check_version(v))
            for v in never_current(d):
                problems.append(f"{v}: a complete version that was never made current (its publish was "
                                f"interrupted); not a rollback target, the next publish removes it")
            link = d / "current"
            if not link.is_symlink():
                problems.append(f"{link}: missing (nothing published)")
            elif not link.resolve().is_dir():
                problems.append(f"{link}: points at {os.readlink(link)}, which does not exist")
    for p in target.rglob("*.h5"):
        if p.name not in (PACK_NAME, "meta.h5") and not p.name.startswith(".") and p not in reported:
            _check_h5(p, problems)
            checked += 1
    for p in target.rglob("thresholds-*.json"):  # the calibrated copy thresholds
        checked += 1
        try:
            read_thresholds(p)
        except ArtifactError as exc:
            problems.append(str(exc))
    return problems, checked


def _resolve(target: str, overrides: str) -> Path:
    """An artifact path as given, or the work directory of a dataset (by config name or YAML file);
    raises ConfigError for a dataset that cannot be configured."""

    p = Path(target)
    if p.exists() and not (p.is_file() and is_config_path(target)):
        return p
    return load_config(target, overrides).work_dir


def verify(target: str, overrides: str = "") -> tuple[list[str], int]:
    """Verify a dataset's work directory (by config name or YAML file) or one artifact path."""

    try:
        p = _resolve(target, overrides)
    except ConfigError as exc:
        return [str(exc)], 0
    if not p.exists():
        return [f"{p}: no work directory for dataset {p.name} (nothing built yet)"], 0
    return verify_path(p)


def held_files(target: str, overrides: str = "") -> list[str]:
    """Corpus files quarantined for good (a permanent cause, or transient ones that kept failing): an
    operator must replace, repair or remove them."""
    try:
        p = _resolve(target, overrides)
    except ConfigError:
        return []
    if not p.is_dir():
        return []
    files = [p / "quarantine.json"] if (p / "quarantine.json").is_file() else sorted(p.rglob("quarantine.json"))
    return [e.path for f in files for e in needs_operator(load_quarantine(f))]


def notes(target: str, overrides: str = "") -> list[str]:
    """What an operator should know beside damage: quarantined corpus entries, a rollback holding
    ``current``, versions published before checksums were kept."""

    try:
        p = _resolve(target, overrides)
    except ConfigError:
        return []
    if not p.is_dir():
        return []
    files = [p / "quarantine.json"] if (p / "quarantine.json").is_file() else sorted(p.rglob("quarantine.json"))
    out = [line for f in files for line in describe(load_quarantine(f))]
    for root in [p] if p.name == "published" else sorted(p.rglob("published")):
        held = pinned(root)
        if held is not None:
            out.append(f"{root}: current is held at {held.get('version')} by a rollback ({held.get('at')}); "
                       f"refreshes publish nothing until 'rollback --release'")
        out += [f"{v}: published before checksums were kept (damage cannot be detected; the next publish "
                f"adds them)" for v in versions(root) if not (v / CHECKSUMS).is_file()]
    return out
