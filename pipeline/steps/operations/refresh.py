"""Incremental corpus refresh: detect added/changed/removed videos, process only those,
update the index and publish a new version atomically (see ``pipeline.store.publish``).

Change detection against the last published manifest: a video is *added* when
its id is new, *removed* when its file is gone, *changed* when its size or
mtime differ **and** its content fingerprint differs (a touched but identical
file is not reprocessed).  New and changed videos are extracted into delta
shards (``features-<h>/delta-<version>-<k>``); a crashed refresh resumes them.
The index is updated by id (remove + add) while its type stays right for the
corpus size, and rebuilt from the stored mean frames otherwise.

A refresh is the batch steps (``pipeline.steps.features.extractor``: PCA, extraction, descriptors,
index writing, failure reports) applied to the delta, with paths from the same
:class:`pipeline.store.layout.Layout`; the command line and the ``RefreshCorpus``
Luigi task both call :func:`run_refresh`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from extractors.decode.pool import file_fingerprint
from index.faiss_index import (
    VideoIndex,
    delta_index,
    resolve_factory,
    stored_ids,
    stored_vectors,
    updatable,
    update_faiss,
)
from pipeline.config.load import Config
from pipeline.core.atomic import atomic_path, utc_now
from pipeline.core.errors import StepError
from pipeline.core.lock import exclusive_lock
from pipeline.steps.describe import describe_shard
from pipeline.steps.features.extract import Failure, extract_videos, listing_failures, write_failures
from pipeline.steps.features.extractor import configured_extractor
from pipeline.steps.features.fitting import ensure_fitted
from pipeline.steps.index import index_attrs, make_index
from pipeline.store import quarantine as qn
from pipeline.store.descriptors import DescriptorStore
from pipeline.store.features import read_pack, read_video_features
from pipeline.store.identities import listing_hash
from pipeline.store.index_files import IndexMeta, open_index, read_delta, read_meta, write_index, write_layered_index
from pipeline.store.layout import Layout
from pipeline.store.publish import (
    MANIFEST,
    PinnedError,
    check_version,
    current_version,
    damaged_files,
    new_version,
    pinned,
    read_manifest,
    versions,
)
from pipeline.store.quarantine import QuarantineEntry, load_quarantine, save_quarantine

log = logging.getLogger(__name__)


@dataclass
class RefreshResult:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)  # new failures of this run (now quarantined)
    quarantined: list[str] = field(default_factory=list)  # entries skipped: failed before, unchanged since
    version: Path | None = None
    published: bool = False
    index_update: str = ""
    seconds: float = 0.0

    def summary(self) -> str:
        state = f"published {self.version.name}" if self.published and self.version else "up to date"
        return (f"{state}: {len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed, "
                f"{len(self.failures)} failed, {len(self.quarantined)} quarantined"
                f"{', index ' + self.index_update if self.index_update else ''} "
                f"({self.seconds:.1f} s)")


def present(layout: Layout) -> list:
    """The listed videos that could be stat'ed (a file that vanished while listing is not there)."""
    return [v for v in layout.videos if not v.problem]


def inventory(layout: Layout) -> dict[str, dict]:
    """Every video now on disk: id -> {path, size, mtime} (from the layout's one listing)."""
    return {v.id: {"path": qn.key(v.path), "size": v.size, "mtime": v.mtime}  # the entry, not a target
            for v in present(layout)}


def is_up_to_date(layout: Layout) -> bool:
    """Cheap check (listing + stat only): the published manifest matches the files on disk."""
    m = read_manifest(current_version(layout.published_root))
    return (m.get("inventory_hash") == listing_hash(processable(layout))
            and m.get("config_hash") == layout.refresh_settings_hash())


def processable(layout: Layout, quarantine: dict[str, QuarantineEntry] | None = None) -> list:
    """The present videos that are not quarantined (unchanged since they failed)."""
    q = load_quarantine(layout.quarantine_file) if quarantine is None else quarantine
    return [v for v in present(layout) if not qn.holds(q, v.path, v.size, v.mtime)]


def _fingerprints(layout: Layout, inv: dict[str, dict], ids: list[str]) -> dict[str, str]:
    """Content fingerprints, cached by (size, mtime) in the work dir."""
    cache_path = layout.fingerprint_cache
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    out, added = {}, False
    for vid in ids:
        e = inv[vid]
        key = f"{e['path']}|{e['size']}|{e['mtime']}"
        if key not in cache:
            try:
                cache[key] = file_fingerprint(e["path"])
            except OSError:
                continue
            added = True
        out[vid] = cache[key]
    if added:  # a no-op refresh writes nothing
        with atomic_path(cache_path) as tmp:
            tmp.write_text(json.dumps(cache))
    return out


