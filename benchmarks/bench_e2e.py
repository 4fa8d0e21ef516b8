"""End-to-end speed of the demo configuration: training it/s and seconds per sampled video.

    OMP_NUM_THREADS=2 python benchmarks/bench_e2e.py [--train-steps 20] [--repeats 3]

Measured in one run, each against a baseline from the same run:
  * `vidiff.train.train` (data sampling, EMA, accelerate, logging) vs. a bare forward/backward/AdamW
    loop of the same backbone (`--model`, default the demo's unet-nano-joint) on a fixed batch: the ratio
    is the trainer's overhead;
  * one 16×32×32 video with 25 DDIM steps through `VideoPipeline` (the bundled shapes-tiny, or an
    untrained `--model` if none is bundled; with and without its autoguidance) vs. 25 forwards of diffusers'
    UNet3DConditionModel
    (~1.3 M params, the baseline of bench_backbones.py) at B=1.
Target: one video in under 3 s on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_backbones import BASELINE, time_infer, time_train  # noqa: E402


def trainer_steps_per_s(steps: int, model: str) -> float:
    from vidiff.data.synth import render_shapes
    from vidiff.train import TrainConfig, train

    with tempfile.TemporaryDirectory() as d:
        videos, _ = render_shapes(64, frames=16, size=32, seed=0)
        for i, v in enumerate(videos):
            np.save(Path(d) / f"v{i:03d}.npy", v)
        cfg = TrainConfig(data=d, out=str(Path(d) / "run"), model=model, steps=steps + 2,
                          batch=8, save_every=0, sample_every=0, log_every=1)
        out = train(cfg)
        import json

        log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    # elapsed between the end of step 2 (warm-up done) and the last step
    dt = log[-1]["elapsed"] - log[1]["elapsed"]
    return (len(log) - 2) / dt


def sample_seconds(repeats: int, model: str, autoguidance: float | None = None) -> tuple[float, str]:
    """Median seconds for one video with 25 DDIM steps; `autoguidance` None is the model's default
    (the bundled shapes-tiny guides with its early snapshot: two forwards per step), 0 is off."""
    from vidiff.models import build_model
    from vidiff.pipelines import DiffusionConfig, VideoFormat, VideoPipeline, bundled_models, load_pipeline

    if "shapes-tiny" in bundled_models():
        pipe, name = load_pipeline("shapes-tiny"), "shapes-tiny"
    else:
        pipe, name = VideoPipeline(build_model(model), DiffusionConfig(), VideoFormat()), f"{model} (untrained)"
    pipe(num=1, steps=2, seed=0, autoguidance=autoguidance)  # warm-up
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        pipe(num=1, steps=25, sampler="ddim", seed=r, autoguidance=autoguidance)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="unet-nano-joint", help="backbone preset (the demo model's by default)")
    args = ap.parse_args()
    torch.set_num_threads(int(torch.get_num_threads()))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    bare_s, _ = time_train(args.model, 32, args.train_steps)
    trainer_ips = trainer_steps_per_s(args.train_steps, args.model)
    print(f"\n| training, {args.model}, B=8, 16×32×32 | steps/s | s/step |\n|---|---:|---:|")
    print(f"| bare forward+backward+AdamW loop (baseline) | {1 / bare_s:.2f} | {bare_s:.2f} |")
    print(f"| `vidiff train` (data, EMA, accelerate, logs) | {trainer_ips:.2f} | {1 / trainer_ips:.2f} |")
    print(f"| ratio trainer / bare | {trainer_ips * bare_s:.2f}× | |")

    vid_s, name = sample_seconds(args.repeats, args.model)
    plain_s, _ = sample_seconds(args.repeats, args.model, autoguidance=0.0)
    base_s = 25 * time_infer(BASELINE, 32, 3) / 1000
    print("\n| one 16×32×32 video, 25 DDIM steps, B=1 | seconds |\n|---|---:|")
    print(f"| diffusers UNet3DConditionModel 1.3 M, 25 forwards (baseline) | {base_s:.2f} |")
    print(f"| vidiff `VideoPipeline` ({name}), autoguidance off | {plain_s:.2f} |")
    print(f"| vidiff `VideoPipeline` ({name}), its default sampling "
          f"(autoguidance when it ships a guide) | {vid_s:.2f} |")
    print(f"| speed-up vs baseline | {base_s / vid_s:.1f}× |")
    print(f"| target: under 3 s | {'met' if vid_s < 3 else 'NOT met'} |")


if __name__ == "__main__":
    main()
