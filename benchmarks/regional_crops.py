"""Picture-in-picture and crops: do regional descriptors of the selfsup network find them?

    python benchmarks/regional_crops.py --root bench_ffmpeg

On an ffmpeg-edited copy corpus built by ``copy_benchmark.py --edits ffmpeg`` (``--root``: its --out,
with the ``selfsup`` network and PCA it trained), every video is decoded at 2 fps (the copy-segment
stage's rate, ``features.image_area`` pixels) and each frame described by the network twice over:
the whole frame (what the pipeline stores) and 25 crops (a 3 x 3 grid of half-size windows and a 4 x 4
grid of 0.35-size windows, every crop resized to the network's input) - the R-MAC-style regions /
"a few crops per frame" the field uses for picture-in-picture.

A pair's score is the strongest copy diagonal of its region-vs-frame similarities: for each region
of one video (the same region along the diagonal) against the whole frames of the other, both ways,
the sum over a diagonal of ``max(0, sim - t)``, ``t`` the background's median + ``units`` x spread
(q90 - median), measured on non-copy pairs of the same regions (as ``calibration: background`` does).
Printed: pair AP of every copy pair and of each edit's pairs among all non-copy pairs, for the whole
frame alone and with the regions; and the embedding cost per second of video (frames x crops).
"""

# ruff: noqa: E402  (the repository root goes on sys.path first: run as a script)
from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812 (torch's convention)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from extractors.decode.reader import DEFAULT_IMAGE_AREA, decode_video
from extractors.frame.base import whiten
from extractors.frame.selfsup import normalise
from pipeline.metrics.pair_level import ranked_ap
from pipeline.store.fitted.frame_model import load_frame_model
from pipeline.store.fitted.pca import load_pca

RATE = 2.0  # frames a second: the copy-segment stage's rate


def windows(side: float, per_axis: int) -> list[tuple[float, float, float]]:
    """``(x, y, side)`` of a ``per_axis`` x ``per_axis`` grid of square-relative windows."""
    pos = np.linspace(0.0, 1.0 - side, per_axis)
    return [(float(x), float(y), side) for y in pos for x in pos]


REGIONS = [(0.0, 0.0, 1.0), *windows(0.5, 3), *windows(0.35, 4)]


@torch.no_grad()
def describe_regions(net, input_size: int, pca, frames: np.ndarray) -> np.ndarray:
    """``frames (T, H, W, 3) uint8`` -> ``(T, R, D)`` whitened unit descriptors of every region."""
    x = torch.as_tensor(frames).permute(0, 3, 1, 2).float() / 255.0
    _, _, H, W = x.shape
    out = []
    for rx, ry, side in REGIONS:
        h, w = max(8, round(side * H)), max(8, round(side * W))
        y0, x0 = round(ry * H), round(rx * W)
        crop = F.interpolate(x[:, :, y0:y0 + h, x0:x0 + w], size=(input_size, input_size), mode="bilinear",
                             antialias=True, align_corners=False)
        out.append(whiten(F.normalize(net(normalise(crop)), dim=1).numpy().astype(np.float32), pca))
    return np.stack(out, axis=1)


def diagonal_score(sim: np.ndarray, threshold: float) -> float:
    """``sim (R, Ta, Tb)`` -> the largest sum of ``max(0, sim - threshold)`` along one diagonal of one region."""
    x = np.clip(sim - threshold, 0.0, None)
    R, Ta, Tb = x.shape
    # every diagonal's sum at once: cell (i, j) to column j - i + Ta - 1 (one column a diagonal), sum the rows
    padded = np.zeros((R, Ta, Ta + Tb - 1), x.dtype)
    rows = np.arange(Ta)[:, None]
    padded[:, rows, Ta - 1 - rows + np.arange(Tb)[None, :]] = x
    return float(padded.sum(axis=1).max(initial=0.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, required=True, help="copy_benchmark.py --edits ffmpeg --out directory")
    ap.add_argument("--units", type=float, default=0.5, help="threshold: background median + units x spread")
    ap.add_argument("--image-area", type=int, default=DEFAULT_IMAGE_AREA)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    torch.set_num_threads(2)
    work = args.root / "work" / "copybench-selfsup"
    model_file = next(work.glob("selfsup-*.pt"))
    pca_file = next(work.glob("pca-*.h5"))
    model, pca = load_frame_model(model_file), load_pca(pca_file)
    net = model.network()
    truth = json.loads((args.root / "truth.json").read_text())
    edits: dict[frozenset, set[str]] = {}
    for t in truth:
        edits.setdefault(frozenset((Path(t["copy"]).stem, Path(t["source"]).stem)), set()).add(
            t["attack"].split("+")[0])
    videos = sorted((args.root / "videos").rglob("*.mp4"))
    t0 = time.process_time()
    desc, seconds = {}, 0.0
    for v in videos:
        d = decode_video(v, image_area=args.image_area, fps=RATE)
        desc[v.stem] = describe_regions(net, model.input_size, pca, d.frames)
        seconds += len(d.frames) / RATE
    cpu = time.process_time() - t0
    names = sorted(desc)
    pairs = list(itertools.combinations(names, 2))
    label = np.array([frozenset(p) in edits for p in pairs])
    print(f"\nRegional crops on {args.root} ({len(names)} videos, {seconds:.0f} s of video, {len(REGIONS)} "
          f"descriptors a frame at {RATE:g} fps, image area {args.image_area}): {cpu:.0f} CPU-s to decode and "
          f"describe, {cpu / seconds:.2f} CPU-s a second of video (the whole frame alone: 1/{len(REGIONS)} of "
          f"the network's share)\n")
    families = sorted({e for es in edits.values() for e in es})
    print(f"| descriptors | threshold | all copies | {' | '.join(families)} |")
    print(f"|---|---:|---:|{'---:|' * len(families)}")
    for tag, regs in (("whole frame", [0]), ("whole frame + 25 crops", list(range(len(REGIONS))))):
        def sims(a: str, b: str, regs: list[int] = regs) -> np.ndarray:
            return np.einsum("trd,ud->rtu", desc[a][:, regs], desc[b][:, 0])
        bg = np.concatenate([sims(a, b).max(axis=(0, 2)) for (a, b), y in zip(pairs, label, strict=True) if not y])
        med = float(np.median(bg))
        threshold = med + args.units * (float(np.quantile(bg, 0.9)) - med)
        score = np.array([max(diagonal_score(sims(a, b), threshold), diagonal_score(sims(b, a), threshold))
                          for a, b in pairs])
        cells = [f"{ranked_ap(score[label], score[~label]):.3f}"]
        for e in families:
            mine = np.array([bool(y) and e in edits[frozenset(p)] for p, y in zip(pairs, label, strict=True)])
            cells.append(f"{ranked_ap(score[mine], score[~label]):.3f}")
        print(f"| {tag} | {threshold:.3f} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
