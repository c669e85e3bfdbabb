"""Frame-feature extraction throughput: decode-only, CNN-only, end-to-end.

    python benchmarks/bench_extract.py                 # clips of ../shared/videos (or generated)
    python benchmarks/bench_extract.py --videos DIR --max-clips 22

Measured in one run, on the same clips:

* decode-only: 15-fps samples per second of ``extractors.decode.reader.iter_samples``
  in one process (what one decode worker delivers);
* CNN-only: frames per second of the ResNet-34 level-29 + R-MAC extractor on
  already decoded frames (random weights: the speed is the same);
* end-to-end: ``pipeline.steps.features.extract.extract_shard`` (decode workers feeding the
  CNN), for each thread layout in ``--layouts`` (``workers:torch_threads``);
* the realtime factor (video seconds per wall second) and the ratio
  end-to-end / min(decode-only, CNN-only); target on the 2-core CPU: >= 0.8;
* with ``--hwaccel cuda``: decode-only in software and on the GPU's decoder (the
  samples must agree in number and size), and end to end with the GPU's decoder.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

from extractors.decode.reader import iter_samples, to_model_input
from extractors.frame.resnet_rmac import ExtractorSettings, FrameFeatureExtractor
from pipeline.steps.features.extract import extract_shard_videos as extract_shard
from pipeline.steps.features.settings import ExtractionSettings

log = logging.getLogger("bench_extract")
ROOT = Path(__file__).resolve().parents[1]


def find_clips(folder: Path | None, max_clips: int, tmp: Path) -> list[Path]:
    folder = folder or ROOT.parent / "shared" / "videos"
    clips = sorted(folder.glob("*.mp4")) if folder.is_dir() else []
    if clips:
        # shortest first, so a small --max-clips still spans several sources
        clips.sort(key=lambda p: p.stat().st_size)
        return clips[:max_clips]
    sys.path.insert(0, str(ROOT))
    from tests.videos import make_video  # the repository's tests are not installed: found through ROOT

    log.info("no clips in %s: generating %d", folder, max_clips)
    return [make_video(tmp / f"gen{i}.mp4", fps=(25, 30, 24)[i % 3], n_frames=300, width=640,
                       height=360, seed=i) for i in range(max_clips)]


def hw_engaged(clip: Path, hwaccel: str) -> bool:
    """Whether FFmpeg really decodes ``clip`` on the ``hwaccel`` device (it falls back silently)."""
    import av
    from av.codec.hwaccel import HWAccel

    try:
        with av.open(str(clip), hwaccel=HWAccel(device_type=hwaccel, allow_software_fallback=False)) as c:
            stream = c.streams.video[0]
            next(c.decode(stream))
            return bool(getattr(stream.codec_context, "is_hwaccel", False))
    except (av.error.FFmpegError, StopIteration, ValueError):
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=Path, default=None)
    ap.add_argument("--max-clips", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--layouts", default="1:1,1:2", help="decode_workers:torch_threads, comma-separated")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--hwaccel", default="none", help="FFmpeg hardware decoder (e.g. cuda), measured "
                    "against software decoding in the same run")
    ap.add_argument("--precision", default="auto", help="auto (CPU: float32) | float32 | bfloat16 | float16")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tmp = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    clips = find_clips(args.videos, args.max_clips, tmp)

    # decode-only (one process, as one worker): software, and the hardware decoder when asked for
    def decode_all(hwaccel: str | None) -> tuple[list, float, float]:
        t0 = time.perf_counter()
        frames, seconds = [], 0.0
        for c in clips:
            for chunk in iter_samples(c, chunk=args.batch_size, threads=1, hwaccel=hwaccel):
                frames.append(chunk[0])
            seconds += chunk[3].duration_s
        return frames, seconds, time.perf_counter() - t0

    decoded, video_s, decode_s = decode_all(None)
    n_frames = sum(len(f) for f in decoded)
    if args.hwaccel != "none":
        software_fps = n_frames / decode_s
        hw, _, decode_s = decode_all(args.hwaccel)
        same = sum(len(f) for f in hw) == n_frames and all(a.shape == b.shape
                                                           for a, b in zip(hw, decoded, strict=True))
        print(f"decode-only, one process: software {software_fps:.0f} frames/s, {args.hwaccel} "
              f"{n_frames / decode_s:.0f} frames/s ({n_frames / decode_s / software_fps:.2f}x software); hardware "
              f"decoder engaged: {hw_engaged(clips[0], args.hwaccel)}; same samples: {same}")

    ex = FrameFeatureExtractor(ExtractorSettings(weights="random", device=args.device, precision=args.precision))
    device = ex.device
    layouts = [tuple(int(v) for v in s.split(":")) for s in args.layouts.split(",")]
    rows = []
    for workers, threads in layouts:
        torch.set_num_threads(threads)
        ex(torch.from_numpy(to_model_input(decoded[0])))  # warm-up
        t0 = time.perf_counter()
        for frames in decoded:
            ex(torch.from_numpy(to_model_input(frames)))
        cnn_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = extract_shard([(c.stem, c) for c in clips], tmp / f"shard-{workers}-{threads}", ex,
                            ExtractionSettings(decode_workers=workers, torch_threads=threads,
                                               batch_size=args.batch_size, progress=False,
                                               hwaccel=args.hwaccel))
        e2e_s = time.perf_counter() - t0
        assert res.frames == n_frames and not res.failures, (res.frames, n_frames, res.failures)
        dec_fps, cnn_fps, e2e_fps = n_frames / decode_s, n_frames / cnn_s, n_frames / e2e_s
        rows.append((workers, threads, dec_fps, cnn_fps, e2e_fps, video_s / e2e_s,
                     e2e_fps / min(dec_fps, cnn_fps)))

    print(f"\nExtraction benchmark: {len(clips)} clips, {video_s:.0f} s of video, {n_frames} frames "
          f"at 15 fps; device {device}, precision {ex.precision}, batch {args.batch_size}\n")
    print("| decode workers | torch threads | decode-only fps | CNN-only fps | end-to-end fps "
          "| realtime x | e2e / min(decode, CNN) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for w, t, d, c, e, rt, ratio in rows:
        print(f"| {w} | {t} | {d:.0f} | {c:.0f} | {e:.0f} | {rt:.1f} | {ratio:.2f} |")
    best = max(rows, key=lambda r: r[4])
    print(f"\nfastest layout: {best[0]} decode worker(s), {best[1]} torch thread(s): "
          f"{best[4]:.0f} frames/s end to end, ratio {best[6]:.2f} (target >= 0.8)")


if __name__ == "__main__":
    main()
