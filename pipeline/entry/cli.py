"""Command line: ``python -m pipeline <command>`` (also installed as ``videoalign``)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from extractors.runtime.errors import VideoAlignError
from pipeline.entry.commands import (
    EXIT_ERROR,
    cmd_align,
    cmd_build,
    cmd_demo,
    cmd_generate,
    cmd_inspect,
    cmd_luigi,
    cmd_luigid,
    cmd_metrics,
    cmd_periods,
    cmd_query,
    cmd_refresh,
    cmd_rollback,
    cmd_tmk,
    cmd_train,
    cmd_verify,
)

log = logging.getLogger("pipeline")


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
    demo.set_defaults(func=cmd_demo)
    b = sub.add_parser("build", help="run the batch chain without a scheduler (same steps and outputs as Luigi)")
    b.add_argument("--dataset", required=True, help="configs/<NAME>.yaml or a path to a YAML file")
    b.add_argument("--overrides", default="", help="config overrides 'key.path=value;...'")
    b.add_argument("--until", default="index", choices=["features", "descriptors", "index", "search", "evaluate"],
                   help="last stage to run (default: index)")
    b.add_argument("--model", action="append", help="search/evaluate only this model (repeatable)")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=cmd_build)
    insp = sub.add_parser("inspect", help="print a readable summary of an artifact file or shard")
    insp.add_argument("path", help="an HDF5 artifact (features, pack, descriptors, index) or a shard dir")
    insp.add_argument("--video", help="details of one video (by id)")
    insp.set_defaults(func=cmd_inspect)
    q = sub.add_parser("query", help="rank the indexed videos that contain a copy of VIDEO, with offsets")
    q.add_argument("video", help="a video file")
    q.add_argument("--index", help="an index directory (default: the dataset's current index)")
    q.add_argument("--dataset", default="demo", help="dataset config when --index is not given")
    q.add_argument("--overrides", default="", help="config overrides 'key.path=value;...'")
    q.add_argument("--model", default="", help="re-ranking model (default: search.model)")
    q.add_argument("--top", type=int, default=10, help="number of matches to print")
    q.add_argument("--json", action="store_true", help="JSON output")
    q.set_defaults(func=cmd_query)
    r = sub.add_parser("refresh", help="incremental refresh + atomic publish (for cron); exit 3 if files failed")
    r.add_argument("--dataset", required=True)
    r.add_argument("--overrides", default="")
    r.add_argument("--keep", type=int, default=3, help="published versions kept for rollback")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=cmd_refresh)
    rb = sub.add_parser("rollback", help="point the published index back at the previous version")
    rb.add_argument("--dataset", required=True)
    rb.add_argument("--overrides", default="")
    rb.add_argument("--to", default=None, help="a version name, e.g. v000003 (default: the previous one)")
    rb.add_argument("--release", action="store_true", help="let refreshes publish again after a rollback")
    rb.add_argument("--force", action="store_true", help="roll back even to a version whose files fail their "
                                                          "checksums")
    rb.set_defaults(func=cmd_rollback)
    sub.add_parser("luigi", help="luigi --module pipeline ARGS, exiting 50 (one line) when the root task is "
                                 "still incomplete at the end (e.g. tasks held by a worker that died)")
    ld = sub.add_parser("luigid", help="start Luigi's central scheduler with the pipeline's settings "
                                       "(configs/luigid.cfg); other arguments go to luigid")
    ld.add_argument("luigid_args", nargs=argparse.REMAINDER, help="e.g. --port 8082 --state-path ...")
    ld.set_defaults(func=cmd_luigid)
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
    g.set_defaults(func=cmd_generate)
    tr = sub.add_parser("train", help="train the dataset's models that learn from its ground truth (learned LAMV "
                                      "kernels, TCA; held-out fold excluded; resumes an interrupted training)")
    tr.add_argument("--dataset", required=True)
    tr.add_argument("--overrides", default="")
    tr.add_argument("--model", action="append", help="one model to train (repeatable; default: every one trained "
                                                    "here)")
    tr.add_argument("--quiet", action="store_true", help="no progress bars")
    tr.set_defaults(func=cmd_train)
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
    pd.set_defaults(func=cmd_periods)
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
    al.set_defaults(func=cmd_align)
    me = sub.add_parser("metrics", help="score result files with the field's protocols (VSC 2022, VCSL); JSON on "
                                        "stdout")
    msub = me.add_subparsers(dest="protocol", required=True)
    vm = msub.add_parser("vsc-matching", help="VSC 2022 matching track: segment micro-AP and pairwise micro-AP")
    vm.add_argument("--gt", required=True, help="ground-truth CSV (query_id,ref_id,query_start,query_end,"
                                                "ref_start,ref_end)")
    vm.add_argument("--pred", required=True, help="matches CSV (the same columns and score)")
    vd = msub.add_parser("vsc-descriptor", help="VSC 2022 descriptor track: micro-AP of candidate pairs")
    vd.add_argument("--gt", required=True, help="ground-truth CSV")
    vd.add_argument("--candidates", required=True, help="candidates CSV (query_id,ref_id,score)")
    vc = msub.add_parser("vcsl", help="VCSL: micro precision / recall / F1, FAR / FRR, macro over query sets")
    vc.add_argument("--labels", required=True, help="label_file.json")
    vc.add_argument("--split", required=True, help="the split's pair file (query_id,reference_id)")
    vc.add_argument("--pred", required=True, help="predictions JSON ({'q-r': [[q0, r0, q1, r1], ...]})")
    vc.add_argument("--meta", help="meta_pairs.json: query sets for the macro average")
    vc.add_argument("--ratio-pos-neg", type=float, default=1.0, help="positives / negatives of the split "
                                                                     "(VCSL's FAR / FRR weighting; default 1)")
    me.set_defaults(func=cmd_metrics)
    tk = sub.add_parser("tmk", help="Meta-compatible TMK+PDQF hashes (.tmk files of facebook/ThreatExchange); JSON "
                                    "on stdout")
    tsub = tk.add_subparsers(dest="tmk_command", required=True)
    th = tsub.add_parser("hash", help="hash a video as tmk-hash-video does")
    th.add_argument("video")
    th.add_argument("-o", "--output", required=True, help="the .tmk file to write")
    th.add_argument("--ffmpeg", help="the ffmpeg program (default: ffmpeg on PATH, else imageio-ffmpeg's)")
    ts = tsub.add_parser("score", help="level-1 and level-2 scores of two .tmk files, as tmk-two-level-score")
    ts.add_argument("a")
    ts.add_argument("b")
    tq = tsub.add_parser("query", help="search a folder of .tmk files for copies of a .tmk file or a video, as "
                                       "tmk-query (level 1, then level 2)")
    tq.add_argument("query", help="a .tmk file, or a video to hash first")
    tq.add_argument("--corpus", required=True, help="a folder of .tmk files (searched recursively)")
    tq.add_argument("--c1", type=float, default=0.7, help="level-1 threshold (default 0.7, Meta's)")
    tq.add_argument("--c2", type=float, default=0.7, help="level-2 threshold (default 0.7, Meta's)")
    tq.add_argument("--ffmpeg", help="the ffmpeg program, when the query is a video")
    tk.set_defaults(func=cmd_tmk)
    v = sub.add_parser("verify", help="check every artifact of a dataset (or one file/directory)")
    v.add_argument("target", help="a dataset name / YAML, or an artifact path")
    v.add_argument("--overrides", default="")
    v.set_defaults(func=cmd_verify)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["luigid"] and not {"-h", "--help"} & set(argv[1:2]):  # everything else goes to luigid
        return cmd_luigid(argparse.Namespace(luigid_args=argv[1:]))
    if argv[:1] == ["luigi"]:  # everything else goes to luigi (--module pipeline is implied)
        rest = argv[1:]
        return cmd_luigi(rest if "--module" in rest else ["--module", "pipeline", *rest])
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