def run_refresh(layout: Layout, keep: int = 3, progress: bool = True) -> RefreshResult:
    """Process what changed since the published version and publish a new one (or nothing)."""
    t0 = time.perf_counter()
    cfg = layout.cfg
    root = layout.published_root
    log.info("%s", cfg.locations)
    layout.clean_work_root()
    held = pinned(root)
    if held is not None:
        raise PinnedError(f"{root}: current is held at {held.get('version')} by a rollback ({held.get('at')}); "
                          f"release it with: python -m pipeline rollback {cfg.selector or '--dataset ' + cfg.name} "
                          f"--release")
    cur = current_version(root)
    damage = damaged_files(cur) if cur is not None else {}
    if damage:  # never build on a damaged version: repair it from the features it references
        log.warning("%s is damaged (%s); the next version is rebuilt", cur.name, check_version(cur)[0])
    manifest = read_manifest(cur if MANIFEST not in damage else None)
    res = RefreshResult()
    quarantine = load_quarantine(layout.quarantine_file)
    before = dict(quarantine)
    retried: dict[str, QuarantineEntry] = {}
    inv = _screen(layout, quarantine, res, retried)
    old = manifest["videos"]
    cfg_hash = layout.refresh_settings_hash()
    if cur is not None and manifest.get("config_hash") != cfg_hash:
        log.warning("configuration changed since %s: every video is reprocessed", cur.name)
        old = {}
    res.added = sorted(v for v in inv if v not in old)
    res.removed = sorted(v for v in old if v not in inv)
    maybe = [v for v in inv if v in old and (inv[v]["size"], inv[v]["mtime"]) != (old[v]["size"], old[v]["mtime"])]
    fps = _fingerprints(layout, inv, maybe)
    res.changed = sorted(v for v in maybe if fps.get(v) != old[v]["fingerprint"])
    touched = [v for v in maybe if v not in res.changed]
    if not (res.added or res.removed or res.changed or damage) and cur is not None:
        # nothing new (touched-but-identical files are remembered in the fingerprint cache)
        _save_if_changed(layout, quarantine, before)
        res.version, res.seconds = cur, time.perf_counter() - t0
        return res

    number = int(versions(root)[-1].name[1:]) + 1 if versions(root) else 1
    todo = res.added + res.changed
    new_entries: dict[str, dict] = {}
    if todo:
        ensure_fitted(layout, progress)
        new_entries = _process(layout, todo, inv, number, res, progress)
        res.added = [v for v in res.added if v in new_entries]  # a new file that failed was not added
    by_path = {e["path"]: e for e in inv.values()}
    for f in res.failures:  # decoding failures join the quarantine
        e = by_path.get(qn.key(f.path), {"size": -1, "mtime": 0.0})
        quarantine[qn.key(f.path)] = qn.entry(f.path, e["size"], e["mtime"], f.stage, f.cause,
                                              retried.get(qn.key(f.path)))
    videos = {k: v for k, v in old.items() if k not in res.removed and k not in res.changed}
    for v in touched:  # identical content, new mtime: just record it
        videos[v] = {**old[v], "size": inv[v]["size"], "mtime": inv[v]["mtime"]}
    next_id = int(manifest.get("next_faiss_id", 0)) if old else 0  # (a damaged index is rebuilt below)
    for vid, e in new_entries.items():
        e["faiss_id"] = next_id
        next_id += 1
        videos[vid] = e
    update = _update_index(cfg, cur if old and not damage else None, videos, old, res, new_entries)
    res.index_update = update.how
    doc = {"dataset": cfg.name, "version": number, "created": utc_now(), "config_hash": cfg_hash,
           "inventory_hash": listing_hash(processable(layout, quarantine)),
           "next_faiss_id": next_id, "index": update.how, "quarantined": sorted(quarantine),
           "index_model": cfg.index.model, "videos": videos,
           "changes": {"added": res.added, "changed": res.changed, "removed": res.removed}}
    with new_version(root, keep) as stage:
        ids = sorted(videos, key=lambda k: videos[k]["faiss_id"])
        update.write(stage, ids, np.array([videos[k]["faiss_id"] for k in ids], dtype=np.int64),
                     {**index_attrs(cfg, update.factory, len(ids)), "trained_on": update.trained_on},
                     cfg.index.on_disk)
        (stage / MANIFEST).write_text(json.dumps(doc, indent=1), encoding="utf-8")
        write_failures(layout.failures_file(stage), res.failures)
    _save_if_changed(layout, quarantine, before)
    res.version, res.published = current_version(root), True
    res.seconds = time.perf_counter() - t0
    return res


