"""Temporal layers of UNet3D side by side: parameters, FLOPs and training-step time at equal spatial model.

Every row is the demo-width image U-Net (`unet-nano-image`: 16/32/64 channels, per-frame attention at the
lowest level) with one `temporal` choice, so the rows differ only in how frames are mixed:
  * temporal params: the parameters of the temporal layers of the whole model, and of the one temporal layer
    (or, for "conv"/"dwconv", the two ResBlock taps) of a block at the reference width of 64 channels;
  * GFLOPs: one forward at B=1 on F×S×S clips (FlopCounterMode on the meta device);
  * train step: median seconds of forward + backward + AdamW at B=--batch after a warm-up, and the process
    CPU seconds per thread (less sensitive to other jobs on the cores: when the two differ a lot the
    machine was busy, rerun it on an idle one).

    OMP_NUM_THREADS=2 python benchmarks/bench_temporal_mixers.py            # the docs/temporal_modules.md table
    python benchmarks/bench_temporal_mixers.py --frames 8 --size 32 --batch 2 --steps 3
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from vidiff.models import build_model
from vidiff.models.presets import get_preset
from vidiff.models.stats import config_stats
from vidiff.models.temporal import select_parameters
from vidiff.models.unet3d import UNet3DConfig

KINDS = ("none", "attention", "conv", "videoldm", "convgru", "biconvgru", "hierarchical", "dwconv", "motion")
REFERENCE_WIDTH = 64


def block_temporal_params(kind: str, width: int = REFERENCE_WIDTH) -> int:
    """Parameters of the temporal layers of one UNet3D block at `width` channels (0 for "none")."""
    if kind == "none":
        return 0
    cfg = UNet3DConfig(base_channels=width, channel_mults=(1,), attention_levels=(), mid_attention=False,
                       head_dim=32, temporal=kind, min_group_channels=4)
    block = build_model(cfg).down[0].blocks[0]
    return sum(p.numel() for n, p in block.named_parameters()
               if any(part in ("temporal", "temporal_conv", "tconv1", "tconv2") for part in n.split(".")))


def train_step_seconds(cfg, frames: int, size: int, batch: int, steps: int) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds per thread) of a training step."""
    torch.manual_seed(0)
    model = build_model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, t = torch.randn(batch, 3, frames, size, size), torch.rand(batch)
    wall, cpu = [], []
    for i in range(steps + 1):
        w0, c0 = time.perf_counter(), time.process_time()
        (model(x, t) - x).square().mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:  # the first step warms up
            wall.append(time.perf_counter() - w0)
            cpu.append((time.process_time() - c0) / torch.get_num_threads())
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--kinds", default=",".join(KINDS))
    args = ap.parse_args()
    base = get_preset("unet-nano-image")
    print(f"unet-nano-image + temporal layers; clips B={args.batch} x {args.frames}x{args.size}x{args.size}; "
          f"{torch.get_num_threads()} threads")
    print(f"| temporal | params (M) | temporal params (M) | one block's at C={REFERENCE_WIDTH} (k) | GFLOPs (B=1) "
          f"| train step (s) | CPU s / thread |")
    print("|---|---|---|---|---|---|---|")
    for kind in args.kinds.split(","):
        cfg = dataclasses.replace(base, temporal=kind)
        params, gflops = config_stats(cfg, args.frames, args.size, args.size, 1)
        model = build_model(cfg)
        temporal = 0 if kind == "none" else sum(
            p.numel() for n, p in model.named_parameters() if n in set(select_parameters(model, "temporal")))
        wall, cpu = train_step_seconds(cfg, args.frames, args.size, args.batch, args.steps)
        print(f"| {kind} | {params / 1e6:.3f} | {temporal / 1e6:.3f} | {block_temporal_params(kind) / 1e3:.1f} "
              f"| {gflops:.3f} | {wall:.3f} | {cpu:.3f} |", flush=True)


if __name__ == "__main__":
    main()
