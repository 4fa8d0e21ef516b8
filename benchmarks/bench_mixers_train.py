"""Temporal mixers of UNet3D trained at equal wall clock from the same image model, on the shapes checker.

    OMP_NUM_THREADS=2 python benchmarks/bench_mixers_train.py --init-image runs/bench-vldm/image --minutes 4 \\
        --out /tmp/bench_mixers_train.json
    python benchmarks/bench_mixers_train.py --quick        # a reduced run (< 1 min) that only checks the script works

Every row starts from the same image model (`--init-image`: a frames-1, temporal "none" UNet3D checkpoint, e.g.
`bench_video_ldm.py`'s `image` run; without it one is trained first for `--image-minutes`), inflated with one
`--kinds` temporal layer at the identity (`video_ldm_from_image`), and trains every parameter for `--minutes`
through `vidiff.train.train` with the recipe of `bench_video_ldm.py` (RECIPE). One more row trains "attention"
with the temporal-consistency penalty on x̂₀ (`--temporal-consistency W`), and a first row is the image model
itself, frames drawn independently (no video training: what the temporal layers have to improve on).

Per row: temporal parameters, steps done in the budget and seconds per step, the final training loss (mean of
the last 50 steps), a validation loss (the plain v-MSE of the EMA weights on `--val-videos` held-out shapes
videos at fixed t_i = (i + 1/2)/N and fixed noise: the same for every row), the checker pass rate of
`--samples` DDIM videos (seeds 0..N-1, `vidiff.data.checker`) and their flicker (`vidiff.metrics.temporal`,
mean |x_{f+1} − x_f|; the held-out videos' own flicker is printed as the data's). A Markdown table is printed;
`--out F.json` also writes the figures.
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
from vidiff.config import config_from_dict
from vidiff.data.checker import CRITERIA, check_batch
from vidiff.data.dataset import VideoDataset
from vidiff.data.io import to_uint8
from vidiff.data.synth import generate_shapes
from vidiff.diffusion.config import DiffusionConfig, VideoFormat
from vidiff.diffusion.loss import diffusion_loss
from vidiff.metrics.temporal import flicker
from vidiff.models.temporal import select_parameters, video_ldm_from_image
from vidiff.pipelines import VideoPipeline, load_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_video_ldm import RECIPE, run  # noqa: E402

KINDS = ("attention", "conv", "convgru", "biconvgru", "hierarchical", "dwconv")
HELD_OUT_SEED = 1000  # the training videos are seed 0 (`vidiff data synth shapes` and this script)


def validation_batch(folder: Path, frames: int, size: int, seed: int = 0) -> dict:
    """The held-out clips x0 (N, 3, F, H, W) in [-1, 1], t_i = (i + 1/2)/N and fixed noise ε ~ N(0, I)."""
    data = VideoDataset(str(folder), frames=frames, size=size, cache=False, seed=0, progress=False)
    x0 = torch.stack([data[i]["video"] for i in range(len(data))])  # (N, 3, F, H, W)
    n = x0.shape[0]
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    return {"x0": x0, "t": (torch.arange(n) + 0.5) / n, "noise": noise}


@torch.no_grad()
def validation_loss(pipe: VideoPipeline, val: dict, batch: int = 8) -> float:
    """Mean v-MSE (the model's parameterization) of the pipeline's weights on the fixed validation batch."""
    schedule = pipe.diffusion.build_schedule()
    total = 0.0
    for i in range(0, val["x0"].shape[0], batch):
        part = slice(i, i + batch)
        loss = diffusion_loss(pipe.model, val["x0"][part], schedule, parameterization=pipe.diffusion.parameterization,
                              t=val["t"][part], noise=val["noise"][part], reduction="none")
        total += float(loss.sum())
    return total / val["x0"].shape[0]


def measure(pipe: VideoPipeline, val: dict, samples: int, steps: int) -> dict:
    """Temporal params, validation loss, checker pass rate and flicker of `samples` DDIM videos of a pipeline."""
    model = pipe.model
    temporal = set(select_parameters(model, "temporal")) if model.config.temporal != "none" else set()
    videos = pipe(num=samples, steps=steps, sampler="ddim", seed=0).numpy()  # uint8 (N, F, H, W, 3)
    checked = check_batch(videos)
    return {"temporal_params": sum(p.numel() for n, p in model.named_parameters() if n in temporal),
            "params": sum(p.numel() for p in model.parameters()), "val_loss": validation_loss(pipe, val),
            "checker_pass": checked["ok"], "checker": {c: checked[c] for c in CRITERIA},
            "flicker": float(flicker(videos).mean())}


def image_pipeline(image: Path, frames: int, size: int) -> VideoPipeline:
    """The image model drawing every frame independently (an identity-initialised temporal layer: no mixing)."""
    cfg = read_config(image)
    return VideoPipeline(video_ldm_from_image(str(image), temporal="attention"),
                         config_from_dict(DiffusionConfig, cfg["diffusion"]),
                         VideoFormat(channels=3, frames=frames, size=size, fps=RECIPE.get("fps", 8.0)), {}, "image")


def criteria(row: dict) -> str:
    """The pass rate of each checker criterion, in percent, joined by " / "."""
    return " / ".join(f"{100 * row['checker'][c]:.0f}" for c in CRITERIA)


def table(report: dict) -> str:
    """The rows as a Markdown table."""
    lines = ["| row | temporal params (k) | steps | s / step | train loss | val loss | checker pass | "
             "one object / colour / size / moving / smooth | flicker |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        steps = row.get("steps")
        fmt = (lambda key, spec: format(row[key], spec) if row.get(key) is not None else "–")
        lines.append(f"| {row['name']} | {row['temporal_params'] / 1e3:.1f} | {steps if steps is not None else '–'} "
                     f"| {fmt('seconds_per_step', '.3f')} | {fmt('train_loss', '.4f')} | {row['val_loss']:.4f} "
                     f"| {row['checker_pass']:.0%} | {criteria(row)} | {row['flicker']:.4f} |")
    data = report["data"]
    lines.append(f"| held-out data ({data['videos']} videos) | – | – | – | – | – | {data['checker_pass']:.0%} "
                 f"| {criteria(data)} | {data['flicker']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init-image", default=None, help="frames-1 image model checkpoint every row starts from "
                                                        "(default: train one for --image-minutes)")
    ap.add_argument("--image-minutes", type=float, default=8.0)
    ap.add_argument("--model", default="unet-nano-joint", help="preset of the image model trained without --init-image")
    ap.add_argument("--data", default=None, help="shapes videos (default: 2048 generated as .npy into a temp folder, "
                                                  "loaded in seconds; a folder of .mp4 is decoded again for each row)")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated UNet3D temporal choices")
    ap.add_argument("--temporal-consistency", type=float, default=0.1,
                    help="weight W of the extra 'attention + temporal-consistency W' row (0: no such row)")
    ap.add_argument("--minutes", type=float, default=4.0, help="wall clock of each row's training")
    ap.add_argument("--lr", type=float, default=RECIPE["lr"])
    ap.add_argument("--samples", type=int, default=32, help="DDIM videos per row for the checker and flicker")
    ap.add_argument("--sample-steps", type=int, default=25)
    ap.add_argument("--val-videos", type=int, default=32, help="held-out videos of the validation loss")
    ap.add_argument("--runs", default=None, help="keep the run folders here (default: a temp folder)")
    ap.add_argument("--out", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--quick", action="store_true",
                    help="4x16x16 clips, 1 training step per row, 2 samples of 2 steps: checks the script works")
    args = ap.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    rows = [(kind, kind, 0.0) for kind in kinds]
    if args.temporal_consistency > 0:
        rows.append((f"attention + temporal-consistency {args.temporal_consistency:g}", "attention",
                     args.temporal_consistency))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = Path(args.runs) if args.runs else tmp / "runs"
        frames, size = (4, 16) if args.quick else (RECIPE["frames"], RECIPE["size"])
        samples, sample_steps = (2, 2) if args.quick else (args.samples, args.sample_steps)
        data = Path(args.data) if args.data else generate_shapes(tmp / "shapes", 4 if args.quick else 2048,
                                                                  frames=frames, size=size, fmt="npy", progress=False)
        fmt = "mp4" if next(data.glob("*.mp4"), None) else "npy"  # held-out videos coded like the training ones
        held_out = generate_shapes(tmp / "held_out", 4 if args.quick else args.val_videos, frames=frames, size=size,
                                   seed=HELD_OUT_SEED, fmt=fmt, progress=False)
        val = validation_batch(held_out, frames, size)
        real = to_uint8(val["x0"])  # (N, F, H, W, 3)
        checked = check_batch(real)
        budget = {"steps": 1, "warmup": 1, "batch": 2} if args.quick else {"minutes": args.minutes}
        if args.init_image:
            image = Path(args.init_image)
        else:
            image_budget = {"steps": 1, "warmup": 1, "batch": 2} if args.quick else {"minutes": args.image_minutes}
            image, _ = run("image", runs, data, image_budget, model=args.model, frames=1)
        image_model = read_config(image)["train"].get("model", args.model)
        report = {"init_image": str(image), "minutes": None if args.quick else args.minutes, "quick": args.quick,
                  "frames": frames, "size": size, "samples": samples, "sample_steps": sample_steps,
                  "threads": torch.get_num_threads(), "recipe": {**RECIPE, "lr": args.lr},
                  "data": {"videos": len(real), "checker_pass": checked["ok"],
                           "checker": {c: checked[c] for c in CRITERIA}, "flicker": float(flicker(real).mean())},
                  "rows": [{"name": "image model (frames independent)", "kind": "none",
                            **measure(image_pipeline(image, frames, size), val, samples, sample_steps),
                            "temporal_params": 0}]}
        for name, kind, weight in rows:
            t0 = time.perf_counter()
            folder, _ = run(name.replace(" ", "_"), runs, data, budget, frames=frames, size=size, lr=args.lr,
                            model=image_model, init_image=str(image), temporal=kind, temporal_consistency=weight)
            summary = read_config(folder)["summary"]
            row = {"name": name, "kind": kind, "temporal_consistency": weight, "steps": summary["steps"],
                   "seconds_per_step": summary["elapsed_s"] / max(1, summary["steps"]),
                   "train_loss": summary["final_loss"],
                   **measure(load_pipeline(str(folder)), val, samples, sample_steps)}
            row["wall_s"] = round(time.perf_counter() - t0, 1)
            report["rows"].append(row)
            print(f"{name}: {json.dumps({k: v for k, v in row.items() if k != 'name'})}", flush=True)
    print(f"\n{len(rows)} rows from {report['init_image']}, {args.minutes if not args.quick else 'quick'} min each, "
          f"{frames}x{size}x{size} clips, {samples} DDIM-{sample_steps} samples, {report['threads']} threads\n")
    print(table(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