def _screen(layout: Layout, quarantine: dict[str, QuarantineEntry], res: RefreshResult,
            retried: dict[str, QuarantineEntry]) -> dict[str, dict]:
    """The inventory of what can be processed: unreadable corpus entries (symlink loops, devices ...)
    become failures; entries quarantined and unchanged since are skipped, unless a transient failure's
    backoff has passed; changed ones are retried; entries gone from the corpus leave the quarantine.
    ``retried`` receives the entries taken out to be tried again."""
    listed = {qn.key(v.path) for v in layout.videos}
    for path in [p for p in quarantine if p not in listed]:
        del quarantine[path]
    unreadable = [v for v in layout.videos if v.problem]
    known = [v for v in unreadable if getattr(quarantine.get(qn.key(v.path)), "cause", None) == v.problem]
    res.quarantined += [qn.key(v.path) for v in known]
    res.failures += listing_failures([v for v in unreadable if v not in known])
    for f in res.failures:
        quarantine[qn.key(f.path)] = qn.entry(f.path, -1, 0.0, f.stage, f.cause)
    inv = {}
    for vid, e in inventory(layout).items():
        if qn.holds(quarantine, e["path"], e["size"], e["mtime"]):
            res.quarantined.append(e["path"])
            continue
        was = quarantine.pop(e["path"], None)
        if was is not None:
            retried[e["path"]] = was
            log.info("%s: retrying it (%s)", e["path"], "its last failure was transient"
                     if was.same_file(e["size"], e["mtime"]) else "changed since it failed")
        inv[vid] = e
    return inv


def _save_if_changed(layout: Layout, quarantine: dict[str, QuarantineEntry],
                     before: dict[str, QuarantineEntry]) -> None:
    if quarantine != before:
        save_quarantine(layout.quarantine_file, quarantine)


