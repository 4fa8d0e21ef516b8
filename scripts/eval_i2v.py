"""Score an image-to-video shapes model: does the video start from the given frame and keep its object?

The first frames of `--num` held-out clips (synthetic shapes, seed 1: not the training videos) each
condition one sampled video (seed + i). Measured per guidance setting:
  * first-frame PSNR: the sampled frame 0 against the given one (dB, uint8 pixels);
  * colour / shape match: the shapes checker's reading of the video against the clip's ground truth;
  * start error: the checker's object centroid in frame 0 against the given frame's (pixels);
  * the checker's pass rate (one object of constant colour and size moving smoothly);
  * directions: how many of the 8 compass ways the samples take (one frame fixes no direction, so a
    model that learnt the data spreads over them; the real continuations are listed alongside).
An unconditional model (`--model shapes-tiny`) scored on the same frames gives the chance level.

    python scripts/eval_i2v.py --model shapes-i2v-tiny --num 64 [--guidance 0 1] [--autoguidance 0 1]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch


def score(videos: np.ndarray, given: np.ndarray, meta: list[dict]) -> dict:
    """The measures above for uint8 videos (N, F, H, W, 3) sampled from first frames `given` (N, H, W, 3)."""
    from vidiff.data.checker import centroid_distance, check_batch
    from vidiff.data.io import from_uint8
    from vidiff.metrics.image import psnr

    s = check_batch(videos, [{k: m[k] for k in ("colour", "shape")} for m in meta])
    db = psnr(from_uint8(videos[:, :1]), from_uint8(given[:, None]))[:, 0].numpy()  # (N,) frame 0, dB
    errs = [centroid_distance(v[0], g) for v, g in zip(videos, given)]
    res = s["results"]
    return {"first_frame_psnr": float(np.median(db)), "colour_acc": s["colour_acc"], "shape_acc": s["shape_acc"],
            "colour_and_shape": float(np.mean([r.colour == m["colour"] and r.shape == m["shape"] for r,
                                               m in zip(res, meta)])),
            "median_start_error_px": float(np.median(errs)), "ok": s["ok"], "smooth_motion": s["smooth_motion"],
            "directions": dict(Counter(r.direction for r in res if r.direction)),
            "shape_confusion": dict(Counter(f"{m['shape']} -> {r.shape}" for r, m in zip(res, meta)))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="shapes-i2v-tiny")
    ap.add_argument("--num", type=int, default=64)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--sampler", default="ddpm")
    ap.add_argument("--guidance", type=float, nargs="+", default=[0.0], help="classifier-free guidance weights")
    ap.add_argument("--autoguidance", type=float, nargs="+", default=[None],
                    help="autoguidance weights (default: the checkpoint's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="JSON report (default: print only)")
    args = ap.parse_args(argv)

    from vidiff import load_pipeline
    from vidiff.conditioning import Cond
    from vidiff.conditioning.image_embed import embeds_first_frame, with_frame_embedding
    from vidiff.conditioning.tasks import known_frames_concat
    from vidiff.data.io import from_uint8
    from vidiff.data.synth import render_shapes

    pipe = load_pipeline(args.model)
    v = pipe.video
    clips, meta = render_shapes(args.num, v.frames, v.size, seed=1)  # held-out: training data is seed 0
    given = clips[:, 0]  # (N, H, W, 3)
    real = Counter(m["direction"] for m in meta)
    conditional = "first_frame" in pipe.condition
    cond = Cond(concat=known_frames_concat(from_uint8(clips[:, :1]), v.frames)) if conditional else None
    if embeds_first_frame(pipe.condition, pipe.model.config):  # --image-embed: the frame's embedding too
        cond = with_frame_embedding(cond, from_uint8(clips[:, :1])[:, :, 0], len(clips))
    report = {"model": args.model, "num": args.num, "steps": args.steps, "sampler": args.sampler,
              "real_directions": dict(real), "rows": []}
    print(f"{args.model}: {args.num} held-out first frames, {args.sampler} {args.steps} steps; "
          f"real continuations take {len(real)} directions")
    print("| CFG w | autoguidance | frame-0 PSNR | colour | shape | both "
          "| start error | passes checker | smooth | directions |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    real_row = score(clips, given, meta)  # the checker's own ceiling: the real continuations
    report["real"] = real_row
    print(f"| real clips | | | {real_row['colour_acc']:.0%} | {real_row['shape_acc']:.0%} | "
          f"{real_row['colour_and_shape']:.0%} | {real_row['median_start_error_px']:.2f} px | {real_row['ok']:.0%} | "
          f"{real_row['smooth_motion']:.0%} | {len(real_row['directions'])} |")
    for ag in args.autoguidance:
        for w in (args.guidance if conditional else [0.0]):
            t0 = time.perf_counter()
            videos = pipe(args.num, steps=args.steps, sampler=args.sampler, seed=args.seed, cond=cond,
                          guidance=w, autoguidance=ag, progress=True).numpy()
            row = {"guidance": w, "autoguidance": pipe.autoguidance if ag is None else ag,
                   "autoguidance_spec": pipe.autoguidance_spec(ag),  # with the noisier steps' weight, if any
                   "seconds": round(time.perf_counter() - t0, 1), **score(videos, given, meta)}
            report["rows"].append(row)
            print(f"| {w:g} | {row['autoguidance']:g} | {row['first_frame_psnr']:.1f} dB | {row['colour_acc']:.0%} | "
                  f"{row['shape_acc']:.0%} | {row['colour_and_shape']:.0%} | {row['median_start_error_px']:.2f} px | "
                  f"{row['ok']:.0%} | {row['smooth_motion']:.0%} | {len(row['directions'])} |", flush=True)
    if args.out:
        from vidiff.utils import atomic_write_text

        atomic_write_text(Path(args.out), json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
