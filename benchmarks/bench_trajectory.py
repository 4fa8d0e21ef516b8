"""Trajectory control and physics-aware guidance on the shapes data, each against its baseline in the same run.

    python benchmarks/bench_trajectory.py --model models/shapes-trajectory-tiny [--baseline shapes-tiny]
        [--num 64] [--steps 50] [--sampler ddpm] [--guidance 0] [--physics-weight 1] [--seed 0] [--threads 2]
        [--out F.json]

* Trajectory: the paths are the object tracks of `--num` held-out clips (synthetic shapes, seed 1: not the
  training videos; bounces included), read as the training data is read (`conditioning.trajectory.object_tracks`).
  Video i is sampled (seed + i) with path i as its trajectory; its object's track, read the same way, is
  compared with the path: the mean distance over frames in pixels, and the share of videos within
  `--tolerance` (1.5 px). The unconditional `--baseline` is scored on the same paths (seed + i alike): its
  objects go where they like, which is the chance level.
* Physics guidance: the baseline model (the bundled demo by default) sampled with and without
  `--physics smooth` at the same sampler and steps; the shapes checker's smooth-motion and overall pass
  rates (`data.checker`), and the mean off-wall acceleration penalty of the samples
  (`diffusion.physics.smooth_motion_penalty`). `--physics-num` videos (default `--num`).

Prints a markdown table; `--out` writes the numbers as JSON. Runs on whichever models are given
(`--skip-physics` or `--skip-trajectory` leave a part out).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def held_out_paths(num: int, frames: int, size: int, seed: int = 1):
    """Tracks (N, F, 2) of `num` held-out shapes clips, and the clips (N, 3, F, H, W) in [-1, 1]."""
    from vidiff.conditioning.trajectory import object_tracks
    from vidiff.data.io import from_uint8
    from vidiff.data.synth import render_shapes

    videos, _ = render_shapes(num, frames, size, seed=seed)
    x = from_uint8(videos)
    return object_tracks(x), x


def path_cond(pipe, paths: torch.Tensor, clips: torch.Tensor):
    """The Cond asking a trajectory model for path i in video i (a first-frame model also gets clip i's frame 0)."""
    from vidiff.conditioning import Cond
    from vidiff.conditioning.tasks import known_frames_concat
    from vidiff.conditioning.trajectory import encode_tracks

    h, w = clips.shape[-2:]
    concat = encode_tracks(paths[:, None], h, w)  # (N, CHANNELS, F, H, W)
    if "first_frame" in pipe.condition:
        concat = torch.cat([known_frames_concat(clips[:, :, :1], clips.shape[2]), concat], 1)
    return Cond(concat=concat)


def follow_scores(videos: np.ndarray, paths: torch.Tensor, tolerance: float) -> dict:
    """How closely the objects of uint8 videos (N, F, H, W, 3) follow `paths` (N, F, 2)."""
    from vidiff.conditioning.trajectory import object_tracks, track_error
    from vidiff.data.io import from_uint8

    err = track_error(object_tracks(from_uint8(videos)), paths).numpy()  # (N,) pixels; inf: no object seen
    seen = err[np.isfinite(err)]
    return {"within_tolerance": float(np.mean(err <= tolerance)),
            "mean_error_px": float(seen.mean()) if len(seen) else float("inf"),
            "median_error_px": float(np.median(err)), "no_object": int(len(err) - len(seen))}


def physics_scores(videos: np.ndarray) -> dict:
    from vidiff.data.checker import check_batch
    from vidiff.data.io import from_uint8
    from vidiff.diffusion.physics import smooth_motion_penalty

    s = check_batch(videos)
    return {"smooth_motion": s["smooth_motion"], "ok": s["ok"], "one_object": s["one_object"],
            "mean_penalty_px2": float(smooth_motion_penalty(from_uint8(videos)).mean())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/shapes-trajectory-tiny",
                    help="a model trained with condition trajectory")
    ap.add_argument("--baseline", default="shapes-tiny", help="the unconditional model (baseline and physics runs)")
    ap.add_argument("--num", type=int, default=64)
    ap.add_argument("--physics-num", type=int, default=None)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--sampler", default="ddpm")
    ap.add_argument("--guidance", type=float, nargs="+", default=[0.0], help="CFG weights for the trajectory model")
    ap.add_argument("--physics-weight", type=float, nargs="+", default=[1.0])
    ap.add_argument("--tolerance", type=float, default=1.5, help="pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-trajectory", action="store_true")
    ap.add_argument("--skip-physics", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from vidiff import load_pipeline
    from vidiff.pipelines.control import sample_controlled

    common = dict(steps=args.steps, sampler=args.sampler, seed=args.seed, batch_size=args.batch_size)
    report: dict = {"num": args.num, "steps": args.steps, "sampler": args.sampler, "seed": args.seed,
                    "tolerance_px": args.tolerance, "trajectory": {}, "physics": {}}
    rows = []
    baseline = load_pipeline(args.baseline)
    if not args.skip_trajectory:
        pipe = load_pipeline(args.model)
        if "trajectory" not in pipe.condition:
            raise SystemExit(f"{args.model} was not trained with condition trajectory (its: {pipe.condition})")
        paths, clips = held_out_paths(args.num, pipe.video.frames, pipe.video.size)
        cond = path_cond(pipe, paths, clips)
        for w in args.guidance:
            t0 = time.perf_counter()
            videos = pipe(args.num, cond=cond, guidance=w, **common).numpy()
            s = {**follow_scores(videos, paths, args.tolerance), "seconds": time.perf_counter() - t0}
            report["trajectory"][f"{args.model} guidance {w:g}"] = s
            rows.append((f"{args.model} (trajectory, CFG {w:g})", s))
        t0 = time.perf_counter()
        videos = baseline(args.num, **common).numpy()  # the same seeds, no path
        s = {**follow_scores(videos, paths, args.tolerance), "seconds": time.perf_counter() - t0}
        report["trajectory"][f"{args.baseline} (unconditional)"] = s
        rows.append((f"{args.baseline} (unconditional, same paths)", s))
    if not args.skip_physics:
        n = args.physics_num or args.num
        for w in [0.0, *args.physics_weight]:
            t0 = time.perf_counter()
            videos = sample_controlled(baseline, n, physics="smooth", physics_weight=w, **common).numpy()
            s = {**physics_scores(videos), "seconds": time.perf_counter() - t0}
            report["physics"][f"weight {w:g}"] = s
    print(f"\n{args.num} videos, {args.sampler} {args.steps} steps, seeds {args.seed}..{args.seed + args.num - 1}\n")
    if rows:
        print(f"| model | within {args.tolerance:g} px | mean error (px) | median (px) | s |")
        print("|---|---|---|---|---|")
        for name, s in rows:
            print(f"| {name} | {100 * s['within_tolerance']:.1f}% | {s['mean_error_px']:.2f} | "
                  f"{s['median_error_px']:.2f} | {s['seconds']:.0f} |")
    if report["physics"]:
        print(f"\n| {args.baseline} --physics smooth | smooth motion | checker ok | one object | penalty (px²) | s |")
        print("|---|---|---|---|---|---|")
        for name, s in report["physics"].items():
            print(f"| {name} | {100 * s['smooth_motion']:.1f}% | {100 * s['ok']:.1f}% | {100 * s['one_object']:.1f}% "
                  f"| {s['mean_penalty_px2']:.2f} | {s['seconds']:.0f} |")
    if args.out:
        from vidiff.utils import atomic_write_text

        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
