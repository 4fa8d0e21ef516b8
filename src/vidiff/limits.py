"""Limits checked before work starts: argument ranges, a peak-memory estimate against the machine's
free memory, and an ETA notice for very long work.

The estimate is deliberately simple: a backbone's activation volume for one video (the elements of
one feature map per block: per U-Net level, or the DiT token sequence per transformer block)
multiplied by a constant measured on CPU (peak RSS over the loaded model, float32, unet-nano-joint at
16x64x64 and 32x128x128: 27-36 bytes per element without gradients, 187-189 with a backward pass; the
same constants put dit-tiny's measured training peaks at 0.95-1.05x). It is meant to tell 3 GiB from
300 GiB, not 3.0 from 3.3 GiB. A DiT's ETA comes from its forward FLOPs, counted analytically
(`dit_forward_flops`), at a measured CPU rate.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .utils import VidiffError, notice

GiB = 1024 ** 3
# Measured constants (CPU, float32; see module docstring): bytes of peak memory per activation
# element of one video, for a no-grad sampling step and for a training step (forward + backward).
SAMPLE_BYTES_PER_ACT = 36
TRAIN_BYTES_PER_ACT = 192
# Seconds per activation element per denoising step of one video on one CPU core (a rough figure
# for the ETA notice only).
SECONDS_PER_ACT = 2.5e-7  # measured 1.3-2.3e-7 for the same runs
# Seconds per forward FLOP on one CPU core, for a DiT's ETA (dit-tiny measured 27-37 GFLOP/s per core).
SECONDS_PER_FLOP = 1 / 25e9
# Seconds per output pixel of a rendered frame (animate / simulate; measured ~4.6e-6 at 64x64 on one core).
RENDER_SECONDS_PER_PIXEL = 5e-6
LONG_WORK_S = 600.0  # work expected to run longer than this gets an ETA notice


def check_positive(value: Any, option: str, minimum: int | float = 1, *, strict: bool = False) -> None:
    """Refuse `value` below `minimum` (or not above it with `strict`) with one line naming `option`."""
    if value is None:
        return
    bad = value <= minimum if strict else value < minimum
    if bad:
        bound = f"greater than {minimum:g}" if strict else f"at least {minimum:g}"
        raise VidiffError(f"{option} must be {bound}; got {value:g}")


def parse_bytes(text: str) -> int:
    """'3G', '512M', '2.5GiB', '1000000' -> bytes."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
    try:
        return int(float(t[:-1] if mult > 1 else t) * mult)
    except ValueError:
        raise VidiffError(f"VIDIFF_MAX_MEMORY={text!r}: give a size such as 4G or 512M") from None


def free_memory_bytes() -> int:
    """Memory this process can still take: MemAvailable from /proc/meminfo (psutil if installed),
    capped by a cgroup v2/v1 limit when one is set and by the VIDIFF_MAX_MEMORY environment variable
    (e.g. 4G: what vidiff may plan to use on a shared machine)."""
    free = None
    cap = os.environ.get("VIDIFF_MAX_MEMORY")
    try:
        import psutil  # optional

        free = int(psutil.virtual_memory().available)
    except ImportError:
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
        except OSError:
            pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit.isdigit() and int(limit) < 1 << 60:
                left = int(limit) - int(Path(usage_file).read_text().strip())
                free = left if free is None else min(free, left)
                break
        except (OSError, ValueError):
            continue
    if cap:
        free = parse_bytes(cap) if free is None else min(free, parse_bytes(cap))
    return free if free is not None else 1 << 62  # unknown: do not refuse


