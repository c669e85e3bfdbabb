"""Command line: ``python -m pipeline <command>`` (also installed as ``videoalign``)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("pipeline")


def _cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.demo import run_demo, summarize

    reports = run_demo(Path(args.root), args.overrides, args.workers, args.regenerate)
    sys.stdout.write(summarize(reports) + "\n")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from pipeline.artifacts import ArtifactError, describe

    try:
        sys.stdout.write(describe(args.path, video=args.video) + "\n")
    except ArtifactError as exc:
        log.error("%s", exc)
        return 2
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    import json

    from extractors.decode import DecodeError
    from index.faiss_index import read_index
    from pipeline.config import ConfigError, load_config
    from pipeline.descriptors import DescriptorStore, describe_video, mean_frame_component
    from pipeline.publish import current_version, read_manifest
    from pipeline.refresh import published_root
    from pipeline.runner import (
        FeatureLookup,
        config_from_index,
        configured_model,
        descriptor_store,
        index_dir,
        new_video_features,
        search_one,
    )

    try:
        manifest = None
        if args.index:
            cfg = config_from_index(Path(args.index))
            idx_path = Path(args.index)
        else:
            cfg = load_config(args.dataset, args.overrides)
            published = current_version(published_root(cfg))
            idx_path = published if published is not None else index_dir(cfg)
        if (idx_path / "manifest.json").is_file():
            manifest = read_manifest(idx_path)
        idx = read_index(idx_path)
        model_name = args.model or cfg.get("search.model")
        cfg.data["search"]["keep"] = args.top
        cfg.data["search"]["top_k"] = max(int(cfg.get("search.top_k")), args.top)
        vf = new_video_features(cfg, Path(args.video))  # decoded and described once
        times = vf.timestamps_s * 15.0
        model = configured_model(cfg, model_name)
        fv = describe_video(model, vf.features, times)
        index_model = cfg.get("index.model")
        imodel = model if index_model == model_name else configured_model(cfg, index_model)
        ifv = fv if imodel is model else describe_video(imodel, vf.features, times)
        mean = mean_frame_component(imodel, ifv[None]).numpy()[0]
        if manifest is not None:
            store = DescriptorStore.from_manifest(manifest["videos"], model_name)
        else:
            store = descriptor_store(cfg, model_name)
        rows = search_one(cfg, model, str(args.video), fv[None], mean, vf, idx, store,
                          FeatureLookup(cfg, manifest), None)
    except (DecodeError, ConfigError, ValueError, OSError) as exc:
        log.error("%s", exc)
        return 2
    if args.json:
        from dataclasses import asdict

        sys.stdout.write(json.dumps({"query": str(args.video), "model": model_name,
                                     "units": "seconds; offset = t_query - t_match",
                                     "matches": [asdict(r) for r in rows]}, indent=2) + "\n")
    else:
        sys.stdout.write(f"{args.video}: {len(vf.features)} frames ({len(vf.features) / 15:.1f} s), "
                         f"model {model_name}, index {idx_path}\n")
        sys.stdout.write(f"{'rank':>4}  {'score':>9}  {'offset (s)':>10}  {'query span (s)':>17}  "
                         f"{'match span (s)':>17}  match\n")
        for r in rows:
            qs = f"{r.query_start_s:7.2f}-{r.query_end_s:<7.2f}" if r.query_start_s == r.query_start_s else "-"
            ms = f"{r.match_start_s:7.2f}-{r.match_end_s:<7.2f}" if r.match_start_s == r.match_start_s else "-"
            sys.stdout.write(f"{r.rank:>4}  {r.score:9.4f}  {r.offset_s:+10.2f}  {qs:>17}  {ms:>17}  {r.match}\n")
    return 0


EXIT_FAILED_FILES = 3
EXIT_LOCKED = 75


def _cmd_refresh(args: argparse.Namespace) -> int:
    """Cron entry: 0 success, 3 some files failed (the rest is published), 75 another run holds
    the lock, 1 any other error; always one line on stderr saying why when non-zero."""
    from pipeline.config import load_config
    from pipeline.lock import LockHeldError, exclusive_lock
    from pipeline.refresh import run_refresh

    try:
        cfg = load_config(args.dataset, args.overrides)
        if cfg.get("features.pca") == "trained":
            from pipeline.runner import pca_path, run_train_pca

            if not pca_path(cfg).is_file():
                with exclusive_lock(cfg.work_dir / "refresh.lock"):
                    run_train_pca(cfg)
        with exclusive_lock(cfg.work_dir / "refresh.lock"):
            res = run_refresh(cfg, keep=args.keep, progress=not args.quiet)
    except LockHeldError as exc:
        sys.stderr.write(f"refresh: {exc}\n")
        return EXIT_LOCKED
    except Exception as exc:  # cron wants one line, not a traceback
        log.debug("refresh failed", exc_info=True)
        sys.stderr.write(f"refresh: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}\n")
        return 1
    sys.stdout.write(res.summary() + "\n")
    if res.failures:
        for f in res.failures:
            sys.stderr.write(f"failed: {f}\n")
        sys.stderr.write(f"refresh: {len(res.failures)} file(s) failed (see failures.csv in {res.version})\n")
        return EXIT_FAILED_FILES
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from pipeline.config import load_config
    from pipeline.publish import PublishError, rollback
    from pipeline.refresh import published_root

    try:
        cfg = load_config(args.dataset, args.overrides)
        target = rollback(published_root(cfg), args.to)
    except (PublishError, ValueError) as exc:
        sys.stderr.write(f"rollback: {exc}\n")
        return 1
    sys.stdout.write(f"current -> {target.name}\n")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from pipeline.verify import verify

    problems, checked = verify(args.target, args.overrides)
    for p in problems:
        sys.stdout.write(f"PROBLEM {p}\n")
    sys.stdout.write(f"verify: {checked} artifact(s) checked, {len(problems)} problem(s)\n")
    return 0 if not problems else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline",
                                description="Video copy detection and temporal alignment pipeline.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the bundled demo corpus end to end")
    demo.add_argument("--root", default="demo_data", help="where the demo corpus is generated")
    demo.add_argument("--overrides", default="", help="config overrides 'key.path=value;...'")
    demo.add_argument("--workers", type=int, default=1, help="Luigi workers")
    demo.add_argument("--regenerate", action="store_true", help="regenerate the demo corpus")
    demo.set_defaults(func=_cmd_demo)
    insp = sub.add_parser("inspect", help="print a readable summary of an artifact file or shard")
    insp.add_argument("path", help="an HDF5 artifact (features, pack, descriptors, index) or a shard dir")
    insp.add_argument("--video", help="details of one video (by id)")
    insp.set_defaults(func=_cmd_inspect)
    q = sub.add_parser("query", help="rank the indexed videos that contain a copy of VIDEO, with offsets")
    q.add_argument("video", help="a video file")
    q.add_argument("--index", help="an index directory (default: the dataset's current index)")
    q.add_argument("--dataset", default="demo", help="dataset config when --index is not given")
    q.add_argument("--overrides", default="", help="config overrides 'key.path=value;...'")
    q.add_argument("--model", default="", help="re-ranking model (default: search.model)")
    q.add_argument("--top", type=int, default=10, help="number of matches to print")
    q.add_argument("--json", action="store_true", help="JSON output")
    q.set_defaults(func=_cmd_query)
    r = sub.add_parser("refresh", help="incremental refresh + atomic publish (for cron); exit 3 if files failed")
    r.add_argument("--dataset", required=True)
    r.add_argument("--overrides", default="")
    r.add_argument("--keep", type=int, default=3, help="published versions kept for rollback")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=_cmd_refresh)
    rb = sub.add_parser("rollback", help="point the published index back at the previous version")
    rb.add_argument("--dataset", required=True)
    rb.add_argument("--overrides", default="")
    rb.add_argument("--to", default=None, help="a version name, e.g. v000003 (default: the previous one)")
    rb.set_defaults(func=_cmd_rollback)
    v = sub.add_parser("verify", help="check every artifact of a dataset (or one file/directory)")
    v.add_argument("target", help="a dataset name / YAML, or an artifact path")
    v.add_argument("--overrides", default="")
    v.set_defaults(func=_cmd_verify)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    return int(args.func(args))
