"""Super-resolution stages of the shapes cascade on held-out clips: TSR and SSR against the naive
upsamplers, measured in the same run.

    python benchmarks/bench_cascade.py [--tsr shapes-tsr-tiny] [--ssr shapes-ssr-tiny] [--num 64]
                                       [--steps 25] [--sampler ddim] [--seed 0] [--threads 2] [--out F.json]
                                       [--base shapes-tiny --base-num 32 --base-steps 50 --base-sampler ddpm]

Real clips come from the synthetic shapes generator (`vidiff.data.synth.render_shapes`, seed 1: not the
training videos), 16 frames of 32x32. Their low-res versions are made the way the training data of the
16x16 stages is (`resize_short_side`, area filter); the low-fps input keeps frames 0, 2, 4, ...

* TSR: 8 frames of 16x16 -> 16 frames; scored on the 7 frames it makes between given ones (the last
  output frame extrapolates and is left out), against repeating the previous frame and the average
  of the two neighbours;
* SSR: the true 16 frames of 16x16 -> 32x32, against bilinear upsampling;
* TSR -> SSR: 8 frames of 16x16 -> 16 frames of 32x32 (the cascade after its base), against the
  neighbour average followed by bilinear upsampling.

PSNR / SSIM on [-1, 1] frames (vidiff.metrics.image), and the share of clips that pass the shapes
checker (`vidiff data check`: one object of constant colour and size moving smoothly). Prints a
markdown table.

`--base MODEL` adds the cascade above a base model (no ground truth there, so the checker only): the
base's samples (16 frames of 32x32 for shapes-tiny, its default guidance), then TSR to 32 frames and
SSR to 64x64 (both stages outside their training size: the U-Nets are convolutional), against the
same chain with the naive upsamplers. (Above shapes-tiny, base -> TSR passes the checker in 0 % of 32 --
its in-between frames jerk at a size and frame gap it was not trained on -- so no cascade is bundled.)
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F


def bilinear2x(x: torch.Tensor) -> torch.Tensor:
    """(B, C, F, H, W) -> (B, C, F, 2H, 2W), frame by frame."""
    b, c, f, h, w = x.shape
    y = F.interpolate(x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w), scale_factor=2, mode="bilinear",
                      align_corners=False)
    return y.reshape(b, f, c, 2 * h, 2 * w).permute(0, 2, 1, 3, 4)


def between(low: torch.Tensor, mode: str) -> torch.Tensor:
    """Naive 2x frame upsampling of (B, C, F, H, W): given frames at even positions, the odd ones the
    previous frame ("repeat") or the mean of both neighbours ("blend"; the last one repeats)."""
    nxt = torch.cat([low[:, :, 1:], low[:, :, -1:]], dim=2)
    mid = low if mode == "repeat" else (low + nxt) / 2
    return torch.stack([low, mid], dim=3).flatten(2, 3)  # (B, C, 2F, H, W)


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tsr", default="shapes-tsr-tiny")
    ap.add_argument("--ssr", default="shapes-ssr-tiny")
    ap.add_argument("--num", type=int, default=64)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--sampler", default="ddim")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="also write the table as JSON here")
    ap.add_argument("--base", default=None, help="also run base -> TSR -> SSR from this base model")
    ap.add_argument("--base-num", type=int, default=32)
    ap.add_argument("--base-steps", type=int, default=50)
    ap.add_argument("--base-sampler", default="ddpm")
    ap.add_argument("--skip-clips", action="store_true", help="only the --base chain")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from vidiff import load_pipeline
    from vidiff.data.checker import check_batch
    from vidiff.data.dataset import resize_short_side
    from vidiff.data.io import from_uint8, to_uint8
    from vidiff.data.synth import render_shapes
    from vidiff.metrics.image import psnr, ssim
    from vidiff.pipelines.cascade import upsample

    tsr, ssr = load_pipeline(args.tsr), load_pipeline(args.ssr)
    real, _ = render_shapes(args.num, 16, 32, seed=1)                                     # uint8 (N, 16, 32, 32, 3)
    real_lo = np.stack([resize_short_side(v, 16) for v in real])                          # (N, 16, 16, 16, 3)
    gt, gt_lo = from_uint8(real), from_uint8(real_lo)                                     # (N, C, 16, H, W)
    low = gt_lo[:, :, ::2]                                                                # (N, C, 8, 16, 16)
    opts = dict(steps=args.steps, sampler=args.sampler, seed=args.seed, batch_size=16)
    rows, seconds = {}, {}

    def quantize(x):  # what a user gets: the uint8 video
        return from_uint8(to_uint8(x))

    def score(name, pred, true, frames=slice(None), check=None):
        p, s = psnr(pred[:, :, frames], true[:, :, frames]), ssim(pred[:, :, frames], true[:, :, frames])
        ok = check_batch(to_uint8(pred))["ok"] if check else None
        rows[name] = {"psnr": p.mean().item(), "ssim": s.mean().item(), "checker_ok": ok,
                      "seconds_per_video": seconds.get(name)}

    if args.base:
        base_chain(args, tsr, ssr, opts, rows, quantize)
    if args.skip_clips:
        return report_rows(args, rows)
    odd = slice(1, 15, 2)  # frames made between two given ones
    t0 = time.perf_counter()
    t = quantize(upsample(tsr, None, low, space=1, time=2, **opts))                       # (N, C, 16, 16, 16)
    seconds["TSR (8 -> 16 frames, 16x16)"] = (time.perf_counter() - t0) / args.num
    score("TSR (8 -> 16 frames, 16x16)", t, gt_lo, odd)
    score("repeat the previous frame", between(low, "repeat"), gt_lo, odd)
    score("average of the neighbours", between(low, "blend"), gt_lo, odd)

    t0 = time.perf_counter()
    s = quantize(upsample(None, ssr, gt_lo, space=2, time=1, **opts))                     # (N, C, 16, 32, 32)
    seconds["SSR (16x16 -> 32x32)"] = (time.perf_counter() - t0) / args.num
    score("SSR (16x16 -> 32x32)", s, gt, check=True)
    score("bilinear", quantize(bilinear2x(gt_lo)), gt, check=True)

    t0 = time.perf_counter()
    ts = quantize(upsample(None, ssr, t, space=2, time=1, **opts))
    seconds["TSR -> SSR (8x16x16 -> 16x32x32)"] = (time.perf_counter() - t0) / args.num + \
        seconds["TSR (8 -> 16 frames, 16x16)"]
    score("TSR -> SSR (8x16x16 -> 16x32x32)", ts, gt, check=True)
    score("neighbour average -> bilinear", quantize(bilinear2x(between(low, "blend"))), gt, check=True)
    score("real clips", gt, gt, check=True)
    return report_rows(args, rows)


def base_chain(args, tsr, ssr, opts: dict, rows: dict, quantize) -> None:
    """Rows for base -> TSR -> SSR on `args.base_num` samples of the base model, checker only."""
    from vidiff import load_pipeline
    from vidiff.data.checker import check_batch
    from vidiff.data.io import from_uint8, to_uint8
    from vidiff.pipelines.cascade import upsample

    base_ok = None

    def row(name, x, sec):
        """Checker pass rate, and the share of the videos whose base passed that still pass ("kept")."""
        ok = np.array([r.ok for r in check_batch(to_uint8(x))["results"]])
        kept = float(ok[base_ok].mean()) if base_ok is not None and base_ok.any() else None
        rows[name] = {"psnr": None, "ssim": None, "checker_ok": float(ok.mean()), "seconds_per_video": sec,
                      "shape": list(x.shape[2:]), "kept": kept}
        return ok

    n = args.base_num
    t0 = time.perf_counter()
    b = from_uint8(load_pipeline(args.base)(n, steps=args.base_steps, sampler=args.base_sampler, seed=args.seed,
                                            batch_size=16))                              # (N, C, 16, 32, 32)
    t_base = (time.perf_counter() - t0) / n
    base_ok = row(f"base {args.base} ({args.base_sampler} {args.base_steps})", b, t_base)
    t0 = time.perf_counter()
    bt = quantize(upsample(tsr, None, b, space=1, time=2, **opts))                            # (N, C, 32, 32, 32)
    t_tsr = (time.perf_counter() - t0) / n
    row("base -> TSR", bt, t_base + t_tsr)
    t0 = time.perf_counter()
    bts = quantize(upsample(None, ssr, bt, space=2, time=1, **opts))                          # (N, C, 32, 64, 64)
    row("base -> TSR -> SSR", bts, t_base + t_tsr + (time.perf_counter() - t0) / n)
    blend = between(b, "blend")                                                               # (N, C, 32, 32, 32)
    row("base -> neighbour average", blend, None)
    row("base -> neighbour average -> bilinear", quantize(bilinear2x(blend)), None)


def report_rows(args, rows: dict) -> dict:
    clips = "" if args.skip_clips else f"{args.num} held-out shape clips; "
    base = f"; {args.base_num} samples of {args.base}" if args.base else ""
    print(f"\n{clips}{args.steps} {args.sampler} steps per stage; models {args.tsr}, {args.ssr}{base}")
    print("\n| output | PSNR dB ↑ | SSIM ↑ | passes the checker | s / video |")
    print("|---|---:|---:|---:|---:|")
    for name, r in rows.items():
        ok = f"{100 * r['checker_ok']:.1f} %" if r["checker_ok"] is not None else ""
        sec = f"{r['seconds_per_video']:.2f}" if r["seconds_per_video"] is not None else ""
        p = "∞" if name == "real clips" else ("" if r["psnr"] is None else f"{r['psnr']:.2f}")
        q = "" if r["ssim"] is None else f"{r['ssim']:.3f}"
        if r.get("kept") is not None:
            ok += f" (kept {100 * r['kept']:.0f} %)"
        print(f"| {name} | {p} | {q} | {ok} | {sec} |")
    report = {"num": args.num, "steps": args.steps, "sampler": args.sampler, "tsr": args.tsr, "ssr": args.ssr,
              "base": args.base, "base_num": args.base_num, "base_steps": args.base_steps,
              "base_sampler": args.base_sampler, "rows": rows}
    if args.out:
        from vidiff.utils import atomic_write_text

        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
