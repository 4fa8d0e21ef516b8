"""Does an SVD-style shapes model move as asked? Motion-bucket and speed control of a model trained with
`--micro fps,motion` or `--micro speed` (scripts/train_svd_shapes.sh), on held-out first frames.

The first frames of `--num` held-out clips (synthetic shapes, seed 1: not the training videos) are split over
`--levels` requested values spread evenly over the range the checkpoint was trained on; each sample i is
drawn with seed + i. Measured:
  * motion: the sampled video's motion bucket (the training measure: mean DIS optical flow,
    `data.clip_stats.motion_bucket`); Spearman's rank correlation between requested and measured buckets
    over all samples, and between requested bucket and the object's measured speed (the shapes checker's
    mean displacement per frame; issue target: >= 0.8), and the mean measured bucket per requested level;
  * speed: the shapes checker's mean object displacement per frame (pixels); the share of samples within
    10 % of the requested speed (target: >= 80 %) and Spearman between requested and measured;
  * first-frame PSNR: the sampled frame 0 against the given one (dB), the image-to-video sanity check.

    python benchmarks/bench_svd_shapes.py --model runs/shapes-svd-tiny --num 64 [--control motion|speed]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


def measure(videos: np.ndarray, control: str) -> np.ndarray:
    """(N,) measured motion bucket or speed (pixels per frame) of uint8 videos (N, F, H, W, 3)."""
    from vidiff.data.checker import check_video
    from vidiff.data.clip_stats import motion_bucket
    from vidiff.data.curate_scores import flow_motion

    if control == "motion":
        return np.array([motion_bucket(flow_motion(v), min(v.shape[1:3])) for v in videos], float)
    return np.array([check_video(v).mean_speed for v in videos], float)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a checkpoint trained with --micro motion or speed")
    ap.add_argument("--control", choices=["motion", "speed"], default=None,
                    help="which micro-condition to vary (default: motion if the model has it, else speed)")
    ap.add_argument("--num", type=int, default=64)
    ap.add_argument("--levels", type=int, default=8, help="requested values, evenly over the trained range")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--sampler", default="heun")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="JSON report (default: print only)")
    args = ap.parse_args(argv)

    from scipy.stats import spearmanr

    from vidiff import load_pipeline
    from vidiff.conditioning import Cond
    from vidiff.conditioning.image_embed import embeds_first_frame, with_frame_embedding
    from vidiff.conditioning.micro import request_svd_cond
    from vidiff.conditioning.tasks import known_frames_concat
    from vidiff.data.io import from_uint8
    from vidiff.data.synth import render_shapes
    from vidiff.metrics.image import psnr

    torch.set_num_threads(2)
    pipe = load_pipeline(args.model)
    v = pipe.video
    conditioning = pipe.config.get("conditioning") or {}
    kinds = (conditioning.get("micro") or {}).get("kinds") or []
    control = args.control or ("motion" if "motion" in kinds else "speed")
    if control not in kinds:
        print(f"error: {args.model} was not trained with the {control} micro-condition (it has {kinds or 'none'})",
              file=sys.stderr)
        return 2
    lo, hi = conditioning["micro"]["range"][control]
    levels = np.linspace(lo, hi, max(1, args.levels))
    clips, _ = render_shapes(args.num, v.frames, v.size, seed=1)  # held-out: training data is seed 0
    given = from_uint8(clips[:, :1])  # (N, 3, 1, H, W)
    requested, videos = np.empty(args.num), []
    t0 = time.perf_counter()
    for level_index, level in enumerate(levels):
        idx = np.arange(level_index, args.num, len(levels))
        if not len(idx):
            continue
        cond = Cond(concat=known_frames_concat(given[idx], v.frames)) if "first_frame" in pipe.condition else None
        if embeds_first_frame(pipe.condition, pipe.model.config):  # --image-embed: the frame's embedding too
            cond = with_frame_embedding(cond, given[idx][:, :, 0], len(idx))
        cond = request_svd_cond(cond, conditioning, len(idx), channels=v.channels, seed=args.seed,
                                **{control: float(level)})
        out = pipe(len(idx), cond=cond, steps=args.steps, sampler=args.sampler, seed=args.seed + int(idx[0]))
        requested[idx] = level
        videos.append((idx, out.numpy()))
    order = np.concatenate([i for i, _ in videos])
    samples = np.concatenate([s for _, s in videos])[np.argsort(order)]  # (N, F, H, W, 3) in sample order
    seconds = time.perf_counter() - t0
    measured = measure(samples, control)
    ok = np.isfinite(measured)
    rho = float(spearmanr(requested[ok], measured[ok])[0]) if ok.sum() > 2 else float("nan")
    db = psnr(from_uint8(samples[:, :1]), from_uint8(clips[:, :1]))[:, 0].numpy()  # (N,) frame 0, dB
    report = {"model": args.model, "control": control, "num": args.num, "steps": args.steps, "sampler": args.sampler,
              "trained_range": [lo, hi], "spearman": rho, "first_frame_psnr": float(np.median(db)),
              "sampling_seconds": round(seconds, 1),
              "per_level": [{"requested": float(level),
                             "measured_mean": float(np.nanmean(measured[requested == level]))}
                            for level in levels if (requested == level).any()]}
    if control == "motion":  # the bucket against the object's own speed (the checker's centroid track)
        speed = measure(samples, "speed")
        fine = np.isfinite(speed)
        report["spearman_speed"] = float(spearmanr(requested[fine], speed[fine])[0]) if fine.sum() > 2 else None
    if control == "speed":
        report["within_10pct"] = float(np.mean(np.abs(measured - requested) <= 0.1 * requested))
    print(f"{args.model}: {control} control on {args.num} held-out first frames ({args.sampler} {args.steps} "
          f"steps, {seconds:.0f} s)")
    print(f"Spearman(requested, measured) = {rho:.3f}; first-frame PSNR {report['first_frame_psnr']:.1f} dB"
          + (f"; within 10% of the requested speed: {report['within_10pct']:.0%}" if control == "speed" else "")
          + (f"; Spearman(bucket, object speed) = {report['spearman_speed']}" if control == "motion" else ""))
    print("| requested | measured (mean) |\n|---:|---:|")
    for row in report["per_level"]:
        print(f"| {row['requested']:.2f} | {row['measured_mean']:.2f} |")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
