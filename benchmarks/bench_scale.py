"""Scale: the stores, the index and one query at corpus scale, on a synthetic corpus of N videos.

    python benchmarks/bench_scale.py --videos 10000 --json scale-10k.json
    python benchmarks/bench_scale.py --videos 100000 --dir /data/scale-100k --queries 200

Builds the corpus in the project's own stores, streamed shard by shard (never the corpus in memory):

* durations log-normal (median 5 min, clipped to 30 s .. 20 min);
* each video a sequence of scenes (a new 256-d scene vector every 2-10 s, a genre direction shared
  by 1/16 of the corpus, per-frame noise), sampled as the copy-segment stage reads it
  (every ``round(15 / segments.fps)`` frames of the 15-fps stream);
* 1 % planted copies: half near-duplicates of a whole source (re-noised, ends trimmed), half partial
  copies (a 30-90 s excerpt of a source inside other material);
* descriptors: the configured re-ranking model (TMK LAMV) on those frames, written with
  ``stores.descriptors``; the frames written with ``stores.segment_frames`` (both int8 by default).

Then, each in its own process (so its peak memory is its own): the FAISS index as ``index.factory:
auto`` picks it (time, peak RSS); ``--queries`` queries through ``search_one``, the pipeline's own
per-query path (FAISS top 100 -> re-ranking of the 100 -> copy segments of the kept 20), p50/p95
latency and peak RSS; recall@100 of the planted copies against exact (flat) search of the same
vectors; a refresh adding 1 % new videos against the full index build (read the mean frames, build,
write): the index-side time of each, for the refresh as it runs within ``index.delta_max`` (a delta
index beside the unchanged base) and as it runs past it (the layers merged, the whole index written).

Prints a table and the ratios against the targets; ``--json`` writes the figures.  Reuses the
generated shards in ``--dir`` (delete it to regenerate).
"""

# ruff: noqa: E402  (the repository root goes on sys.path first: run as a script)
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import torch

from extractors.runtime.timebase import FPS
from index.faiss_backend import load_faiss
from index.faiss_index import VideoIndex, update_faiss
from index.localise import SampledFrames
from pipeline.config.load import Config, load_config
from pipeline.core.atomic import file_sha256
from pipeline.steps.index import make_index, search_params
from pipeline.steps.operations.refresh import refresh_layers
from pipeline.steps.search import search_one
from pipeline.store.descriptors import (
    DescribedVideos,
    DescriptorStore,
    describe_video,
    mean_frame_component,
    write_descriptors,
)
from pipeline.store.index_files import INDEX_FILE, read_index, read_meta, write_index
from pipeline.store.model_types import build_model
from pipeline.store.segment_frames import SegmentFrames, write_sampled

log = logging.getLogger("bench_scale")

DIM = 256
SHARD = 1000
GENRES = 16
COPY_SHARE = 0.01
TARGETS = {"query_p95_s": 1.0, "peak_rss_bytes": 8e9, "recall_at_100": 0.98,
           "descriptor_bytes_per_video": 32 * 1024, "frame_store_bytes_per_video_second": 1000,
           "refresh_index_share": 0.05}


def config(work: Path) -> Config:
    (work / "data" / "videos").mkdir(parents=True, exist_ok=True)
    return load_config("folder", f"dataset.root={work / 'data'};dataset.name=scale;work_dir={work / 'work'};"
                                 f"reports_dir={work / 'reports'};stores.descriptors=int8;"
                                 f"stores.segment_frames=int8;search.top_k=100;search.keep=20")


@dataclass(frozen=True)
class Plan:
    """The synthetic corpus: durations (s) and the planted copies (copy -> (source, kind))."""

    durations: np.ndarray
    copies: dict[int, tuple[int, str]]


