"""The CUDA paths against the same machine's CPU, in one run.

    python benchmarks/bench_gpu.py            # needs a CUDA device
    python benchmarks/bench_gpu.py --quick    # smaller sizes (also runs CPU-only: then "cuda" is the CPU)

For each operation the CPU (float32, every core: ``--threads``) and the CUDA device run the same
inputs, and the table gives both rates, the speed-up and how far the outputs agree:

* frame CNN: ResNet-34 level 29 + R-MAC (random weights: the speed is the same) on 16:9 frames at the
  decoder's default size (12,000 pixels: 145 x 82),
  CUDA in the extractor's automatic precision (bfloat16 on current GPUs);
* selfsup frame network (the offline extractor): descriptors;
* TMK ``lamv``: descriptor of one 9000-frame video (d = 512), and ``score_max`` of 1 query against
  10,000 database descriptors over 18,000 offsets (arg-max agreement);
* selfsup training steps (batch 64, 112x112 views; the attacks and the loss stay on the CPU);
* TCA training steps (batch 32, 300 positions, d = 256).

Times are medians over ``--repeats`` runs after one warm-up, with the device synchronised.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from extractors.decode.reader import resized_size, to_model_input
from extractors.frame.resnet_rmac import ExtractorSettings, FrameFeatureExtractor
from extractors.frame.selfsup import FrameModel, SelfSupExtractor, TrainSettings, train_copy_net
from extractors.temporal.tca import TCA, TCAConfig
from extractors.temporal.tmk import TMK
from extractors.training.tca_training import TCATrainSettings, train_tca

log = logging.getLogger("bench_gpu")


@dataclass(frozen=True)
class Row:
    operation: str
    unit: str
    cpu_rate: float
    gpu_rate: float
    agreement: str


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` runs after one warm-up."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return float((a * b).sum(1).min())


def decoded_frames(n: int, seed: int = 0) -> np.ndarray:
    """``(n, h, w, 3) uint8``: 16:9 frames at the decoder's default size (``resized_size(640, 360)``),
    smooth random pictures (not white noise, so the pooling has structure)."""
    w, h = resized_size(640, 360)
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, 3, 9, 16, generator=g)
    big = torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return (big.permute(0, 2, 3, 1) * 255).to(torch.uint8).numpy()


def bench_cnn(cuda: torch.device, n_cpu: int, n_gpu: int, repeats: int) -> Row:
    frames = decoded_frames(max(n_cpu, n_gpu))
    x = torch.from_numpy(to_model_input(frames))
    cpu = FrameFeatureExtractor(ExtractorSettings(weights="random", device="cpu", precision="float32"))
    gpu = FrameFeatureExtractor(ExtractorSettings(weights="random", device=cuda.type))
    batch = 32

    def run(ex: FrameFeatureExtractor, n: int) -> np.ndarray:
        return torch.cat([ex(x[i:i + batch]) for i in range(0, n, batch)]).numpy()

    t_cpu = timed(lambda: run(cpu, n_cpu), torch.device("cpu"), repeats)
    t_gpu = timed(lambda: run(gpu, n_gpu), cuda, repeats)
    agree = min_cosine(run(cpu, batch), run(gpu, batch))
    return Row(f"frame CNN (ResNet-34 L29 + R-MAC, CUDA {gpu.precision}, batch {batch})", "frames/s",
               n_cpu / t_cpu, n_gpu / t_gpu, f"min cosine {agree:.4f}")


def bench_selfsup_describe(cuda: torch.device, n_cpu: int, n_gpu: int, repeats: int) -> Row:
    s = TrainSettings(steps=1, batch=8, warmup=1)
    net, _ = train_copy_net((torch.rand(16, 3, 112, 112) * 255).to(torch.uint8), s)
    model = FrameModel.from_training(net, s, {})
    frames = decoded_frames(max(n_cpu, n_gpu), seed=1)
    cpu, gpu = SelfSupExtractor(model, device="cpu"), SelfSupExtractor(model, device=cuda.type)
    batch = 64

    def run(ex: SelfSupExtractor, n: int) -> np.ndarray:
        return np.concatenate([ex.describe(frames[i:i + batch]) for i in range(0, n, batch)])

    t_cpu = timed(lambda: run(cpu, n_cpu), torch.device("cpu"), repeats)
    t_gpu = timed(lambda: run(gpu, n_gpu), cuda, repeats)
    agree = min_cosine(run(cpu, batch), run(gpu, batch))
    return Row(f"selfsup descriptors (batch {batch})", "frames/s", n_cpu / t_cpu, n_gpu / t_gpu,
               f"min cosine {agree:.5f}")


def bench_tmk(cuda: torch.device, n_frames: int, n_db: int, repeats: int) -> list[Row]:
    d = 512
    torch.manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(1, n_frames, d), dim=-1)
    t = torch.arange(n_frames, dtype=torch.float64)[None]
    offsets = torch.arange(-n_frames, n_frames)
    cpu, gpu = TMK.preset("lamv"), TMK.preset("lamv").to(cuda)
    xg, tg = x.to(cuda), t.to(cuda)
    t_cpu = timed(lambda: cpu.descriptor(x, t), torch.device("cpu"), repeats)
    t_gpu = timed(lambda: gpu.descriptor(xg, tg), cuda, repeats)
    fc, fg = cpu.descriptor(x, t), gpu.descriptor(xg, tg).cpu()
    rel = float((fc - fg).abs().max() / fc.abs().max())
    rows = [Row(f"TMK lamv descriptor, {n_frames} frames, d={d}", "videos/s", 1 / t_cpu, 1 / t_gpu,
                f"max rel. diff {rel:.1e}")]

    db = cpu.normalize(torch.randn(n_db, cpu.P, 2 * cpu.m, d))
    dbg = db.to(cuda)
    q, qg = cpu.normalize(fc), gpu.normalize(fg.to(cuda))
    t_cpu = timed(lambda: cpu.score_max(q, db, offsets, normalized=True), torch.device("cpu"), repeats)
    t_gpu = timed(lambda: gpu.score_max(qg, dbg, offsets.to(cuda), normalized=True), cuda, repeats)
    _, oc = cpu.score_max(q, db, offsets, normalized=True)
    _, og = gpu.score_max(qg, dbg, offsets.to(cuda), normalized=True)
    agree = float((oc == og.cpu()).double().mean())
    rows.append(Row(f"TMK lamv score_max 1 vs {n_db:,}, K={2 * n_frames:,}", "candidates/s", n_db / t_cpu,
                    n_db / t_gpu, f"arg-max agree {agree:.1%}"))
    return rows


def bench_selfsup_training(cuda: torch.device, steps: int) -> Row:
    data = (torch.rand(512, 3, 112, 112) * 255).to(torch.uint8)
    s = TrainSettings(steps=steps + 1, warmup=1)

    def rate(device: torch.device) -> float:
        times: list[float] = []
        last = [time.perf_counter()]

        def on_step(step: int, _loss: float) -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            now = time.perf_counter()
            if step > 0:  # step 0 warms up
                times.append(now - last[0])
            last[0] = now

        train_copy_net(data, s, device=device, on_step=on_step)
        return 1 / statistics.median(times)

    return Row(f"selfsup training (batch {s.batch}, {s.input_size}x{s.input_size}, {steps} steps)", "steps/s",
               rate(torch.device("cpu")), rate(cuda), "")


def bench_tca_training(cuda: torch.device, steps: int) -> Row:
    rng = np.random.default_rng(0)
    n_videos, d = 64, 256
    videos = [rng.standard_normal((int(rng.integers(900, 4500)), d)).astype(np.float32) for _ in range(n_videos)]
    groups = np.arange(n_videos) // 2
    pairs = np.stack([np.arange(0, n_videos, 2), np.arange(1, n_videos, 2)], 1)
    settings = TCATrainSettings(steps=steps + 1, batch=32)

    def run(device: torch.device, n_steps: int) -> float:
        torch.manual_seed(0)
        model = TCA(TCAConfig(dim=d))
        t0 = time.perf_counter()
        train_tca(model, videos, groups, pairs, replace(settings, steps=n_steps), every=10**9, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    def rate(device: torch.device) -> float:  # the first step (warm-up, set-up) subtracted
        return steps / max(run(device, steps + 1) - run(device, 1), 1e-9)

    return Row(f"TCA training (batch {settings.batch}, 300 x {d}, {steps} steps)", "steps/s",
               rate(torch.device("cpu")), rate(cuda), "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    cuda = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if cuda.type != "cuda":
        log.warning("no CUDA device: both columns are the CPU")
    q = args.quick
    rows: list[Row] = []
    steps: list[tuple[str, Callable[[], list[Row]]]] = [
        ("frame CNN", lambda: [bench_cnn(cuda, 32 if q else 128, 64 if q else 2048, args.repeats)]),
        ("selfsup descriptors", lambda: [bench_selfsup_describe(cuda, 64 if q else 512, 128 if q else 4096,
                                                                args.repeats)]),
        ("TMK", lambda: bench_tmk(cuda, 1500 if q else 9000, 200 if q else 10_000, args.repeats)),
        ("selfsup training", lambda: [bench_selfsup_training(cuda, 3 if q else 20)]),
        ("TCA training", lambda: [bench_tca_training(cuda, 3 if q else 40)]),
    ]
    for name, fn in steps:
        log.info("measuring %s ...", name)
        for r in fn():
            log.info("  %s: CPU %.1f, CUDA %.1f %s (%s)", r.operation, r.cpu_rate, r.gpu_rate, r.unit, r.agreement)
            rows.append(r)

    gpu_name = torch.cuda.get_device_name(cuda) if cuda.type == "cuda" else "none"
    print(f"\nGPU benchmark: torch {torch.__version__}, CPU {args.threads} threads, CUDA device {gpu_name}\n")
    print("| operation | unit | CPU | CUDA | speed-up | agreement |")
    print("|---|---|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r.operation} | {r.unit} | {r.cpu_rate:,.1f} | {r.gpu_rate:,.1f} | "
              f"{r.gpu_rate / r.cpu_rate:.1f}x | {r.agreement} |")


if __name__ == "__main__":
    main()
