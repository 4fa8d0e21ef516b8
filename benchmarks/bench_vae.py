"""Video autoencoders on held-out clips: reconstruction quality and temporal stability, per-frame vs temporal decoder.

    OMP_NUM_THREADS=2 python benchmarks/bench_vae.py --vae models/vae-tiny --per-frame runs/vae-frame \\
        --clips data/shapes128-heldout --clips data/footage-split/heldout [--frames 16] [--size 128] [--num 16]

For every folder of held-out videos (up to `--num` clips of `--frames` frames, shorter side resized to `--size`,
centre-cropped to a multiple of the spatial factor; long videos are cut into consecutive clips) and every
autoencoder, the posterior mean is decoded and scored against the input: PSNR, SSIM, and vidiff's temporal
metrics of the reconstruction — flicker (mean |x_{t+1} − x_t|) and flow-warp error — next to those of the input
itself (what a perfect reconstruction would score). Video LDM (Blattmann et al. 2023, §3.1.1 and Table 6) reports
this trade: a decoder with temporal layers removes the flicker a per-frame decoder adds, at about equal PSNR.
When `--per-frame` was the first stage of `--vae` (`vidiff vae train --init ... --train decoder`), both share the
encoder, so the same latents are decoded by both decoders. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from vidiff.data.dataset import resize_short_side
from vidiff.data.io import from_uint8, read_video, to_uint8
from vidiff.metrics.image import psnr, ssim
from vidiff.metrics.temporal import flicker, warp_error
from vidiff.models.autoencoders import load_autoencoder

VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".gif", ".npy")


def held_out_clips(folder: Path, frames: int, size: int, num: int, factor: int) -> np.ndarray:
    """Up to `num` clips (N, F, size, size, 3) uint8 from the videos of `folder`, in name order: the shorter side
    resized to `size`, the centre size×size square kept (as `vidiff vae train --size` sees its data)."""
    if size % factor:
        raise SystemExit(f"--size {size} is not a multiple of the spatial factor {factor}")
    clips = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES):
        video = resize_short_side(read_video(path), size)  # (T, H, W, 3)
        top, left = (video.shape[1] - size) // 2, (video.shape[2] - size) // 2
        video = video[:, top:top + size, left:left + size]
        for k in range(0, len(video) - frames + 1, frames):
            clips.append(video[k:k + frames])
            if len(clips) == num:
                return np.stack(clips)
    if not clips:
        raise SystemExit(f"{folder}: no video with {frames} frames")
    return np.stack(clips)


@torch.no_grad()
def reconstruct(ae, clips: np.ndarray) -> np.ndarray:
    out = []
    for clip in clips:
        x = from_uint8(clip)[None]  # (1, 3, F, H, W)
        out.append(to_uint8(ae.decode(ae.encode(x).mode()).clamp(-1, 1))[0])
    return np.stack(out)


def row(name: str, clips: np.ndarray, rec: np.ndarray | None, seconds: float) -> str:
    if rec is None:
        return (f"| {name} | — | — | {flicker(clips).mean():.4f} | {warp_error(clips, border=4).mean():.4f} | — |")
    p = np.mean([psnr(c, r).mean().item() for c, r in zip(clips, rec)])
    s = np.mean([ssim(c, r).mean().item() for c, r in zip(clips, rec)])
    return (f"| {name} | {p:.2f} | {s:.4f} | {flicker(rec).mean():.4f} | {warp_error(rec, border=4).mean():.4f} "
            f"| {seconds / len(clips):.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vae", required=True, help="the autoencoder (with a temporal decoder)")
    ap.add_argument("--per-frame", help="a per-frame autoencoder to compare with")
    ap.add_argument("--clips", action="append", required=True, help="a folder of held-out videos (repeatable)")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--num", type=int, default=16)
    args = ap.parse_args()
    models = {"temporal decoder": load_autoencoder(args.vae)}
    if args.per_frame:
        models = {"per-frame decoder": load_autoencoder(args.per_frame), **models}
    factor = models["temporal decoder"].spatial_factor
    for folder in args.clips:
        clips = held_out_clips(Path(folder), args.frames, args.size, args.num, factor)
        print(f"\n{folder}: {len(clips)} clips of {'x'.join(map(str, clips.shape[1:4]))} (frames x height x width)\n")
        print("| | PSNR dB | SSIM | flicker | warp error | s/clip |")
        print("|---|---|---|---|---|---|")
        print(row("input", clips, None, 0.0))
        for name, ae in models.items():
            t0 = time.perf_counter()
            rec = reconstruct(ae, clips)
            print(row(name, clips, rec, time.perf_counter() - t0), flush=True)


if __name__ == "__main__":
    main()
