"""Command line: ``python -m pipeline <command>`` (also installed as ``videoalign``)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from extractors.runtime.errors import VideoAlignError

log = logging.getLogger("pipeline")


def _cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.entry.demo import run_demo, summarize  # deferred: start-up time

    reports = run_demo(Path(args.root), args.overrides, args.workers, args.regenerate)
    sys.stdout.write(summarize(reports) + "\n")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from pipeline.core.hdf5 import ArtifactError  # deferred: start-up time
    from pipeline.store.inspect import describe  # deferred: start-up time

    try:
        sys.stdout.write(describe(args.path, video=args.video) + "\n")
    except ArtifactError as exc:
        log.error("%s", exc)
        return 2
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    """The batch chain without a scheduler (same steps and completeness checks as the Luigi tasks)."""
    from pipeline.config.load import load_config  # deferred: start-up time
    from pipeline.steps.build import build  # deferred: start-up time
    from pipeline.store.layout import Layout  # deferred: start-up time

    cfg = load_config(args.dataset, args.overrides)
    summary = build(Layout(cfg), until=args.until, models=args.model or None, show_progress=not args.quiet)
    sys.stdout.write(f"build {cfg.name} until {args.until}: {len(summary.ran)} step(s) run, "
                     f"{summary.skipped} already complete, {len(summary.failures)} file(s) failed\n")
    for f in summary.failures:
        sys.stderr.write(f"failed: {f}\n")
    return EXIT_FAILED_FILES if summary.failures else 0


def _cmd_query(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from pipeline.config.load import load_config  # deferred: start-up time
    from pipeline.steps.query import find_index, query  # deferred: start-up time

    idx_path = Path(args.index) if args.index else find_index(load_config(args.dataset, args.overrides))
    res = query(Path(args.video), idx_path, args.model or None, args.top)
    if args.json:
        sys.stdout.write(json.dumps({"query": res.video, "model": res.model, "index": str(res.index_dir),
                                     "units": "seconds; offset = t_query - t_match",
                                     "matches": [asdict(r) for r in res.matches]}, indent=2) + "\n")
        return 0
    sys.stdout.write(f"{res.video}: {res.n_frames} frames ({res.duration_s:.1f} s), "
                     f"model {res.model}, index {res.index_dir}\n")
    sys.stdout.write(f"{'rank':>4}  {'score':>9}  {'offset (s)':>10}  {'copy':>4}  {'query span (s)':>17}  "
                     f"{'match span (s)':>17}  match\n")
    for r in res.matches:
        qs = f"{r.query_start_s:7.2f}-{r.query_end_s:<7.2f}" if r.query_start_s == r.query_start_s else "-"
        ms = f"{r.match_start_s:7.2f}-{r.match_end_s:<7.2f}" if r.match_start_s == r.match_start_s else "-"
        copy = "yes" if r.copy else "no" if r.segment_score == r.segment_score else "?"
        sys.stdout.write(f"{r.rank:>4}  {r.score:9.4f}  {r.offset_s:+10.2f}  {copy:>4}  {qs:>17}  {ms:>17}  "
                         f"{r.match}\n")
    return 0


EXIT_ERROR = 2
EXIT_FAILED_FILES = 3
EXIT_LOCKED = 75


def _cmd_refresh(args: argparse.Namespace) -> int:
    """Cron entry: 0 success, 3 some files failed (the rest is published), 75 another run holds
    the lock, 1 any other error; always one line on stderr saying why when non-zero."""
    from pipeline.config.load import load_config  # deferred: start-up time
    from pipeline.core.lock import LockHeldError  # deferred: start-up time
    from pipeline.steps.operations.refresh import locked_refresh  # deferred: start-up time
    from pipeline.store.layout import Layout  # deferred: start-up time
    from pipeline.store.publish import PinnedError  # deferred: start-up time

    try:
        res = locked_refresh(Layout(load_config(args.dataset, args.overrides)), keep=args.keep,
                             progress=not args.quiet)
    except (LockHeldError, PinnedError) as exc:
        sys.stderr.write(f"refresh: {exc}\n")
        return EXIT_LOCKED
    except Exception as exc:  # cron wants one line, not a traceback
        log.debug("refresh failed", exc_info=True)
        text = str(exc).strip().splitlines()
        sys.stderr.write(f"refresh: {type(exc).__name__}: {text[0] if text else ''}\n")
        return 1
    sys.stdout.write(res.summary() + "\n")
    for path in res.quarantined:
        log.info("quarantined (unchanged since it failed, not retried): %s", path)
    if res.failures:
        for f in res.failures:
            sys.stderr.write(f"failed: {f}\n")
        sys.stderr.write(f"refresh: {len(res.failures)} file(s) failed (see failures.csv in {res.version})\n")
        return EXIT_FAILED_FILES
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    """Under the refresh lock (75 naming the holder while a refresh runs): point ``current`` back and
    hold it there (refreshes refuse to publish) until ``--release``."""
    from pipeline.config.load import load_config  # deferred: start-up time
    from pipeline.core.lock import LockHeldError, exclusive_lock  # deferred: start-up time
    from pipeline.store.layout import Layout  # deferred: start-up time
    from pipeline.store.publish import release, rollback  # deferred: start-up time

    layout = Layout(load_config(args.dataset, args.overrides))
    try:
        with exclusive_lock(layout.refresh_lock):
            if args.release:
                was = release(layout.published_root)
                sys.stdout.write("released: refreshes publish again\n" if was else "nothing was held\n")
                return 0
            target = rollback(layout.published_root, args.to)
    except LockHeldError as exc:
        sys.stderr.write(f"rollback: {exc}\n")
        return EXIT_LOCKED
    sys.stdout.write(f"current -> {target.name} (held: refreshes will not publish until "
                     f"'python -m pipeline rollback --dataset {args.dataset} --release')\n")
    return 0


def _cmd_luigid(args: argparse.Namespace) -> int:
    """``luigid`` with the pipeline's scheduler settings (``configs/luigid.cfg``: a dead worker's tasks
    are handed to another worker within a minute), unless ``$LUIGI_CONFIG_PATH`` names another file."""
    import os
    import shutil
    from importlib import resources

    exe = shutil.which("luigid")
    if exe is None:
        sys.stderr.write("luigid: not found on PATH (it comes with luigi: pip install luigi)\n")
        return EXIT_ERROR
    env = dict(os.environ)
    if not env.get("LUIGI_CONFIG_PATH"):
        env["LUIGI_CONFIG_PATH"] = str(resources.files("configs").joinpath("luigid.cfg"))
    sys.stderr.write(f"luigid with {env['LUIGI_CONFIG_PATH']}\n")
    sys.stderr.flush()
    os.execve(exe, [exe, *args.luigid_args], env)
    return 0  # not reached


EXIT_INCOMPLETE = 50


def _cmd_luigi(argv: list[str]) -> int:
    """``luigi`` that also says when the batch is not done: Luigi exits 0 when the tasks it could not
    run were "being run by another worker" - also when that worker died. After Luigi's own exit code,
    this checks the root task: incomplete -> one line and exit 50 (run the command again)."""
    import luigi.retcodes
    from luigi.cmdline_parser import CmdlineParser
    from luigi.task_register import TaskClassException

    import tasks  # noqa: F401 - registers the task classes (this package was imported before luigi)

    try:
        luigi.retcodes.run_with_retcodes(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except TaskClassException as exc:  # an unknown task name: one line, not a traceback
        sys.stderr.write(f"luigi: {str(exc).splitlines()[0]}\n")
        return EXIT_ERROR
    if code != 0 or {"-h", "--help", "--help-all"} & set(argv):
        return code
    with CmdlineParser.global_instance(argv) as cp:
        root = cp.get_task_obj()
    if not root.complete():
        sys.stderr.write(f"INCOMPLETE {root.task_id}: not complete when this worker stopped (its remaining tasks "
                         f"were held by other workers, which may have died); run the command again to finish it\n")
        return EXIT_INCOMPLETE
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from pipeline.steps.operations.verify import notes, verify  # deferred: start-up time

    problems, checked = verify(args.target, args.overrides)
    for p in problems:
        sys.stdout.write(f"PROBLEM {p}\n")
    for n in notes(args.target, args.overrides):
        sys.stdout.write(f"NOTE {n}\n")
    sys.stdout.write(f"verify: {checked} artifact(s) checked, {len(problems)} problem(s)\n")
    return 0 if not problems else 1


def _cmd_generate(args: argparse.Namespace) -> int:
    """A dataset generated from a folder of videos (``pipeline/datasets/generate.py``)."""
    from pipeline.datasets.generate import (  # deferred: start-up time
        build_align_dataset,
        build_copy_dataset,
        video_clips,
    )

    clips = video_clips(Path(args.source))
    out = Path(args.out)
    if args.kind == "align":
        recs = build_align_dataset(clips, out, cameras=args.cameras, seed=args.seed, views=args.views)
        sys.stdout.write(f"{out}: {len(recs)} recordings; dataset.kind=align, dataset.gt_file=gt_align.align, "
                         f"dataset.root={out.resolve()}\n")
        return 0
    n_src = min(args.max_sources, len(clips) - 1)
    truth = build_copy_dataset(clips[:n_src], clips[n_src:], out, args.copies, args.hard, args.seed)
    sys.stdout.write(f"{out}: {len(truth)} copied excerpts; dataset.kind=vcdb, dataset.root={out.resolve()}\n")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    """Train the dataset's trained models (``--model``, else every one), after the features they need, like
    the ``Train`` task."""
    from pipeline.config.load import load_config  # deferred: start-up time
    from pipeline.core.errors import StepError  # deferred: start-up time
    from pipeline.steps.build import build  # deferred: start-up time
    from pipeline.steps.training.train import train_model  # deferred: start-up time
    from pipeline.store.layout import Layout  # deferred: start-up time

    layout = Layout(load_config(args.dataset, args.overrides))
    models = args.model or layout.trained_models
    if not models:
        raise StepError(f"dataset {layout.cfg.name}: no model is trained here (add one under models:, e.g. "
                        f"--overrides 'models.lamv_learned={{type: lamv_learned}}' or 'models.tca={{type: tca}}')")
    build(layout, until="features", show_progress=not args.quiet)
    for m in models:
        done = train_model(layout, m, show_progress=not args.quiet)
        sys.stdout.write(f"{done.path}: {m} {done.summary}\n")
    return 0


def _cmd_periods(args: argparse.Namespace) -> int:
    """Period design (LAMV paper section 3.4) on a dataset with alignment or copy ground truth."""
    from pipeline.config.load import load_config  # deferred: start-up time
    from pipeline.steps.build import build  # deferred: start-up time
    from pipeline.steps.training.lamv import coprime_period_sets, design_periods  # deferred: start-up time
    from pipeline.store.layout import Layout  # deferred: start-up time

    layout = Layout(load_config(args.dataset, args.overrides))
    build(layout, until="features", show_progress=False)
    cands = [[int(p) for p in c.split(",")] for c in args.candidate] or \
        coprime_period_sets(args.count, args.lowest, args.highest, args.sets, args.seed)
    sys.stdout.write("localisation within 1 s  periods (1/15 s)\n")
    for sc in design_periods(layout, cands):
        sys.stdout.write(f"{sc.localisation_1s:24.3f}  {','.join(map(str, sc.periods))}\n")
    return 0


def _cmd_align(args: argparse.Namespace) -> int:
    """DTW alignment of two videos (Sync from the Sea): the warping as JSON (seconds) and a plot."""
    import json

    from pipeline.config.load import Config, config_from_json, load_config  # deferred: start-up time
    from pipeline.steps.alignment import align_features, plot_warping  # deferred: start-up time
    from pipeline.steps.query import query_features  # deferred: start-up time
    from pipeline.store.index_files import read_index  # deferred: start-up time
    from pipeline.store.layout import Layout  # deferred: start-up time

    if args.index:
        idx = read_index(Path(args.index))
        cfg = config_from_json(str(idx.attrs["config"]), f"{Path(args.index) / 'meta.h5'} (stored configuration)")
    else:
        cfg = load_config(args.dataset, args.overrides)
    data = dict(cfg.data)
    data["align"] = {**cfg.data["align"], **({"fps": args.fps} if args.fps else {}),
                     **({"contextualise": args.contextualise == "yes"} if args.contextualise else {}),
                     **({"unwarped": args.unwarped} if args.unwarped else {})}
    cfg = Config(data, cfg.source)
    layout = Layout(cfg)
    a, b = (query_features(cfg, layout, Path(v)) for v in (args.a, args.b))
    w = align_features(a, b, cfg.align)
    plot = Path(args.plot) if args.plot else Path(f"align-{Path(args.a).stem}-{Path(args.b).stem}.png")
    plot_warping(w, Path(args.a).name, Path(args.b).name, plot)
    doc = {"a": args.a, "b": args.b, "fps": cfg.align.fps, "unwarped": cfg.align.unwarped, "plot": str(plot),
           **w.as_json()}
    path = doc.pop("path")
    text = json.dumps({**doc, "path": "@"}, indent=1)  # one line per key; the path's cells on one line
    sys.stdout.write(text.replace('"@"', json.dumps(path)) + "\n")
    return 0


def program_name() -> str:
    """``videoalign`` when run as the installed script, else ``python -m pipeline``."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return name if name and name not in ("__main__.py", "-c", "-m") and not name.endswith(".py") \
        else "python -m pipeline"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=program_name(),
                                description="Video copy detection and temporal alignment pipeline.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the bundled demo corpus end to end")
    demo.add_argument("--root", default="demo_data", help="where the demo corpus is generated")
    demo.add_argument("--overrides", default="", help="config overrides 'key.path=value;...'")
    demo.add_argument("--workers", type=int, default=1, help="Luigi workers")
    demo.add_argument("--regenerate", action="store_true", help="regenerate the demo corpus")
    demo.set_defaults(func=_cmd_demo)
    b = sub.add_parser("build", help="run the batch chain without a scheduler (same steps and outputs as Luigi)")
    b.add_argument("--dataset", required=True, help="configs/<NAME>.yaml or a path to a YAML file")
    b.add_argument("--overrides", default="", help="config overrides 'key.path=value;...'")
    b.add_argument("--until", default="index", choices=["features", "descriptors", "index", "search", "evaluate"],
                   help="last stage to run (default: index)")
    b.add_argument("--model", action="append", help="search/evaluate only this model (repeatable)")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=_cmd_build)
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
    rb.add_argument("--release", action="store_true", help="let refreshes publish again after a rollback")
    rb.set_defaults(func=_cmd_rollback)
    sub.add_parser("luigi", help="luigi --module pipeline ARGS, exiting 50 (one line) when the root task is "
                                 "still incomplete at the end (e.g. tasks held by a worker that died)")
    ld = sub.add_parser("luigid", help="start Luigi's central scheduler with the pipeline's settings "
                                       "(configs/luigid.cfg); other arguments go to luigid")
    ld.add_argument("luigid_args", nargs=argparse.REMAINDER, help="e.g. --port 8082 --state-path ...")
    ld.set_defaults(func=_cmd_luigid)
    g = sub.add_parser("generate", help="generate a dataset with exact ground truth from a folder of videos: "
                                        "copies (VCDB format) or multi-camera alignments (.align format)")
    g.add_argument("kind", choices=["copies", "align"])
    g.add_argument("--source", required=True, help="a folder of videos")
    g.add_argument("--out", required=True, help="the dataset root to write")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--cameras", type=int, default=5, help="align: recordings per source clip")
    g.add_argument("--views", action="store_true", help="align: every camera sees its own panning window of the "
                                                        "scene (instead of crops, bars, insets, rescales, logos)")
    g.add_argument("--copies", type=int, default=24, help="copies: copy videos")
    g.add_argument("--hard", type=int, default=4, help="copies: hard negatives (other moments of a source)")
    g.add_argument("--max-sources", type=int, default=12, help="copies: smallest clips used as sources; "
                                                                  "the rest only as unrelated filler")
    g.set_defaults(func=_cmd_generate)
    tr = sub.add_parser("train", help="train the dataset's models that learn from its ground truth (learned LAMV "
                                      "kernels, TCA; held-out fold excluded; resumes an interrupted training)")
    tr.add_argument("--dataset", required=True)
    tr.add_argument("--overrides", default="")
    tr.add_argument("--model", action="append", help="one model to train (repeatable; default: every one trained "
                                                    "here)")
    tr.add_argument("--quiet", action="store_true", help="no progress bars")
    tr.set_defaults(func=_cmd_train)
    pd = sub.add_parser("periods", help="rank candidate TMK period sets by localisation accuracy on a dataset's "
                                        "ground truth (LAMV paper section 3.4)")
    pd.add_argument("--dataset", required=True)
    pd.add_argument("--overrides", default="")
    pd.add_argument("--candidate", action="append", default=[], help="a period set 'p1,p2,...' in 1/15 s "
                                                                      "(repeatable; default: random coprime sets)")
    pd.add_argument("--count", type=int, default=4, help="periods per generated set")
    pd.add_argument("--lowest", type=float, default=10.0, help="shortest generated period, seconds")
    pd.add_argument("--highest", type=float, default=700.0, help="longest generated period, seconds")
    pd.add_argument("--sets", type=int, default=8, help="generated sets")
    pd.add_argument("--seed", type=int, default=0)
    pd.set_defaults(func=_cmd_periods)
    al = sub.add_parser("align", help="DTW-align two videos (Sync from the Sea): warping path as JSON in seconds, "
                                      "DRAQ, and a plot of the cost matrix with the path")
    al.add_argument("a", help="a video file (rows of the cost matrix)")
    al.add_argument("b", help="a video file (columns)")
    al.add_argument("--index", help="use the feature settings stored with this index directory")
    al.add_argument("--dataset", default="demo", help="dataset config for the feature settings (without --index)")
    al.add_argument("--overrides", default="", help="config overrides 'key.path=value;...'")
    al.add_argument("--fps", type=float, default=0.0, help="frames per second aligned (default: align.fps)")
    al.add_argument("--contextualise", choices=["yes", "no"], help="contextualised features (default: "
                                                                  "align.contextualise)")
    al.add_argument("--unwarped", choices=["none", "first"], help="keep A unwarped: one path cell per frame of A")
    al.add_argument("--plot", help="PNG to write (default: align-<A>-<B>.png)")
    al.set_defaults(func=_cmd_align)
    v = sub.add_parser("verify", help="check every artifact of a dataset (or one file/directory)")
    v.add_argument("target", help="a dataset name / YAML, or an artifact path")
    v.add_argument("--overrides", default="")
    v.set_defaults(func=_cmd_verify)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["luigid"] and not {"-h", "--help"} & set(argv[1:2]):  # everything else goes to luigid
        return _cmd_luigid(argparse.Namespace(luigid_args=argv[1:]))
    if argv[:1] == ["luigi"]:  # everything else goes to luigi (--module pipeline is implied)
        rest = argv[1:]
        return _cmd_luigi(rest if "--module" in rest else ["--module", "pipeline", *rest])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except (VideoAlignError, OSError) as exc:  # ours, or the system's: one line that says what is wrong
        log.debug("%s failed", args.command, exc_info=True)
        text = str(exc).strip().splitlines()
        sys.stderr.write(f"{args.command}: {text[0] if text else type(exc).__name__}\n")
        return exc.exit_code if isinstance(exc, VideoAlignError) else EXIT_ERROR