def plan(n: int, seed: int = 0) -> Plan:
    rng = np.random.default_rng(seed)
    durations = np.clip(rng.lognormal(np.log(300), 0.6, n), 30, 1200)
    n_copies = max(2, int(n * COPY_SHARE))
    copies_at = rng.choice(np.arange(n // 2, n), n_copies, replace=False)
    copies = {int(c): (int(rng.integers(0, n // 2)), "duplicate" if k % 2 == 0 else "partial")
              for k, c in enumerate(np.sort(copies_at))}
    return Plan(durations, copies)


def genre_bank() -> np.ndarray:
    g = np.random.default_rng(12345).standard_normal((GENRES, DIM)).astype(np.float32)
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def own_frames(video: int, n: int, per_s: float, genres: np.ndarray) -> np.ndarray:
    """``(n, DIM)`` un-normalised frames of a video's own material (deterministic in ``video``)."""
    rng = np.random.default_rng(1_000_003 * (video + 1))
    scene_s = rng.uniform(2, 10)
    n_scenes = int(np.ceil(n / max(1.0, scene_s * per_s))) + 1
    scenes = rng.standard_normal((n_scenes, DIM)).astype(np.float32)
    which = np.minimum((np.arange(n) / max(1.0, scene_s * per_s)).astype(np.int64), n_scenes - 1)
    x = 2.0 * genres[video % GENRES] + scenes[which] / np.sqrt(DIM) * 4
    return x + 0.3 * rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM) * 4


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


def video_frames(v: int, p: Plan, step: int, genres: np.ndarray) -> np.ndarray:
    """``(n, DIM)`` unit frames of video ``v`` every ``step`` frames of the 15-fps stream."""
    per_s = FPS / step
    n = max(2, int(p.durations[v] * per_s))
    if v not in p.copies:
        return unit(own_frames(v, n, per_s, genres))
    src, kind = p.copies[v]
    ns = max(2, int(p.durations[src] * per_s))
    source = own_frames(src, ns, per_s, genres)
    rng = np.random.default_rng(v)
    noise = 0.3 * rng.standard_normal(source.shape).astype(np.float32) / np.sqrt(DIM) * 4
    if kind == "duplicate":  # the whole source, re-encoded, a few seconds trimmed at each end
        a, b = int(rng.uniform(0, 5) * per_s), ns - int(rng.uniform(0, 5) * per_s)
        return unit((source + noise)[a:max(b, a + 2)])
    length = min(ns, int(rng.uniform(30, 90) * per_s))
    a = int(rng.integers(0, ns - length + 1))
    x = own_frames(v, n, per_s, genres)
    at = int(rng.integers(0, max(1, n - length)))
    x[at:at + length] = (source + noise)[a:a + length][: n - at]
    return unit(x)


def generate(work: Path, n: int, first: int = 0, jobs: int = 1) -> list[Path]:
    """Write videos ``first .. n-1`` in shards of :data:`SHARD` (existing shards are kept), ``jobs``
    shards at a time."""
    config(work)
    starts = list(range(first, n, SHARD))
    if jobs > 1:
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            return pool.starmap(generate_shard, [(work, n, s0) for s0 in starts])
    return [generate_shard(work, n, s0) for s0 in starts]


def generate_shard(work: Path, n: int, s0: int) -> Path:
    """Videos ``s0 .. s0 + SHARD - 1``: one descriptor file and one segment-frame file."""
    torch.set_num_threads(1)
    cfg = config(work)
    step = max(1, round(FPS / cfg.segments.fps))
    spec = cfg.model_spec(cfg.search.model)
    model = build_model(spec, cfg.dataset.max_length_s)
    p, genres = plan(n), genre_bank()
    dpath = work / "descriptors" / f"shard-{s0 // SHARD:05d}.h5"
    fpath = work / "frames" / f"shard-{s0 // SHARD:05d}.h5"
    if dpath.is_file() and fpath.is_file():
        return dpath
    ids, parts, fvs, means = [], [], [], []
    for v in range(s0, min(n, s0 + SHARD)):
        x = video_frames(v, p, step, genres)
        t = np.arange(len(x), dtype=np.float64) * step  # kernel time base (1/15 s)
        fv = describe_video(model, x, t)
        ids.append(f"v{v:07d}")
        parts.append(SampledFrames(x, t / FPS, float(len(x) * step / FPS)))
        fvs.append(fv.numpy())
        means.append(mean_frame_component(model, fv[None]).numpy()[0])
    fpath.parent.mkdir(parents=True, exist_ok=True)
    dpath.parent.mkdir(parents=True, exist_ok=True)
    write_sampled(fpath, ids, parts, step, cfg.stores.segment_frames, "bench_scale")
    n_frames = np.array([round(q.duration_s * FPS) for q in parts], np.int64)
    write_descriptors(dpath, DescribedVideos(ids, np.stack(fvs), np.stack(means), n_frames,
                                             np.array([q.duration_s for q in parts])),
                      cfg.search.model, spec, cfg.stores.descriptors, "bench_scale")
    log.warning("shard %d: videos %d-%d written", s0 // SHARD, s0, min(n, s0 + SHARD) - 1)
    return dpath


def files(work: Path, kind: str) -> list[Path]:
    return sorted((work / kind).glob("shard-*.h5"))


def peak_rss() -> int:
    """This process's peak resident memory (``VmHWM``: unlike ``ru_maxrss`` it does not carry the parent's
    peak across ``exec``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_anon() -> int:
    """This process's resident anonymous memory now (``RssAnon``: without the pages of memory-mapped
    stores, which the kernel can drop)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def phase_index(work: Path, n: int) -> dict:
    """Full index build: read the mean frames, build as ``auto`` picks, write."""
    cfg = config(work)
    t0 = time.perf_counter()
    store = DescriptorStore(files(work, "descriptors")[: (n + SHARD - 1) // SHARD])
    ids, means = store.mean_frames()
    index, factory = make_index(cfg.index, means)
    write_index(work / "index", index, ids, {"index_type": factory, "n_videos": len(ids), "trained_on": len(ids)})
    return {"index_build_s": time.perf_counter() - t0, "index_factory": factory, "index_peak_rss_bytes": peak_rss(),
            "index_bytes": sum(f.stat().st_size for f in (work / "index").iterdir())}


def phase_query(work: Path, n: int, n_queries: int) -> dict:
    """Latency of the pipeline's per-query path, and recall@100 of the planted copies."""
    cfg = config(work)
    p = plan(n)
    idx = read_index(work / "index")
    store = DescriptorStore(files(work, "descriptors")[: (n + SHARD - 1) // SHARD])
    frames = SegmentFrames(files(work, "frames")[: (n + SHARD - 1) // SHARD], max(1, round(FPS / cfg.segments.fps)))
    model = build_model(cfg.model_spec(cfg.search.model), cfg.dataset.max_length_s)
    ids, means = store.mean_frames()
    row = {v: i for i, v in enumerate(ids)}
    rng = np.random.default_rng(7)
    planted = sorted(p.copies)
    queries = (planted + [int(v) for v in rng.choice(n, n_queries, replace=False)])[:n_queries]
    torch.set_num_threads(2)
    out = {"queries": len(queries), "planted_copies": len(planted),
           "planted_in_timed_queries": sum(v in p.copies for v in queries)}
    anon = 0
    for method in (cfg.segments.method, "hv"):  # the configured copy-segment method (tn), and the band one
        mcfg = Config({**cfg.data, "segments": {**cfg.data["segments"], "method": method}}, cfg.source)
        lat, found, kept = [], 0, 0
        for k, v in enumerate([*queries[:3], *queries]):  # three warm-up queries
            vid = f"v{v:07d}"
            t0 = time.perf_counter()
            rows = search_one(mcfg, model, vid, store.get([vid]), means[row[vid]], None, idx, store, None, None, [],
                              frames)
            if k >= 3:
                lat.append(time.perf_counter() - t0)
                anon = max(anon, rss_anon())
                if v in p.copies:
                    mine = [r for r in rows if r.match == f"v{p.copies[v][0]:07d}" and r.segment_score > 0]
                    found += any(r.rank == 1 for r in mine)
                    kept += bool(mine)
        tag = "" if method == cfg.segments.method else f"_{method}"
        out[f"query_p50_s{tag}"] = float(np.percentile(lat, 50))
        out[f"query_p95_s{tag}"] = float(np.percentile(lat, 95))
        out[f"planted_top1_with_segment{tag}"] = found
        out[f"planted_kept_with_segment{tag}"] = kept
    out["peak_rss_bytes"] = peak_rss()  # of the search itself (the recall check below needs more)
    out["peak_anon_bytes"] = anon
    # recall@100 of planted copies: FAISS as configured against exact search of the same vectors
    hits_exact = hits_approx = 0
    for c0 in range(0, len(planted), 100):
        part = planted[c0:c0 + 100]
        q = np.stack([means[row[f"v{c:07d}"]] for c in part])
        _, approx = idx.search(q, 100, search_params(cfg.index))
        sims = means @ q.T  # (n, 100)
        exact_top = np.argpartition(-sims, 99, axis=0)[:100].T
        hits_exact += sum(row[f"v{p.copies[c][0]:07d}"] in set(exact_top[k]) for k, c in enumerate(part))
        hits_approx += sum(f"v{p.copies[c][0]:07d}" in approx[k] for k, c in enumerate(part))
    out["recall_at_100"] = hits_approx / max(1, hits_exact)
    out["planted_found_exact_top100"] = hits_exact
    out["segments_method"] = cfg.segments.method
    return out


def phase_refresh(work: Path, n: int) -> dict:
    """+1 %: describe the new videos' shard and refresh the index as ``python -m pipeline refresh`` does
    within ``index.delta_max`` (the base kept, the new videos in a delta: integrity check of the base,
    delta built and written, the base hard-linked), and as it does past it (the layers merged into the
    base by id, the whole index written), against the full build."""
    added = max(1, n // 100)
    gen = time.perf_counter()
    new_files = generate(work / "refresh", n + added, first=n)
    gen_s = time.perf_counter() - gen
    load_faiss()  # the import is not the refresh's
    t0 = time.perf_counter()
    ids, means = DescriptorStore(new_files).mean_frames()  # both ways read the new mean frames
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    base = read_meta(work / "index")
    if file_sha256(work / "index" / INDEX_FILE) != base.attrs["index_sha256"]:  # the refresh's check of the base
        raise SystemExit(f"{work / 'index'}: damaged")
    fids = np.arange(int(np.max(base.faiss_ids)) + 1, int(np.max(base.faiss_ids)) + 1 + len(ids))
    layers = refresh_layers(base, None, np.zeros(0, np.int64), means, ids, fids)
    out = work / "index-layered"
    shutil.rmtree(out, ignore_errors=True)
    layers.write(out, {**base.attrs, "n_videos": len(base.video_ids) + len(ids)})
    layered_s = read_s + time.perf_counter() - t0
    idx = read_index(out)  # every new video is found first by its own mean frame, through the layers
    _, top = idx.search(means, 1, search_params(config(work).index))
    found = sum(row[:1] == [v] for row, v in zip(top, ids, strict=True))
    t0 = time.perf_counter()
    prev = read_index(work / "index")
    update_faiss(prev.index, np.zeros(0, np.int64), means, fids)
    write_index(work / "index-refreshed", prev.index, prev.video_ids + ids,
                {**prev.attrs, "n_videos": len(prev.video_ids) + len(ids)},
                faiss_ids=np.r_[prev.faiss_ids, fids])
    merge_s = read_s + time.perf_counter() - t0
    return {"refresh_added": len(ids), "refresh_index_s": layered_s, "refresh_merge_index_s": merge_s,
            "refresh_describe_s": gen_s, "refresh_new_found_top1": found}


def in_process(phase: str, work: Path, n: int, extra: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", phase, "--dir", str(work), "--videos", str(n),
                          *extra], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def synthetic_means(work: Path, n: int, block: int = 100_000) -> Path:
    """``--index-only``: the ``(n, DIM)`` float32 mean-frame vectors of the corpus :func:`plan` describes,
    drawn from the distribution :func:`own_frames` gives them (a genre direction, the average of the
    video's scenes, frame noise) without rendering the frames: copies are their source's vector
    re-noised (duplicates) or mixed with their own by the excerpt's share of the video (partial).
    Written block by block to a memory-mapped file."""
    path = work / "means.f32"
    if path.is_file() and path.stat().st_size == n * DIM * 4:
        return path
    work.mkdir(parents=True, exist_ok=True)
    p, genres = plan(n), genre_bank()
    out = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, DIM))

    def raw(vs: np.ndarray) -> np.ndarray:
        """Un-normalised mean frames of videos ``vs`` (deterministic in each video)."""
        rngs = [np.random.default_rng(2_000_003 * (int(v) + 1)) for v in vs]
        scene_s = np.array([r.uniform(2, 10) for r in rngs])
        z = np.stack([r.standard_normal(DIM).astype(np.float32) for r in rngs])
        scenes = np.maximum(1, p.durations[vs] / scene_s)
        return 2.0 * genres[vs % GENRES] + z * (4 / np.sqrt(DIM) / np.sqrt(scenes))[:, None].astype(np.float32)

    for b0 in range(0, n, block):
        vs = np.arange(b0, min(n, b0 + block))
        x = raw(vs)
        for j, v in enumerate(vs):  # the planted copies (1 %): their source's vector
            if int(v) in p.copies:
                src, kind = p.copies[int(v)]
                sx = raw(np.array([src]))[0]
                noise = np.random.default_rng(int(v)).standard_normal(DIM).astype(np.float32) * 0.01
                share = 1.0 if kind == "duplicate" else min(1.0, np.random.default_rng(int(v)).uniform(30, 90)
                                                              / p.durations[int(v)])
                x[j] = share * sx + (1 - share) * x[j] + noise
        out[b0:b0 + len(vs)] = unit(x)
    out.flush()
    return path


def index_only(work: Path, n: int, n_queries: int) -> dict:
    """The index side at ``n`` videos from :func:`synthetic_means`: build as ``auto`` picks, FAISS query
    latency and recall@100 of the planted copies against exact search."""
    cfg = config(work)
    p = plan(n)
    means = np.memmap(synthetic_means(work, n), dtype=np.float32, mode="r", shape=(n, DIM))
    t0 = time.perf_counter()
    index, factory = make_index(cfg.index, means)
    build_s = time.perf_counter() - t0
    vi = VideoIndex(index, [f"v{v:07d}" for v in range(n)])
    planted = sorted(p.copies)[:n_queries]
    q = np.ascontiguousarray(means[planted])
    lat = []
    for i in range(len(planted)):
        t = time.perf_counter()
        vi.search(q[i:i + 1], 101, search_params(cfg.index))
        lat.append(time.perf_counter() - t)
    _, approx = vi.search(q, 100, search_params(cfg.index))
    sims = np.concatenate([np.asarray(means[i:i + 200_000]) @ q.T for i in range(0, n, 200_000)])
    exact_top = np.argsort(-sims, axis=0)[:100].T
    hits_exact = sum(p.copies[c][0] in set(exact_top[k]) for k, c in enumerate(planted))
    hits_approx = sum(f"v{p.copies[c][0]:07d}" in approx[k] for k, c in enumerate(planted))
    return {"videos": n, "index_factory": factory, "index_build_s": build_s, "index_peak_rss_bytes": peak_rss(),
            "faiss_query_p50_s": float(np.percentile(lat, 50)), "faiss_query_p95_s": float(np.percentile(lat, 95)),
            "recall_at_100": hits_approx / max(1, hits_exact), "planted_queries": len(planted),
            "planted_found_exact_top100": hits_exact, "index_bytes_in_memory": int(index.sa_code_size() * n)
            if hasattr(index, "sa_code_size") else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: bench_scale_<N>)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--jobs", type=int, default=1, help="processes generating the corpus")
    ap.add_argument("--index-only", action="store_true",
                    help="only the index side, from mean vectors drawn from the corpus's distribution (for N the "
                         "disk cannot hold the stores of: 1M videos of segment frames are ~180 GB)")
    ap.add_argument("--no-query", action="store_true",
                    help="skip the query phase (stores, index build and refresh only)")
    ap.add_argument("--phase", choices=["index", "query", "refresh", "index-only"], default=None,
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    work = (args.dir or Path(f"bench_scale_{args.videos}")).resolve()
    if args.phase:
        res = {"index": lambda: phase_index(work, args.videos),
               "query": lambda: phase_query(work, args.videos, args.queries),
               "refresh": lambda: phase_refresh(work, args.videos),
               "index-only": lambda: index_only(work, args.videos, args.queries)}[args.phase]()
        print(json.dumps(res))
        return
    if args.index_only:
        synthetic_means(work, args.videos)
        res = in_process("index-only", work, args.videos, ["--queries", str(args.queries)])
        print(f"\nIndex side at {args.videos} videos (mean vectors drawn from the corpus's distribution)\n")
        print("| figure | value |\n|---|---:|")
        for k, v in res.items():
            print(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |")
        if args.json:
            args.json.write_text(json.dumps(res, indent=1))
        return
    t0 = time.perf_counter()
    generate(work, args.videos, jobs=args.jobs)
    gen_s = time.perf_counter() - t0
    seconds = 0.0
    for f in files(work, "frames"):
        with h5py.File(f, "r") as h:
            seconds += float(h["duration_s"][()].sum())
    desc = sum(f.stat().st_size for f in files(work, "descriptors"))
    frames = sum(f.stat().st_size for f in files(work, "frames"))
    res = {"videos": args.videos, "hours_of_video": seconds / 3600, "generate_s": gen_s,
           "descriptor_bytes_per_video": desc / args.videos, "frame_store_bytes_per_video_second": frames / seconds,
           "float32_descriptor_bytes_per_video": 4 * 4 * 32 * DIM, "features_15fps_bytes_per_video_second":
           FPS * DIM * 2}
    res.update(in_process("index", work, args.videos, []))
    if not args.no_query:
        res.update(in_process("query", work, args.videos, ["--queries", str(args.queries)]))
    res.update(in_process("refresh", work, args.videos, []))
    res["refresh_index_share"] = res["refresh_index_s"] / res["index_build_s"]
    res["refresh_merge_index_share"] = res["refresh_merge_index_s"] / res["index_build_s"]
    print(f"\nScale benchmark: {args.videos} videos ({res['hours_of_video']:.0f} h), index {res['index_factory']}, "
          f"stores int8; 2 CPU threads for queries\n")
    print("| figure | value | target | ratio to target |")
    print("|---|---:|---:|---:|")
    TARGETS["query_p95_s_hv"] = TARGETS["query_p95_s"]
    TARGETS["peak_anon_bytes"] = TARGETS["peak_rss_bytes"]
    for key in ("descriptor_bytes_per_video", "frame_store_bytes_per_video_second", "index_build_s",
                "index_peak_rss_bytes", "query_p50_s", "query_p95_s", "query_p50_s_hv", "query_p95_s_hv",
                "peak_rss_bytes", "peak_anon_bytes", "recall_at_100", "refresh_index_s", "refresh_index_share",
                "refresh_merge_index_s", "refresh_merge_index_share"):
        if key not in res:
            continue
        target = TARGETS.get(key)
        ratio = f"{res[key] / target:.3f}" if target else ""
        print(f"| {key} | {res[key]:.4g} | {target if target is not None else ''} | {ratio} |")
    print(f"\nrefresh: {res['refresh_new_found_top1']} of {res['refresh_added']} new videos found first by their own "
          f"mean frame through the layered index")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    if args.no_query:
        return
    print(f"\nquery_*: segments.method {res['segments_method']}; query_*_hv: hv.  Planted copies "
          f"{res['planted_copies']} (exact top-100 holds {res['planted_found_exact_top100']}); ranked first with a "
          f"segment in {res['planted_top1_with_segment']} ({res['segments_method']}) and "
          f"{res['planted_top1_with_segment_hv']} (hv) of {res['planted_in_timed_queries']} timed planted queries; "
          f"generation {gen_s:.0f} s")


if __name__ == "__main__":
    main()
