"""Video stylisation by statistics transfer (the textbook's §11.3.4): AdaIN (Huang & Belongie 2017) on colour
channels, per frame or with a temporal-consistency term.

    out = stylize(video, style)                    # temporal: smoothed statistics + flow-warped blending
    out = stylize(video, style, smooth=0, blend=0)  # per frame: each frame's own statistics

AdaIN maps content x with per-channel mean μ(x) and standard deviation σ(x) to
    y = σ(s) · (x − μ(x)) / σ(x) + μ(s)
so y carries the style image s's channel statistics (FiLM with the style's scale and shift). vidiff ships no
feature network (VGG encoder/decoder weights are not bundled), so the statistics are those of the RGB channels.

Per-frame AdaIN flickers: anything that changes one frame's statistics (an object moving in or growing, noise)
re-normalises the whole frame, so a static background changes colour from frame to frame. The temporal
variant (1) smooths the moments E[x], E[x²] over time with a Gaussian of `smooth` frames (∞: the clip's
moments, so the whole clip gets the style's statistics), and (2) blends each output frame with the previous
output warped along the input's optical flow, weight `blend`, where the warp is photometrically consistent
(an occlusion test on the input frames), as in flow-based video style transfer (Ruder et al. 2016).
"""
from __future__ import annotations

import math

import numpy as np

from ..metrics.flow import optical_flow, warp
from ..utils import VidiffError

EPS = 1e-6
CONSISTENCY = 0.08  # |warped input − input| above this (0..1 intensity) marks a pixel as occluded: no blending


def channel_moments(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float frames (F, H, W, C) -> per-frame first and second moments E[x], E[x²], each (F, C)."""
    return frames.mean(axis=(1, 2)), (frames ** 2).mean(axis=(1, 2))


def smooth_over_time(values: np.ndarray, sigma: float) -> np.ndarray:
    """values (F, C) averaged over frames with Gaussian weights of std `sigma` frames (row-normalised);
    0 leaves them, ∞ gives every frame the mean over all frames."""
    if sigma <= 0:
        return values
    n = len(values)
    if math.isinf(sigma):
        return np.broadcast_to(values.mean(axis=0), values.shape).copy()
    t = np.arange(n, dtype=np.float64)
    w = np.exp(-0.5 * ((t[:, None] - t[None, :]) / sigma) ** 2)  # (F, F)
    return (w / w.sum(axis=1, keepdims=True)) @ values


def adain(frames: np.ndarray, mean: np.ndarray, std: np.ndarray, style_mean: np.ndarray,
          style_std: np.ndarray) -> np.ndarray:
    """AdaIN (Huang & Belongie 2017, eq. 8): σ(s)·(x − μ)/σ + μ(s) for frames (F, H, W, C) with content statistics
    mean, std (F, C) and style statistics (C,)."""
    return (frames - mean[:, None, None]) / np.maximum(std[:, None, None], EPS) * style_std + style_mean


def flow_blend(out: np.ndarray, frames: np.ndarray, blend: float) -> np.ndarray:
    """Temporal term: out_t ← (1 − blend)·out_t + blend·warp(out_{t−1}) where the input's flow t → t−1 warps
    frame t−1 onto frame t within CONSISTENCY; recursive, so a stable region stays stable. Floats in [0, 1]."""
    if blend <= 0:
        return out
    u8 = np.clip(frames * 255 + 0.5, 0, 255).astype(np.uint8)
    res = out.copy()
    for t in range(1, len(out)):
        flow = optical_flow(u8[t], u8[t - 1])  # x_t(p) ≈ x_{t−1}(p + flow(p))
        prev_in, valid = warp(frames[t - 1].astype(np.float32), flow)
        prev_out, _ = warp(res[t - 1].astype(np.float32), flow)
        ok = valid & (np.abs(prev_in - frames[t]).max(axis=-1) < CONSISTENCY)  # (H, W)
        res[t] = np.where(ok[..., None], (1 - blend) * res[t] + blend * prev_out, res[t])
    return res


def stylize(video: np.ndarray, style: np.ndarray, *, smooth: float = math.inf, blend: float = 0.5) -> np.ndarray:
    """uint8 video (F, H, W, 3) in the style of a uint8 image (H', W', 3): AdaIN on RGB statistics smoothed over
    `smooth` frames (0: per frame; ∞: the clip's), then blended along the flow with weight `blend` in [0, 1)
    (0: no blending). Returns uint8 (F, H, W, 3)."""
    video, style = np.asarray(video), np.asarray(style)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise VidiffError(f"expected a uint8 video (F, H, W, 3); got {video.dtype} {video.shape}")
    if style.ndim != 3 or style.shape[-1] != 3 or style.dtype != np.uint8:
        raise VidiffError(f"expected a uint8 RGB style image (H, W, 3); got {style.dtype} {style.shape}")
    if not (smooth >= 0):
        raise VidiffError(f"--smooth must be >= 0 frames (0: per-frame statistics, inf: the clip's); got {smooth}")
    if not 0 <= blend < 1:
        raise VidiffError(f"--blend must lie in [0, 1); got {blend}")
    x = video.astype(np.float64) / 255.0  # (F, H, W, 3)
    s = style.astype(np.float64).reshape(-1, 3) / 255.0
    m1, m2 = (smooth_over_time(m, smooth) for m in channel_moments(x))  # (F, 3) each
    std = np.sqrt(np.maximum(m2 - m1 ** 2, 0.0))
    out = adain(x, m1, std, s.mean(axis=0), s.std(axis=0))  # (F, H, W, 3)
    out = flow_blend(out, x, blend)
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


def per_frame(video: np.ndarray, style: np.ndarray) -> np.ndarray:
    """Per-frame AdaIN, the baseline: each frame normalised by its own statistics, no temporal term."""
    return stylize(video, style, smooth=0.0, blend=0.0)