def _process(layout: Layout, todo: list[str], inv: dict[str, dict], number: int, res: RefreshResult,
             progress: bool) -> dict[str, dict]:
    """Extract + describe ``todo`` into delta shards; manifest entries of the videos that worked."""
    cfg = layout.cfg
    size = cfg.shards.size
    extractor = configured_extractor(layout)
    by_id = {v.id: v for v in layout.videos}
    entries: dict[str, dict] = {}
    for k in range(0, len(todo), size):
        chunk = todo[k:k + size]
        shard = layout.delta_shard_dir(number, k // size)
        r = extract_videos(layout, [by_id[v] for v in chunk], shard,
                                 lambda ids: _fingerprints(layout, inv, ids), progress, extractor)
        res.failures += r.failures
        files = {model: describe_shard(layout, shard, model) for model in cfg.models}
        pack = read_pack(shard)
        for row, (vid, fname, n) in enumerate(zip(pack.video_ids, pack.files, pack.frame_counts, strict=True)):
            fp = read_video_features(shard / fname).attrs.get("source_fingerprint")
            entries[vid] = {"path": inv[vid]["path"], "size": inv[vid]["size"], "mtime": inv[vid]["mtime"],
                            "fingerprint": fp, "features": str(shard / fname), "n_frames": int(n),
                            "descriptors": {m: [str(f), row] for m, f in files.items()}}
    return entries


def _mean_frames(cfg: Config, entries: dict[str, dict], ids: list[str]) -> np.ndarray:
    """``(len(ids), d)`` mean frames of ``index.model`` for ``ids``, read through the descriptor store
    (schema-checked, at the file and row each manifest entry records), as the batch index reads them."""
    if not ids:
        return np.zeros((0, 0), np.float32)
    got, means = DescriptorStore.from_manifest({v: entries[v] for v in ids}, cfg.index.model).mean_frames()
    pos = {v: i for i, v in enumerate(got)}
    return means[[pos[v] for v in ids]]


@dataclass
class Layers:
    """A layered index: ``base`` (the previous version's index, kept as it is), its delta (exact index of
    ``delta_ids`` under ``delta_faiss_ids``) and the base's removed ids."""

    base: IndexMeta
    delta: object
    delta_ids: list[str]
    delta_faiss_ids: np.ndarray
    removed: np.ndarray

    def write(self, directory: Path, attrs: dict) -> None:
        write_layered_index(directory, self.base, self.delta, self.delta_ids, self.delta_faiss_ids, self.removed,
                            attrs)


@dataclass
class IndexUpdate:
    """The refreshed index: ``index`` (a whole FAISS index to write), or ``layers`` over the previous
    version's base; ``how`` says which."""

    factory: str
    trained_on: int
    how: str
    index: object = None
    layers: Layers | None = None

    def write(self, directory: Path, ids: list[str], faiss_ids: np.ndarray, attrs: dict, on_disk: bool) -> None:
        if self.layers is not None:
            self.layers.write(directory, attrs)
        else:
            write_index(directory, self.index, ids, attrs, faiss_ids=faiss_ids, on_disk=on_disk)


def _update_index(cfg: Config, cur: Path | None, videos: dict[str, dict], old: dict[str, dict],
                  res: RefreshResult, new_entries: dict[str, dict]) -> IndexUpdate:
    """The new version's index.

    *Layered* while it can be (:func:`refresh_layers`): the previous base is kept as it is (hard-linked,
    never rewritten), the new videos go to an exact delta index and the removed ones to a list of
    removed ids, as long as the delta and the removed ids stay within ``index.delta_max`` of the base,
    the factory string is the same and an IVF base holds at most twice what it was trained on.
    Otherwise the layers are folded into the base by id (IVF and flat-code indexes kept in memory), or
    the index is rebuilt from the stored mean frames (no previous version, HNSW, lists on disk, another
    factory string).  ``how`` is ``<factory>:layered(+delta -removed)``, ``<factory>:updated(-r+a)``
    or ``<factory>:rebuilt(n)``."""
    n = len(videos)
    factory = resolve_factory(cfg.index.factory, n)
    gone = np.array([old[v]["faiss_id"] for v in res.removed + res.changed if v in old], np.int64)
    add_ids = list(new_entries)
    add_fids = np.array([new_entries[v]["faiss_id"] for v in add_ids], np.int64)
    vec = _mean_frames(cfg, new_entries, add_ids) if add_ids else np.zeros((0, 1), np.float32)
    meta = read_meta(cur) if cur is not None else None
    if meta is not None:
        prev_factory = str(meta.attrs.get("index_type", ""))
        trained_on = int(meta.attrs.get("trained_on", meta.attrs.get("n_videos", n)))
        drift = "IVF" in prev_factory and n > 2 * trained_on
        if prev_factory == factory and not drift:
            delta = read_delta(meta)
            layers = refresh_layers(meta, delta, gone, vec, add_ids, add_fids)
            if len(layers.delta_ids) + len(layers.removed) <= cfg.index.delta_max * len(meta.video_ids):
                return IndexUpdate(factory, trained_on, f"{factory}:layered(+{len(layers.delta_ids)} "
                                   f"-{len(layers.removed)})", layers=layers)
            if not meta.attrs.get("ivfdata_sha256"):
                prev = open_index(meta, delta)
                if updatable(prev.index):
                    index = update_faiss(prev.folded(), gone, vec, add_fids)
                    return IndexUpdate(factory, trained_on, f"{factory}:updated(-{len(gone)}+{len(add_ids)})",
                                       index=index)
    ids = sorted(videos, key=lambda k: videos[k]["faiss_id"])
    if not ids:
        raise StepError(f"dataset {cfg.name}: no video could be processed; nothing to publish")
    index, factory = make_index(cfg.index, _mean_frames(cfg, videos, ids),
                                np.array([videos[k]["faiss_id"] for k in ids], np.int64))
    return IndexUpdate(factory, n, f"{factory}:rebuilt({len(ids)})", index=index)


def refresh_layers(base: IndexMeta, delta: VideoIndex | None, gone: np.ndarray, vectors: np.ndarray,
                   ids: list[str], faiss_ids: np.ndarray) -> Layers:
    """The layers after a refresh: the previous delta less ``gone`` (FAISS ids removed or changed) plus
    ``vectors (n, d)`` of the new ``ids`` under ``faiss_ids``; the base's ids in ``gone`` join its removed ids."""
    removed = np.union1d(base.removed, gone[np.isin(gone, base.faiss_ids)]).astype(np.int64)
    if delta is not None:
        kept_vec, kept_fids = stored_vectors(delta.index), stored_ids(delta.index)
        assert kept_vec is not None and kept_fids is not None  # a delta is exact and id-mapped
        name = dict(zip(delta.faiss_ids.tolist(), delta.video_ids, strict=True))
        keep = ~np.isin(kept_fids, gone)
        kept_vec, kept_fids = kept_vec[keep], kept_fids[keep]
        kept_ids = [name[int(f)] for f in kept_fids]
    else:
        kept_vec, kept_fids, kept_ids = np.zeros((0, vectors.shape[1]), np.float32), np.zeros(0, np.int64), []
    all_ids = kept_ids + list(ids)
    all_fids = np.r_[kept_fids, np.asarray(faiss_ids, np.int64)].astype(np.int64)
    if not all_ids:
        return Layers(base, None, [], all_fids, removed)
    all_vec = np.vstack([kept_vec, vectors]) if len(ids) else kept_vec
    return Layers(base, delta_index(all_vec, all_fids), all_ids, all_fids, removed)


def locked_refresh(layout: Layout, keep: int = 3, progress: bool = True) -> RefreshResult:
    """:func:`run_refresh` under the dataset's refresh lock (raises ``LockHeldError`` naming the holder)."""

    with exclusive_lock(layout.refresh_lock):
        return run_refresh(layout, keep=keep, progress=progress)
