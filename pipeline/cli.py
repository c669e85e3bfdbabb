"""Command line: ``python -m pipeline <command>`` (also installed as ``videoalign``)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("pipeline")


def _cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.demo import format_summary, run_feature_demo

    summary = run_feature_demo(Path(args.out), seed=args.seed)
    sys.stdout.write(format_summary(summary) + "\n")
    sys.stdout.write(f"summary written to {Path(args.out) / 'summary.json'}\n")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from pipeline.artifacts import ArtifactError, describe

    try:
        sys.stdout.write(describe(args.path, video=args.video) + "\n")
    except ArtifactError as exc:
        log.error("%s", exc)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline",
                                description="Video copy detection and temporal alignment pipeline.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the bundled demo corpus end to end")
    demo.add_argument("--out", default="demo_output", help="output directory (default: demo_output)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_cmd_demo)
    insp = sub.add_parser("inspect", help="print a readable summary of an artifact file or shard")
    insp.add_argument("path", help="an HDF5 artifact (features, pack, descriptors, index) or a shard dir")
    insp.add_argument("--video", help="details of one video (by id)")
    insp.set_defaults(func=_cmd_inspect)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args))
