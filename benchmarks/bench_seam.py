"""Seam of video extension: reconstruction guidance (VDM eq. 7) vs replacement, against real data.

    python benchmarks/bench_seam.py [--model shapes-tiny] [--num 16] [--steps 25] [--context 8]
                                    [--weights 2,8,32] [--sampler ddim] [--seed 0] [--threads 1]

Real clips come from the synthetic shapes generator (`vidiff.data.synth.shapes_tensor`, seed 1: not
the training videos). The first `--context` frames of each clip are given; one window of the model's
length is generated after them. Statistics, on uint8 frames scaled to [0, 1], mean over pixels,
channels and clips:

* seam  = mean |first new frame − last given frame|; for real data the same pair of the real clip
          (frame context vs context − 1);
* inner = mean |x_{f+1} − x_f| over consecutive generated frames (real: the same frames of the real clip);
* ratio = seam / real seam (1 = a seam as large as real motion between frames; ≫ 1 = a visible jump).

"independent" samples a fresh unconditional window and measures the jump from the last given frame
to its first frame: the seam of ignoring the context, for scale. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import time

import torch


def stats(video: torch.Tensor, context: int) -> tuple[float, float]:
    """(seam, inner) of (B, C, F, H, W) videos in [-1, 1] whose first `context` frames were given."""
    u = ((video.clamp(-1, 1) + 1) * 127.5).round() / 255.0  # the uint8 values, on [0, 1]
    seam = (u[:, :, context] - u[:, :, context - 1]).abs().mean().item()
    new = u[:, :, context:]
    inner = (new[:, :, 1:] - new[:, :, :-1]).abs().mean().item() if new.shape[2] > 1 else float("nan")
    return seam, inner


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="shapes-tiny")
    p.add_argument("--num", type=int, default=16, help="real clips to extend")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--sampler", default="ddim")
    p.add_argument("--context", type=int, default=8, help="given frames at the start of the window")
    p.add_argument("--weights", default="2,8,32", help="reconstruction guidance weights w_r to try")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--autoguidance", type=float, default=0.0,
                   help="weight of the checkpoint's guide model in every row (default 0: the published figures)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from vidiff.data.synth import shapes_tensor
    from vidiff.pipelines import load_pipeline
    from vidiff.pipelines.extend import extend

    pipe = load_pipeline(args.model)
    F, S, ctx = pipe.video.frames, pipe.video.size, args.context
    real, _, _ = shapes_tensor(args.num, frames=F, size=S, seed=1)  # (N, C, F, H, W) in [-1, 1]
    given = real[:, :, :ctx]
    print(f"model {pipe.name} ({F} frames, {S}x{S}), {args.num} shapes clips (seed 1), context {ctx}, "
          f"{F - ctx} new frames, {args.sampler} {args.steps} steps, seed {args.seed}, "
          f"autoguidance {args.autoguidance:g}; "
          "|Δ| on uint8/255 ([0, 1] scale)\n")
    rows = [("real data", *stats(real, ctx), 0.0)]
    weights = [float(w) for w in args.weights.split(",") if w.strip()]
    runs = [("replacement", "replacement", 0.0)] + [(f"reconstruction w_r={w:g}", "reconstruction", w) for w in weights]
    for label, method, w in runs:
        t0 = time.perf_counter()
        out = extend(pipe, given, F, context=ctx, steps=args.steps, sampler=args.sampler, seed=args.seed,
                     method=method, guidance_weight=w, autoguidance=args.autoguidance)
        rows.append((label, *stats(out, ctx), (time.perf_counter() - t0) / args.num))
    t0 = time.perf_counter()
    free = pipe(num=args.num, steps=args.steps, sampler=args.sampler, seed=args.seed,
                autoguidance=args.autoguidance)  # uint8 (N, F, H, W, 3)
    free = free.permute(0, 4, 1, 2, 3).float() / 127.5 - 1  # (N, C, F, H, W)
    rows.append(("independent (no context)", *stats(torch.cat([given, free], dim=2)[:, :, :F], ctx),
                 (time.perf_counter() - t0) / args.num))

    real_seam, real_inner = rows[0][1], rows[0][2]
    print("| method | seam | seam / real | inner | inner / real | s per clip |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, seam, inner, dt in rows:
        print(f"| {label} | {seam:.4f} | {seam / real_seam:.2f} | {inner:.4f} | {inner / real_inner:.2f} | "
              + (f"{dt:.2f} |" if dt else "– |"))


if __name__ == "__main__":
    main()
