"""Video LDM on shapes: temporal layers trained over a frozen image model vs the same backbone trained whole from
scratch, at equal wall clock.

    OMP_NUM_THREADS=2 python benchmarks/bench_video_ldm.py [--model unet-nano-joint] [--image-minutes 30] [--minutes 30]
    python benchmarks/bench_video_ldm.py --quick         # a reduced run that only checks the script works

One run, in three trainings through `vidiff.train.train` (the recipe of configs/shapes-tiny.yaml otherwise):
  1. the image model: the `--model` preset trained with frames 1 (temporal none, per-frame attention) on the
     frames of the shapes videos for `--image-minutes`;
  2. Video LDM: `--init-image` that model, `--train temporal` (only the α-merged temporal layers train) for
     `--minutes`;
  3. from scratch: the same video architecture (the image config with temporal "videoldm"), every parameter
     trained, for the same `--minutes`.
Reported for 2 and 3: the shapes checker's pass rate (`vidiff.data.checker`) on `--samples` videos drawn
with DDIM, the trained-parameter count, steps done and seconds per step; for 1 its minutes and steps (the
image model's cost, which the Video LDM run reuses).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from vidiff.checkpoint import read_config
from vidiff.data.checker import check_batch
from vidiff.data.synth import generate_shapes
from vidiff.models.temporal import select_parameters
from vidiff.pipelines import load_pipeline
from vidiff.train import TrainConfig, train

RECIPE = dict(frames=16, size=32, batch=8, lr=8e-4, warmup=200, grad_clip=1.0, ema_decay=0.999,
              schedule="shifted_cosine", schedule_kwargs={"shift": 4}, parameterization="v", seed=0,
              save_every=0, sample_every=0, sample_steps=2, num_samples=1, log_every=50)


def run(name: str, out: Path, data: Path, budget: dict, **kw) -> tuple[Path, float]:
    """Train one model; returns its run folder and the wall-clock seconds it took."""
    cfg = TrainConfig(data=str(data), out=str(out / name), **{**RECIPE, **budget, **kw})
    t0 = time.perf_counter()
    train(cfg)
    return out / name, time.perf_counter() - t0


def measure(folder: Path, samples: int, steps: int) -> dict:
    """Checker pass rate of `samples` videos, trained-parameter count, steps and seconds per step of a run."""
    cfg = read_config(folder)
    summary, train_cfg = cfg["summary"], cfg["train"]
    pipe = load_pipeline(str(folder))
    checked = check_batch(pipe(num=samples, steps=steps, sampler="ddim", seed=0))  # uint8 (N, F, H, W, 3)
    if train_cfg.get("trainable") == "temporal":
        temporal = set(select_parameters(pipe.model, "temporal"))
        trained = sum(p.numel() for n, p in pipe.model.named_parameters() if n in temporal)
    else:
        trained = sum(p.numel() for p in pipe.model.parameters())
    return {"checker_pass": checked["ok"], "trained_params": trained,
            "params": sum(p.numel() for p in pipe.model.parameters()), "steps": summary["steps"],
            "seconds_per_step": summary["elapsed_s"] / max(1, summary["steps"]), "final_loss": summary["final_loss"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="unet-nano-joint", help="backbone preset of the image model")
    ap.add_argument("--data", default=None, help="shapes videos (default: 2048 generated into a temp folder)")
    ap.add_argument("--image-minutes", type=float, default=30.0)
    ap.add_argument("--minutes", type=float, default=30.0, help="wall clock of each video training")
    ap.add_argument("--samples", type=int, default=64, help="videos drawn per model for the checker")
    ap.add_argument("--sample-steps", type=int, default=25)
    ap.add_argument("--out", default=None, help="keep the runs here (default: a temp folder)")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    ap.add_argument("--quick", action="store_true", help="16 videos of 8 frames, 3 steps per training, 2 samples")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = Path(args.out) if args.out else tmp / "runs"
        frames = 8 if args.quick else RECIPE["frames"]
        data = Path(args.data) if args.data else generate_shapes(tmp / "shapes", 16 if args.quick else 2048,
                                                                  frames=frames, size=32, fmt="npy", progress=False)
        if args.quick:
            image_budget = video_budget = {"steps": 3, "warmup": 1}
            samples, sample_steps = 2, 2
        else:
            image_budget, video_budget = {"minutes": args.image_minutes}, {"minutes": args.minutes}
            samples, sample_steps = args.samples, args.sample_steps
        image, image_s = run("image", out, data, image_budget, model=args.model, frames=1)
        video_cfg = {**read_config(image)["model"], "temporal": "videoldm"}
        (out / "scratch_model.json").write_text(json.dumps(video_cfg))
        ldm, _ = run("video_ldm", out, data, video_budget, frames=frames, model=args.model, init_image=str(image),
                      trainable="temporal")
        scratch, _ = run("scratch", out, data, video_budget, frames=frames, model=str(out / "scratch_model.json"))
        image_summary = read_config(image)["summary"]
        report = {
            "model": args.model, "quick": args.quick, "threads": torch.get_num_threads(),
            "image_model": {"minutes": round(image_s / 60, 2), "steps": image_summary["steps"]},
            "video_ldm": measure(ldm, samples, sample_steps),
            "scratch": measure(scratch, samples, sample_steps),
        }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
