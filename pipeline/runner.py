"""The pipeline's steps as plain functions (the Luigi tasks in ``tasks/`` call these).

Output paths carry a short hash of the configuration sections that affect
them, so a changed setting never reuses stale outputs::

    <work_dir>/<dataset>/pca-<h>.h5
    <work_dir>/<dataset>/features-<h>/shard-00000/...        (+ _pack.h5)
    <work_dir>/<dataset>/descriptors/<model>-<h>/shard-00000.h5
    <work_dir>/<dataset>/index-<h>/{index.faiss, meta.h5}
    <work_dir>/<dataset>/search/<model>-<h>/{results.h5, results.csv}
    <reports_dir>/<dataset>/<model>/{report.json, report.md, report.html}
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from extractors.features import ExtractorSettings, FrameFeatureExtractor
from extractors.pca import PCAWhitening, load_pca, load_published, save_pca
from index.faiss_index import build_faiss, choose_index_type, read_index, write_index
from index.search import Match, aligned_segment, offset_range, rerank_with_expansion
from pipeline.artifacts import atomic_h5, atomic_path, read_pack, read_video_features
from pipeline.config import Config, ConfigError
from pipeline.corpus import Video, list_videos, shard_name, shard_videos
from pipeline.descriptors import DescriptorStore, build_model, compute_shard_descriptors
from pipeline.extract import ExtractionSettings, ShardResult, extract_shard, train_pca_on_videos

log = logging.getLogger(__name__)

SEARCH_SCHEMA = "videoalign/search"
SEARCH_VERSION = 1


# --------------------------------------------------------------------------- paths


def pca_path(cfg: Config) -> Path:
    return cfg.work_dir / f"pca-{cfg.features_hash()}.h5"


def features_dir(cfg: Config) -> Path:
    return cfg.work_dir / f"features-{cfg.features_hash()}"


def shard_label(cfg: Config, shard: int) -> str:
    """``shard-00000-<h>``: ``h`` hashes the shard's members (id, size, mtime), so a shard whose
    membership or files changed gets new outputs instead of reusing stale ones."""
    videos, stats = _listing(cfg)
    by_id = {v.id: st for v, st in zip(videos, stats, strict=True)}
    return f"{shard_name(shard)}-{_listing_hash(corpus_shards(cfg)[shard], by_id)}"


def feature_shard_dir(cfg: Config, shard: int) -> Path:
    return features_dir(cfg) / shard_label(cfg, shard)


def model_hash(cfg: Config, model: str) -> str:
    return cfg.section_hash(f"models.{model}", "dataset.max_length_s") + cfg.features_hash()[:4]


def descriptors_dir(cfg: Config, model: str) -> Path:
    return cfg.work_dir / "descriptors" / f"{model}-{model_hash(cfg, model)}"


def descriptor_path(cfg: Config, model: str, shard: int) -> Path:
    return descriptors_dir(cfg, model) / f"{shard_label(cfg, shard)}.h5"


def index_dir(cfg: Config) -> Path:
    h = cfg.section_hash("index") + model_hash(cfg, cfg.get("index.model"))[:4] + corpus_hash(cfg)[:6]
    return cfg.work_dir / f"index-{h}"


def search_dir(cfg: Config, model: str) -> Path:
    h = cfg.section_hash("search", "index") + model_hash(cfg, model)[:4] + corpus_hash(cfg)[:6]
    return cfg.work_dir / "search" / f"{model}-{h}"


def report_dir(cfg: Config, model: str) -> Path:
    return Path(cfg.get("reports_dir", "reports")) / cfg.name / model


# --------------------------------------------------------------------------- corpus


_LISTINGS: dict[str, tuple[list[Video], list[tuple[int, float]]]] = {}


def _listing(cfg: Config) -> tuple[list[Video], list[tuple[int, float]]]:
    """The corpus listing with (size, mtime) per video, taken once per process and config."""
    key = cfg.to_json()
    if key not in _LISTINGS:
        videos = list_videos(cfg)
        stats = []
        for v in videos:
            try:
                st = v.path.stat()
                stats.append((st.st_size, st.st_mtime))
            except OSError:
                stats.append((-1, 0.0))
        _LISTINGS[key] = (videos, stats)
    return _LISTINGS[key]


def _listing_hash(videos: list[Video], stats: dict[str, tuple[int, float]] | None = None) -> str:
    import hashlib

    if stats is None:
        stats = {}
    payload = "\n".join(f"{v.id}|{stats.get(v.id, (0, 0.0))}" for v in videos)
    return hashlib.sha256(payload.encode()).hexdigest()[:8]


def clear_listing_cache() -> None:
    """Forget the corpus listings taken by this process (after the corpus changed)."""
    _LISTINGS.clear()


def corpus_shards(cfg: Config) -> list[list[Video]]:
    videos, _ = _listing(cfg)
    return shard_videos(videos, int(cfg.get("shards.size", 500)))


def corpus_hash(cfg: Config) -> str:
    """Hash of the whole listing (ids, sizes, mtimes)."""
    videos, stats = _listing(cfg)
    return _listing_hash(videos, {v.id: st for v, st in zip(videos, stats, strict=True)})


def n_shards(cfg: Config) -> int:
    return len(corpus_shards(cfg))


# --------------------------------------------------------------------------- features


def extraction_settings(cfg: Config, progress: bool = True) -> ExtractionSettings:
    f = cfg["features"]
    return ExtractionSettings(image_area=int(f["image_area"]), fps=float(f["fps"]),
                              feature_dtype=str(f["dtype"]), batch_size=int(f["batch_size"]),
                              decode_workers=int(f["decode_workers"]),
                              torch_threads=int(f["torch_threads"]), max_pixels=int(f["max_pixels"]),
                              video_time_limit_s=float(f["video_time_limit_s"]),
                              worker_memory_mb=int(f["worker_memory_mb"]), hwaccel=str(f["hwaccel"]),
                              progress=progress)


def make_extractor(cfg: Config, pca: PCAWhitening | None) -> FrameFeatureExtractor:
    f = cfg["features"]
    settings = ExtractorSettings(level=int(f["level"]), weights=str(f["weights"]),
                                 download_weights=bool(f["download_weights"]), seed=int(f["seed"]),
                                 device=str(f["device"]), precision=str(f["precision"]))
    return FrameFeatureExtractor(settings, pca)


def pca_needs_training(cfg: Config) -> bool:
    return str(cfg.get("features.pca", "none")) == "trained"


def load_configured_pca(cfg: Config) -> PCAWhitening | None:
    """The PCA the config asks for: none, trained (TrainPCA's output), a published prefix or a file."""
    spec = str(cfg.get("features.pca", "none"))
    if spec in ("none", "", "None"):
        return None
    if spec == "trained":
        return load_pca(pca_path(cfg))
    if spec.endswith(".h5"):
        return load_pca(spec)
    return load_published(spec, int(cfg.get("features.level", 29)))


def run_train_pca(cfg: Config) -> Path:
    """Train the corpus PCA (``features.pca: trained``) and save it with its provenance."""
    ex = make_extractor(cfg, None)
    videos = list_videos(cfg)
    pca = train_pca_on_videos([v.path for v in videos], ex, extraction_settings(cfg),
                              frames_per_video=int(cfg.get("features.pca_frames_per_video", 100)),
                              provenance={"dataset": cfg.name, "root": str(cfg.root)})
    return save_pca(pca, pca_path(cfg))


def run_extract_shard(cfg: Config, shard: int, progress: bool = True) -> ShardResult:
    """Extract one shard; features computed earlier in another shard (the corpus grew and
    shard membership shifted) are reused when their source content is unchanged."""
    from extractors.decode_pool import file_fingerprint
    from pipeline.extract import reuse_earlier_features

    videos = corpus_shards(cfg)[shard]
    path_of = {v.id: v.path for v in videos}
    ex = make_extractor(cfg, load_configured_pca(cfg))
    out = feature_shard_dir(cfg, shard)
    settings = extraction_settings(cfg, progress)
    reuse_earlier_features(list(path_of), out, features_dir(cfg), ex, settings,
                           lambda ids: {v: file_fingerprint(path_of[v]) for v in ids})
    res = extract_shard([(v.id, v.path) for v in videos], out, ex, settings, {"dataset": cfg.name})
    write_failures(out, res)
    return res


def record_run(cfg: Config, task: str, **params: object) -> None:
    """Append one line per executed task to ``<work>/task_runs.log`` (who ran what, when)."""
    import os
    import socket

    from pipeline.artifacts import utc_now

    line = json.dumps({"task": task, **params, "host": socket.gethostname(), "pid": os.getpid(),
                       "time": utc_now()}) + "\n"
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(cfg.work_dir / "task_runs.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())  # one small O_APPEND write: atomic across processes
    finally:
        os.close(fd)


def write_failures(shard_dir: Path, res: ShardResult) -> Path:
    """``failures.csv`` (file, stage, cause) beside the shard's pack."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["file", "stage", "cause"])
    for f in res.failures:
        w.writerow([f.path, f.stage, f.cause])
    out = shard_dir / "failures.csv"
    with atomic_path(out) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    return out


def run_descriptors(cfg: Config, shard: int, model: str) -> Path:
    return compute_shard_descriptors(feature_shard_dir(cfg, shard), descriptor_path(cfg, model, shard),
                                     model, cfg.get(f"models.{model}"), cfg.get("dataset.max_length_s"))


def descriptor_store(cfg: Config, model: str) -> DescriptorStore:
    return DescriptorStore([descriptor_path(cfg, model, s) for s in range(n_shards(cfg))])


# --------------------------------------------------------------------------- index


def run_build_index(cfg: Config) -> Path:
    model = cfg.get("index.model")
    store = descriptor_store(cfg, model)
    ids, vectors = store.mean_frames()
    if not ids:
        raise ConfigError(f"dataset {cfg.name}: no video has features; nothing to index")
    kind = choose_index_type(len(ids), cfg.get("index.type", "auto"), int(cfg.get("index.ivf_threshold")))
    index = build_faiss(vectors, kind)
    attrs = {"index_type": kind, "model": model, "dataset": cfg.name, "config": cfg.to_json(),
             "config_source": cfg.source, "n_videos": len(ids)}
    log.info("index %s: %d videos, %s", cfg.name, len(ids), kind)
    return write_index(index_dir(cfg), index, ids, attrs)


# --------------------------------------------------------------------------- search


class FeatureLookup:
    """Frame features by video id (through the shard packs, or a published manifest)."""

    def __init__(self, cfg: Config, manifest: dict | None = None) -> None:
        self.where: dict[str, Path] = {}
        if manifest is not None:
            self.where = {vid: Path(e["features"]) for vid, e in manifest["videos"].items()}
            return
        for s in range(n_shards(cfg)):
            d = feature_shard_dir(cfg, s)
            try:
                pack = read_pack(d)
            except Exception:  # a shard without pack has no usable features
                continue
            for vid, name in zip(pack.video_ids, pack.files, strict=True):
                self.where[vid] = d / name

    def get(self, vid: str):
        return read_video_features(self.where[vid])


def search_queries(cfg: Config, store: DescriptorStore) -> tuple[list[str], set[str] | None]:
    """Queries and (for EVVE) the database restriction."""
    from pipeline.corpus import load_ground_truth

    kind = cfg.get("dataset.kind")
    if kind == "evve":
        gt = load_ground_truth(cfg, list_videos(cfg))
        return [q for q in gt.queries if q in store], set(gt.database)
    return store.ids, None


def configured_model(cfg: Config, model_name: str):
    """The temporal model ``models.<model_name>`` of the config."""
    return build_model(cfg.get(f"models.{model_name}"), cfg.get("dataset.max_length_s"))


def search_one(cfg: Config, model, query_id: str, query_fv: torch.Tensor,
               query_mean: np.ndarray, q_feats, index, store: DescriptorStore,
               features: FeatureLookup | None, allowed: set[str] | None) -> list[Match]:
    """FAISS candidates -> offset re-ranking with ``model`` -> segments, for one query."""
    s = cfg["search"]
    _, names = index.search(query_mean[None], int(s["top_k"]) + 1, int(cfg.get("index.nprobe", 32)))
    cands = [c for c in names[0] if c != query_id and (allowed is None or c in allowed) and c in store]
    if not cands:
        return []
    q_frames = len(q_feats.features) if q_feats is not None else store.n_frames.get(query_id, 1)
    offsets = offset_range(model, q_frames, max(store.n_frames[c] for c in cands))
    scores, off_s = rerank_with_expansion(model, query_fv, store.get(cands), offsets,
                                          str(s["query_expansion"]), int(s["qe_n1"]), int(s["qe_n2"]),
                                          str(s["qe_mode"]))
    order = np.argsort(-scores, kind="stable")[: int(s["keep"])]
    out = []
    for rank, i in enumerate(order):
        spans = (float("nan"),) * 4
        if features is not None and q_feats is not None and cands[i] in features.where:
            m = features.get(cands[i])
            spans = aligned_segment(q_feats.features, q_feats.timestamps_s, m.features, m.timestamps_s,
                                    float(off_s[i]), float(s["segment_threshold"]),
                                    float(s["segment_max_gap_s"]))
        out.append(Match(query_id, cands[i], float(scores[i]), round(float(off_s[i]), 6), rank + 1, *spans))
    return out


def run_search(cfg: Config, model_name: str, progress: bool = True) -> Path:
    idx = read_index(index_dir(cfg))
    store = descriptor_store(cfg, model_name)
    index_model = cfg.get("index.model")
    index_store = store if index_model == model_name else descriptor_store(cfg, index_model)
    ids, means = index_store.mean_frames()
    mean_of = dict(zip(ids, means, strict=True))
    features = FeatureLookup(cfg)
    queries, allowed = search_queries(cfg, store)
    model = configured_model(cfg, model_name)
    rows: list[Match] = []
    for q in tqdm(queries, unit="query", desc=f"search {model_name}", disable=not progress):
        qf = features.get(q) if q in features.where else None
        rows += search_one(cfg, model, q, store.get([q]), mean_of[q], qf, idx, store, features, allowed)
    return write_search_results(search_dir(cfg, model_name), rows, {"model": model_name,
                                                                    "dataset": cfg.name,
                                                                    "n_queries": len(queries)})


CSV_FIELDS = ["query", "match", "score", "offset_s", "rank", "query_start_s", "query_end_s",
              "match_start_s", "match_end_s"]


def write_search_results(directory: Path, rows: list[Match], attrs: dict) -> Path:
    """``results.h5`` and the human-readable ``results.csv`` (both atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    w.writeheader()
    for r in rows:
        d = asdict(r)
        w.writerow({k: (f"{d[k]:.3f}" if isinstance(d[k], float) and k != "score" else
                        f"{d[k]:.6g}" if k == "score" else d[k]) for k in CSV_FIELDS})
    with atomic_path(directory / "results.csv") as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    str_t = h5py.string_dtype("utf-8")
    with atomic_h5(directory / "results.h5") as f:
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
    from pipeline.artifacts import open_checked

    with open_checked(Path(directory) / "results.h5", SEARCH_SCHEMA, SEARCH_VERSION) as f:
        cols = {k: f[k][()] for k in CSV_FIELDS}
    dec = [[s.decode() if isinstance(s, bytes) else s for s in cols[k]] for k in ("query", "match")]
    return [Match(dec[0][i], dec[1][i], float(cols["score"][i]), float(cols["offset_s"][i]),
                  int(cols["rank"][i]), float(cols["query_start_s"][i]), float(cols["query_end_s"][i]),
                  float(cols["match_start_s"][i]), float(cols["match_end_s"][i]))
            for i in range(len(dec[0]))]


def new_video_features(cfg: Config, path: Path):
    """Frame features of a video outside the corpus (``python -m pipeline query``)."""
    from extractors.decode import decode_video, to_model_input
    from pipeline.artifacts import VideoFeatures

    ex = make_extractor(cfg, load_configured_pca(cfg))
    d = decode_video(path, int(cfg.get("features.image_area")), float(cfg.get("features.fps")))
    feats = []
    bs = int(cfg.get("features.batch_size", 32))
    for b0 in range(0, len(d.frames), bs):
        feats.append(ex(torch.from_numpy(to_model_input(d.frames[b0:b0 + bs]))).numpy())
    return VideoFeatures(str(path), np.concatenate(feats), d.timestamps_s, {})


def config_from_index(directory: Path) -> Config:
    idx = read_index(directory)
    return Config(json.loads(idx.attrs["config"]), str(idx.attrs.get("config_source", directory)))


# --------------------------------------------------------------------------- evaluation


def run_evaluate(cfg: Config, model_name: str) -> Path:
    from pipeline.evaluate import evaluate
    from pipeline.report import write_report

    rows = read_search_results(search_dir(cfg, model_name))
    store = descriptor_store(cfg, model_name)
    durations = {v: n / 15.0 for v, n in store.n_frames.items()}
    result = evaluate(cfg, model_name, rows, FeatureLookup(cfg), durations, store)
    result["metrics"] = {k: (float(v) if isinstance(v, np.floating) else v) for k, v in result["metrics"].items()}
    result["search_results"] = str(search_dir(cfg, model_name))
    return write_report(report_dir(cfg, model_name), cfg.name, model_name, result, cfg.data)
