"""The command line's verbs: one function per verb, each doing its work through the steps and returning
the exit code (0; 2 for an error, whose one line the caller prints; 3 when some files failed; 50 when
a Luigi run left its root task incomplete; 75 when another refresh or a rollback holds the corpus).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("pipeline")


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.entry.demo import run_demo, summarize  # deferred: start-up time

    reports = run_demo(Path(args.root), args.overrides, args.workers, args.regenerate)
    sys.stdout.write(summarize(reports) + "\n")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from pipeline.core.hdf5 import ArtifactError  # deferred: start-up time
    from pipeline.store.inspect import describe  # deferred: start-up time

    try:
        sys.stdout.write(describe(args.path, video=args.video) + "\n")
    except ArtifactError as exc:
        log.error("%s", exc)
        return 2
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    """``metrics vsc-matching | vsc-descriptor | vcsl``: one JSON object on stdout (no NaN: ``null``)."""
    import json

    from pipeline.steps.formats import field_metrics as fm  # deferred: start-up time

    if args.protocol == "vsc-matching":
        out = fm.vsc_matching(Path(args.gt), Path(args.pred))
    elif args.protocol == "vsc-descriptor":
        out = fm.vsc_descriptor(Path(args.gt), Path(args.candidates))
    else:
        if not (args.ratio_pos_neg > 0 and args.ratio_pos_neg < float("inf")):
            sys.stderr.write(f"metrics: --ratio-pos-neg must be a positive number, got {args.ratio_pos_neg}\n")
            return 2
        out = fm.vcsl(Path(args.labels), Path(args.split), Path(args.pred), Path(args.meta) if args.meta else None,
                      args.ratio_pos_neg)
    sys.stdout.write(json.dumps(fm.finite_or_none(out), allow_nan=False) + "\n")
    return 0


def cmd_tmk(args: argparse.Namespace) -> int:
    """``tmk hash VIDEO -o OUT.tmk`` / ``tmk score A.tmk B.tmk``: one JSON object on stdout."""
    import json

    from pipeline.steps.formats import meta_tmk  # deferred: start-up time

    if args.tmk_command == "hash":
        out = meta_tmk.hash_to_file(Path(args.video), Path(args.output), args.ffmpeg)
    elif args.tmk_command == "query":
        out = meta_tmk.query_folder(Path(args.query), Path(args.corpus), args.c1, args.c2, args.ffmpeg)
    else:
        out = meta_tmk.score_files(Path(args.a), Path(args.b))
    sys.stdout.write(json.dumps(out, allow_nan=False) + "\n")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
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


def cmd_query(args: argparse.Namespace) -> int:
    import json
    import math
    from dataclasses import asdict

    from pipeline.config.load import load_config  # deferred: start-up time
    from pipeline.steps.query import find_index, query  # deferred: start-up time

    idx_path = Path(args.index) if args.index else find_index(load_config(args.dataset, args.overrides))
    res = query(Path(args.video), idx_path, args.model or None, args.top)
    if args.json:  # strict JSON: a value that is not a number (no segment, no DRAQ) is null
        matches = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(r).items()}
                   for r in res.matches]
        sys.stdout.write(json.dumps({"query": res.video, "model": res.model, "index": str(res.index_dir),
                                     "units": "seconds; offset = t_query - t_match", "matches": matches},
                                    indent=2, allow_nan=False) + "\n")
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


def cmd_refresh(args: argparse.Namespace) -> int:
    """Cron entry: 0 success, 3 some files failed (the rest is published), 75 another run holds
    the lock, 1 any other error; always one line on stderr saying why when non-zero."""
    from pipeline.config.load import load_config  # deferred: start-up time
    from pipeline.core.lock import LockHeldError  # deferred: start-up time
    from pipeline.steps.operations.refresh import locked_refresh  # deferred: start-up time
    from pipeline.store.layout import Layout  # deferred: start-up time
    from pipeline.store.publish import PinnedError  # deferred: start-up time
    from pipeline.store.quarantine import describe, load_quarantine  # deferred: start-up time

    try:
        layout = Layout(load_config(args.dataset, args.overrides))
        res = locked_refresh(layout, keep=args.keep, progress=not args.quiet)
    except (LockHeldError, PinnedError) as exc:
        sys.stderr.write(f"refresh: {exc}\n")
        return EXIT_LOCKED
    except Exception as exc:  # cron wants one line, not a traceback
        log.debug("refresh failed", exc_info=True)
        text = str(exc).strip().splitlines()
        sys.stderr.write(f"refresh: {type(exc).__name__}: {text[0] if text else ''}\n")
        return 1
    sys.stdout.write(res.summary() + "\n")
    for line in describe(load_quarantine(layout.quarantine_file)):  # every entry, with its cause and fate
        sys.stdout.write(f"NOTE {line}\n")
    if res.failures:
        for f in res.failures:
            sys.stderr.write(f"failed: {f}\n")
        sys.stderr.write(f"refresh: {len(res.failures)} file(s) failed (see failures.csv in {res.version})\n")
        return EXIT_FAILED_FILES
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
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
            target = rollback(layout.published_root, args.to, force=args.force)
    except LockHeldError as exc:
        sys.stderr.write(f"rollback: {exc}\n")
        return EXIT_LOCKED
    sys.stdout.write(f"current -> {target.name} (held: refreshes will not publish until released with: "
                     f"python -m pipeline rollback {layout.cfg.selector} --release)\n")
    return 0


def luigid_executable() -> str | None:
    """Luigi's scheduler beside the running interpreter (a virtual environment's ``bin/``, which cron's
    ``venv/bin/python -m pipeline luigid`` does not put on PATH), else the one on PATH."""
    import os
    import shutil

    beside = Path(sys.executable).parent / "luigid"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("luigid")


def cmd_luigid(args: argparse.Namespace) -> int:
    """``luigid`` with the pipeline's scheduler settings (``configs/luigid.cfg``: a dead worker's tasks
    are handed to another worker within a minute), unless ``$LUIGI_CONFIG_PATH`` names another file."""
    import os
    from importlib import resources

    exe = luigid_executable()
    if exe is None:
        sys.stderr.write(f"luigid: not found beside {sys.executable} nor on PATH (it comes with luigi: "
                         f"pip install luigi)\n")
        return EXIT_ERROR
    env = dict(os.environ)
    if not env.get("LUIGI_CONFIG_PATH"):
        env["LUIGI_CONFIG_PATH"] = str(resources.files("configs").joinpath("luigid.cfg"))
    sys.stderr.write(f"luigid with {env['LUIGI_CONFIG_PATH']}\n")
    sys.stderr.flush()
    os.execve(exe, [exe, *args.luigid_args], env)
    return 0  # not reached


EXIT_INCOMPLETE = 50


def cmd_luigi(argv: list[str]) -> int:
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


def cmd_verify(args: argparse.Namespace) -> int:
    from pipeline.steps.operations.verify import (  # deferred: start-up time
        held_files,  # deferred: start-up time
        notes,
        verify,
    )

    problems, checked = verify(args.target, args.overrides)
    for p in problems:
        sys.stdout.write(f"PROBLEM {p}\n")
    for n in notes(args.target, args.overrides):
        sys.stdout.write(f"NOTE {n}\n")
    held = held_files(args.target, args.overrides)
    sys.stdout.write(f"verify: {checked} artifact(s) checked, {len(problems)} problem(s)"
                     f"{f', {len(held)} corpus file(s) no refresh will retry' if held else ''}\n")
    if problems:
        return 1
    return EXIT_FAILED_FILES if held else 0


def cmd_generate(args: argparse.Namespace) -> int:
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


def cmd_train(args: argparse.Namespace) -> int:
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


def cmd_periods(args: argparse.Namespace) -> int:
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


def cmd_align(args: argparse.Namespace) -> int:
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
