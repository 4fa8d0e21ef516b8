"""Temporal-consistency metrics on single videos: flicker, flow-warp error, motion consistency, motion magnitude.

All take uint8 (N, F, H, W, 3) arrays or float (B, C, F, H, W) tensors in [-1, 1] and return one value per
video as float64 numpy (N,); pixel errors are in [0, 1] intensity units, flow in pixels.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

import torch

from ..utils import VidiffError
from .flow import optical_flow, warp
from .protocol import as_uint8_videos


def _as_u8(videos) -> np.ndarray:
    return as_uint8_videos(videos)  # (N, F, H, W, 3)


def _need_frames(v: np.ndarray, k: int, what: str) -> None:
    if v.shape[1] < k:
        raise VidiffError(f"{what} needs at least {k} frames per video, got {v.shape[1]}")


def flicker(videos) -> np.ndarray:
    """Mean |x_{t+1} − x_t| over pixels, channels and consecutive frame pairs, per video (N,)."""
    v = _as_u8(videos)
    _need_frames(v, 2, "flicker")
    return np.asarray([np.abs(np.diff(video.astype(np.float32), axis=0)).mean() / 255.0 for video in v])


def warp_error(videos, border: int = 0) -> np.ndarray:
    """Mean |warp(x_t, F_{t+1→t}) − x_{t+1}| over valid pixels (source inside the frame), per video (N,)."""
    v = _as_u8(videos)
    _need_frames(v, 2, "warp error")
    out = []
    for video in v:
        errs = []
        for t in range(len(video) - 1):
            flow = optical_flow(video[t + 1], video[t])  # x_{t+1}(p) ≈ x_t(p + flow)
            warped, valid = warp(video[t], flow)
            if border:
                inner = np.zeros_like(valid)
                inner[border:-border, border:-border] = True
                valid &= inner
            if valid.any():
                diff = np.abs(warped.astype(np.float32) - video[t + 1].astype(np.float32)) / 255.0
                errs.append(diff[valid].mean())
        out.append(float(np.mean(errs)) if errs else float("nan"))
    return np.asarray(out)


def motion_magnitude(videos) -> np.ndarray:
    """Mean optical-flow length ‖F_{t→t+1}‖ in pixels, per video (N,)."""
    v = _as_u8(videos)
    _need_frames(v, 2, "motion magnitude")
    return np.asarray([
        np.mean([np.linalg.norm(optical_flow(video[t], video[t + 1]), axis=-1).mean() for t in range(len(video) - 1)])
        for video in v
    ])


def compose_flow(f01: np.ndarray, f12: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F_{0→1} ∘ F_{1→2})(p) = F_{0→1}(p) + F_{1→2}(p + F_{0→1}(p)); returns (flow, valid)."""
    f12_at, valid = warp(f12, f01)
    return f01 + f12_at, valid


def motion_consistency(videos) -> np.ndarray:
    """Mean endpoint error ‖F_{t→t+1} ∘ F_{t+1→t+2} − F_{t→t+2}‖ in pixels over valid pixels, per video (N,)."""
    v = _as_u8(videos)
    _need_frames(v, 3, "motion consistency")
    out = []
    for video in v:
        errs = []
        for t in range(len(video) - 2):
            comp, valid = compose_flow(optical_flow(video[t], video[t + 1]), optical_flow(video[t + 1], video[t + 2]))
            direct = optical_flow(video[t], video[t + 2])
            if valid.any():
                errs.append(np.linalg.norm(comp - direct, axis=-1)[valid].mean())
        out.append(float(np.mean(errs)) if errs else float("nan"))
    return np.asarray(out)


def sliding_windows(num_frames: int, window: int, stride: int | None = None) -> list[tuple[int, int]]:
    """(start, end) frame ranges of length `window` every `stride` frames (default: non-overlapping)."""
    stride = stride or window
    if window < 1 or stride < 1:
        raise VidiffError(f"window and stride must be >= 1, got {window}, {stride}")
    if window > num_frames:
        raise VidiffError(f"window of {window} frames is longer than the videos ({num_frames} frames)")
    return [(s, s + window) for s in range(0, num_frames - window + 1, stride)]


def over_windows(fn: Callable, *videos, window: int, stride: int | None = None) -> list[tuple[int, float]]:
    """Apply fn(*clips) -> scalar (or per-video array, averaged) to each time window; [(start, value)].

    Videos are (B, C, F, H, W) tensors or (N, F, H, W, 3) arrays, all of one frame count."""
    axis = 2 if isinstance(videos[0], torch.Tensor) else 1  # (B, C, F, H, W) tensors or (N, F, H, W, 3) arrays
    out = []
    for s, e in sliding_windows(videos[0].shape[axis], window, stride):
        val = fn(*[v[:, :, s:e] if axis == 2 else v[:, s:e] for v in videos])
        out.append((s, float(np.mean(np.asarray(val, dtype=np.float64)))))
    return out
