"""Long videos by MultiDiffusion over time: time and peak memory against length, windows vs one pass.

    python benchmarks/bench_long.py [--model shapes-tiny] [--frames 16,64,256] [--window 16] [--overlap 8]
                                    [--steps 5] [--batch-size 1] [--modes windows,full] [--threads 1]
                                    [--device cpu|cuda]

Each (mode, length) runs in a fresh subprocess that samples one video. "windows" is
`sample_long` (TemporalWindows, `--batch-size` windows per forward); "full" runs the backbone on all
frames at once (what the model does without windows), for comparison.

Memory: on CPU, the peak resident set of the subprocess while sampling, i.e. the growth of
`resource.getrusage(RUSAGE_SELF).ru_maxrss` (the high-water mark) from just before sampling (model
loaded) to just after — it counts torch's activations, which tracemalloc cannot see. On CUDA,
`torch.cuda.max_memory_allocated` during sampling. Time is wall clock of the sampling call, no warm-up.
Ratios are against the 16-frame (first length) row of the same mode, measured in the same run.
Prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _maxrss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 2**10  # bytes on macOS, KiB on Linux


def worker(args) -> None:
    import torch

    from vidiff.pipelines import load_pipeline
    from vidiff.pipelines.base import sample_videos
    from vidiff.pipelines.long import sample_long, window_starts

    torch.set_num_threads(args.threads)
    pipe = load_pipeline(args.model)
    pipe.model.to(args.device)
    F = args.frames
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        base = _maxrss_mb()
    t0 = time.perf_counter()
    if args.mode == "windows":
        x = sample_long(pipe, 1, frames=F, window=args.window, overlap=args.overlap, steps=args.steps,
                        batch_size=args.batch_size, seed=0)
        n_windows = len(window_starts(F, args.window, args.overlap))
    else:
        x = sample_videos(pipe.model, pipe.diffusion, (1, pipe.video.channels, F, pipe.video.size, pipe.video.size),
                          steps=args.steps, seed=0)
        n_windows = 1
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() / 2**20 if cuda else _maxrss_mb()) - base
    assert x.shape[2] == F
    print(json.dumps(dict(frames=F, mode=args.mode, windows=n_windows, time=dt, peak_mb=peak)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="shapes-tiny")
    p.add_argument("--frames", default="16,64,256", help="lengths; the first is the baseline of the ratios")
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--overlap", type=int, default=8)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=1,
                   help="windows per forward pass (peak memory ~ this many windows)")
    p.add_argument("--modes", default="windows,full")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="windows", help=argparse.SUPPRESS)
    args, _ = p.parse_known_args()
    if args.worker:
        args.frames = int(args.frames)
        return worker(args)

    lengths = [int(f) for f in args.frames.split(",")]
    print(f"{args.model}, window {args.window}, overlap {args.overlap}, {args.steps} DDIM steps, "
          f"batch {args.batch_size} windows, {args.threads} thread(s), {args.device}; "
          f"memory = {'CUDA max_memory_allocated' if args.device.startswith('cuda') else 'ru_maxrss growth'} "
          "while sampling, one video, fresh process per row\n")
    print("| mode | frames | windows | time (s) | time ratio | peak MB | memory ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode in args.modes.split(","):
        base = None
        for F in lengths:
            cmd = [sys.executable, __file__, "--worker", "--mode", mode, "--frames", str(F), "--model", args.model,
                   "--window", str(args.window), "--overlap", str(args.overlap), "--steps", str(args.steps),
                   "--batch-size", str(args.batch_size), "--threads", str(args.threads), "--device", args.device]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                print(f"| {mode} | {F} | failed: {res.stderr.strip().splitlines()[-1][:80]} | | | | |")
                continue
            r = json.loads(res.stdout.strip().splitlines()[-1])
            base = base or r
            print(f"| {mode} | {F} | {r['windows']} | {r['time']:.2f} | {r['time'] / base['time']:.2f} | "
                  f"{r['peak_mb']:.0f} | {r['peak_mb'] / max(base['peak_mb'], 1e-9):.2f} |")


if __name__ == "__main__":
    main()