def activation_elements(model_config: Any, frames: int, height: int, width: int) -> int:
    """Elements of the activations of one video through a backbone (per sample, one map per level).

    U-Net: Σ_levels channels_l · F_l · H_l · W_l · (res blocks + 1); DiT: tokens · hidden · depth, one
    token map per block like the U-Net's one map per block (the bytes-per-element constants cover what a
    block keeps besides: its MLP's wider hidden layer, attention inputs, norms). Attention matrices are not
    counted (PyTorch's fused attention never holds them whole). Other configs count the input as 64 channels.
    """
    cfg = model_config
    arch = getattr(cfg, "arch", None)
    if arch == "unet3d":
        p = max(1, cfg.patch_size)
        h, w, f = max(1, height // p), max(1, width // p), frames
        total = 0
        for level, mult in enumerate(cfg.channel_mults):
            c = cfg.base_channels * mult
            total += c * f * h * w * (cfg.num_res_blocks + 1)
            if level < len(cfg.channel_mults) - 1:
                h, w = max(1, h // 2), max(1, w // 2)
                if level in cfg.temporal_down_levels:
                    f = max(1, f // 2)
        return int(total)
    if arch == "dit":
        p = cfg.patch_size
        tokens = max(1, frames // max(1, cfg.patch_t)) * max(1, height // p) * max(1, width // p)
        return int(tokens * cfg.hidden_size * cfg.depth)
    return int(64 * frames * height * width)


def dit_forward_flops(cfg: Any, frames: int, height: int, width: int, text_tokens: int = 0) -> float:
    """FLOPs of one DiT forward on one video (2 per multiply-add, as torch's FlopCounterMode counts), analytically.

    With N = T·S tokens (T = F/p_t frames of S = (H/p)(W/p) patches) and width D, per block: the attention
    projections 8·N·D² (q, k, v, out), its scores and weighted sum 4·N·L·D over L keys per query (S per frame,
    N joint, the window's tokens, then T in the temporal attention of a factorized block with another 8·N·D²),
    the MLP 4·r·N·D², adaLN 2·D·(6|9)·D; plus the patch embedding, the output projection, the time embedding
    and text cross-attention over `text_tokens` tokens. Norms, softmax and activations are not counted."""
    p, pt, d = cfg.patch_size, max(1, cfg.patch_t), cfg.hidden_size
    t, s = max(1, frames // pt), max(1, height // p) * max(1, width // p)
    n = t * s
    factorized = cfg.temporal == "attention" and cfg.space_time == "factorized"
    if cfg.temporal != "attention" or cfg.space_time == "factorized":
        keys = s
    elif cfg.space_time == "joint":
        keys = n
    else:  # window: each query attends within its (clipped) 3D window
        wt, wh, ww = (min(w, g) for w, g in zip(cfg.window, (t, height // p, width // p)))
        keys = wt * wh * ww
    block = 8 * n * d * d + 4 * n * keys * d + 4 * cfg.mlp_ratio * n * d * d + 2 * d * (9 if factorized else 6) * d
    if factorized:
        block += 8 * n * d * d + 4 * n * t * d
    if cfg.text_dim and text_tokens:
        block += 4 * n * d * d + 4 * text_tokens * cfg.text_dim * d + 4 * n * text_tokens * d
    c_in = cfg.in_channels * (2 if cfg.self_cond else 1) + cfg.cond_channels
    stem = 2 * n * d * c_in * pt * p * p + 2 * n * d * cfg.out_channels * pt * p * p
    embed = 2 * (256 * d + d * d) + 2 * d * 2 * d  # time embedding MLP, final adaLN
    return float(cfg.depth * block + stem + embed)


def estimate_sampling_bytes(model_config: Any, batch: int, frames: int, height: int, width: int,
                            channels: int = 3, num: int | None = None) -> int:
    """Peak bytes of sampling `batch` videos at a time (plus `num` uint8 outputs held in memory)."""
    act = activation_elements(model_config, frames, height, width)
    out = (num or batch) * frames * height * width * 3  # the uint8 (N, F, H, W, 3) result
    latents = 8 * batch * channels * frames * height * width * 4  # x, x̂₀, ε̂, v̂ and the sampler's state
    return int(batch * act * SAMPLE_BYTES_PER_ACT + out + latents)


def estimate_training_bytes(model_config: Any, batch: int, frames: int, height: int, width: int) -> int:
    """Peak bytes of one training step (forward + backward, float32) on a batch of videos."""
    return int(batch * activation_elements(model_config, frames, height, width) * TRAIN_BYTES_PER_ACT)


def check_memory(need: int, what: str, fix: str = "ask for fewer frames, a smaller size or a smaller batch") -> None:
    """Refuse work whose estimated peak memory `need` exceeds the free memory, in one line."""
    free = free_memory_bytes()
    if need > free:
        capped = " (VIDIFF_MAX_MEMORY)" if os.environ.get("VIDIFF_MAX_MEMORY") else ""
        raise VidiffError(f"{what} needs about {need / GiB:.1f} GiB of memory but {free / GiB:.1f} GiB are "
                          f"free{capped}; {fix}")


def check_frames_memory(frames: int, height: int, width: int, what: str, bytes_per_pixel: int = 3,
                        option: str = "--frames") -> None:
    """Refuse rendering `frames` frames of height x width whose buffers (`bytes_per_pixel` bytes per
    pixel and frame, all frames held at once) cannot fit in memory; an ETA notice when it will run long."""
    check_memory(int(frames) * height * width * bytes_per_pixel, f"{what} {frames} frames of {width}x{height}",
                 f"lower {option}")
    eta_notice(frames * height * width * RENDER_SECONDS_PER_PIXEL / max(1, min(os.cpu_count() or 1, _torch_threads())),
               f"{what} {frames} frames of {width}x{height}")


def eta_notice(seconds: float, what: str) -> None:
    """One line on stderr with the expected duration when `what` should run longer than LONG_WORK_S."""
    if seconds > LONG_WORK_S:
        notice(f"{what} should take about {format_duration(seconds)} on this machine (Ctrl-C stops it)")


def format_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def sampling_seconds(model_config: Any, videos: int, steps: int, frames: int, height: int, width: int,
                     evals_per_step: int = 1) -> float:
    """A rough duration of `steps` denoising steps over `videos` videos, for the ETA notice."""
    threads = max(1, min(os.cpu_count() or 1, _torch_threads()))
    if getattr(model_config, "arch", None) == "dit":
        per_video = dit_forward_flops(model_config, frames, height, width) * SECONDS_PER_FLOP
    else:
        per_video = activation_elements(model_config, frames, height, width) * SECONDS_PER_ACT
    return videos * steps * evals_per_step * per_video / threads


def check_sampling(model_config: Any, *, num: int, batch: int, frames: int, height: int, width: int,
                   steps: int, channels: int = 3, what: str = "sampling", evals_per_step: int = 1) -> None:
    """Refuse a sampling request that cannot fit in memory; an ETA notice when it will run long."""
    need = estimate_sampling_bytes(model_config, min(batch, num), frames, height, width, channels, num=num)
    check_memory(need, f"{what} {num} video(s) of {frames}x{height}x{width}",
                 "ask for fewer videos or frames, or a smaller size")
    eta_notice(sampling_seconds(model_config, num, steps, frames, height, width, evals_per_step),
               f"{what} {num} video(s) of {frames}x{height}x{width} with {steps} steps")


def check_training(model_config: Any, *, batch: int, frames: int, size: int, what: str = "training") -> None:
    """Refuse a training step that cannot fit in memory (`train --size 4096`), in one line."""
    need = estimate_training_bytes(model_config, batch, frames, size, size)
    check_memory(need, f"{what} on batches of {batch} x {frames}x{size}x{size}",
                 "lower --batch, --frames or --size")


def _torch_threads() -> int:
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:  # pragma: no cover
        return 1


__all__ = ["activation_elements", "check_frames_memory", "check_memory", "check_positive", "check_sampling",
           "check_training", "dit_forward_flops", "estimate_sampling_bytes", "estimate_training_bytes", "eta_notice",
           "free_memory_bytes", "parse_bytes", "sampling_seconds"]
