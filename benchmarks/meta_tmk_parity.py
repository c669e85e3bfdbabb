"""Parity of the project's Meta-compatible TMK+PDQF hashes with Meta's own tools.

    python benchmarks/meta_tmk_parity.py --tools /path/to/ThreatExchange/tmk/cpp --videos ../shared/videos

``--tools`` is a folder with Meta's ``tmk-hash-video`` and ``tmk-two-level-score`` built from
``facebook/ThreatExchange`` (``cd tmk/cpp && make tmk-hash-video tmk-two-level-score``). Each video is
hashed by Meta's tool and by ``python -m pipeline tmk hash`` (same ffmpeg); printed per video: frame
counts, the cosine of the two pure averages, the largest difference of the cos / sin features, and the
level-1 / level-2 scores between the two hashes; then, over every pair of videos, the largest
difference between Meta's scores of Meta's hashes and the project's scores of the project's hashes,
and whether Meta's ``tmk-two-level-score`` reads the project's files and scores them as the project
does.
"""

# ruff: noqa: E402  (the repository root goes on sys.path first: run as a script)
from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import numpy as np

from extractors.decode.ffmpeg_frames import find_ffmpeg
from index.meta_tmk import level1, level2
from pipeline.store.tmk_files import read_tmk


def meta_scores(tool: Path, files: list[Path]) -> dict[frozenset, tuple[float, float]]:
    out = subprocess.run([str(tool), "-i", "--c1", "-1", "--c2", "-1"], input="\n".join(map(str, files)) + "\n",
                         capture_output=True, text=True, check=True)
    scores = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4:
            scores[frozenset(parts[2:])] = (float(parts[0]), float(parts[1]))
    return scores


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tools", required=True, type=Path, help="folder with Meta's built tmk tools")
    ap.add_argument("--videos", required=True, type=Path, help="folder of videos (*.mp4)")
    ap.add_argument("--limit", type=int, default=8, help="at most this many videos (smallest first)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    ffmpeg = find_ffmpeg()
    videos = sorted(args.videos.glob("*.mp4"), key=lambda p: p.stat().st_size)[: args.limit]
    work = Path(tempfile.mkdtemp(prefix="tmk-parity-"))
    rows, meta_files, our_files = [], [], []
    print("| video | frames (Meta / ours) | pure-average cosine | max cos/sin diff | level 1 | level 2 |")
    print("|---|---:|---:|---:|---:|---:|")
    for v in videos:
        m, o = work / f"meta-{v.stem}.tmk", work / f"ours-{v.stem}.tmk"
        subprocess.run([str(args.tools / "tmk-hash-video"), "-f", ffmpeg, "-i", str(v), "-o", str(m)],
                       check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "pipeline", "tmk", "hash", str(v), "-o", str(o), "--ffmpeg", ffmpeg],
                       check=True, capture_output=True, cwd=ROOT)
        hm, ho = read_tmk(m), read_tmk(o)
        cos = float(np.dot(hm.pure_average, ho.pure_average)
                    / (np.linalg.norm(hm.pure_average) * np.linalg.norm(ho.pure_average)))
        diff = float(max(np.abs(hm.cos - ho.cos).max(), np.abs(hm.sin - ho.sin).max()))
        row = {"video": v.name, "frames_meta": hm.frame_count, "frames_ours": ho.frame_count,
               "average_cosine": cos, "max_feature_diff": diff, "level1": level1(hm, ho), "level2": level2(hm, ho)}
        rows.append(row)
        meta_files.append(m)
        our_files.append(o)
        print(f"| {v.name} | {hm.frame_count} / {ho.frame_count} | {cos:.7f} | {diff:.2e} | {row['level1']:.6f} | "
              f"{row['level2']:.6f} |")
    by_meta = meta_scores(args.tools / "tmk-two-level-score", meta_files)
    by_meta_of_ours = meta_scores(args.tools / "tmk-two-level-score", our_files)
    worst = worst_tool = 0.0
    for (mi, oi), (mj, oj) in itertools.combinations(list(zip(meta_files, our_files, strict=True)), 2):
        s_meta = by_meta[frozenset((str(mi), str(mj)))]
        a, b = read_tmk(oi), read_tmk(oj)
        ours = (level1(a, b), level2(a, b))
        worst = max(worst, abs(s_meta[0] - ours[0]), abs(s_meta[1] - ours[1]))
        tool = by_meta_of_ours[frozenset((str(oi), str(oj)))]
        worst_tool = max(worst_tool, abs(tool[0] - ours[0]), abs(tool[1] - ours[1]))
    pairs = len(videos) * (len(videos) - 1) // 2
    print(f"\n{pairs} pairs: largest |Meta's score of Meta's hashes - ours of ours| = {worst:.2e}; Meta's "
          f"tmk-two-level-score read all {len(our_files)} of our files, largest difference from our scores "
          f"{worst_tool:.2e}")
    if args.json:
        args.json.write_text(json.dumps({"videos": rows, "pairs": pairs, "max_pair_score_diff": worst,
                                         "meta_tool_on_our_files_max_diff": worst_tool}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
