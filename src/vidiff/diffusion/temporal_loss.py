"""Temporal-consistency loss (the video-diffusion textbook chapter, §11.1.1): a flicker / flow-warp penalty.

The residual of a video v (B, C, F, H, W) is what the flow does not explain,

    r_f(p) = v_{f+1}(p) − v_f(p + flow_f(p)),   f = 0 … F−2,

over the pixels whose source p + flow_f(p) lies inside the frame (backward warp, bilinear; no flow: the
plain frame difference, i.e. flicker). It is zero for a static video and for frames that are exact
warps of each other, and grows with flicker. As a training term on x̂₀ it is measured against the data's
own residual, ‖r(x̂₀) − r(x₀)‖₁, so motion the data has is not penalised, only changes it does not have.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..utils import VidiffError

__all__ = ["temporal_consistency_loss", "warp_frames", "warp_residual"]


def warp_frames(frames: Tensor, flow: Tensor) -> tuple[Tensor, Tensor]:
    """Backward warp out(p) = frames(p + flow(p)) (bilinear) of (N, C, H, W) frames by (N, 2, H, W) flow
    (dx, dy) in pixels; returns (out, valid (N, 1, H, W) float: 1 where p + flow(p) is inside the frame)."""
    n, _, h, w = frames.shape
    gy, gx = torch.meshgrid(torch.arange(h, device=frames.device, dtype=frames.dtype),
                            torch.arange(w, device=frames.device, dtype=frames.dtype), indexing="ij")
    x = gx + flow[:, 0]  # (N, H, W) absolute source coordinates
    y = gy + flow[:, 1]
    valid = ((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)).to(frames.dtype)[:, None]
    grid = torch.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], dim=-1)  # (N, H, W, 2) in [-1, 1]
    out = F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out, valid


def warp_residual(video: Tensor, flow: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(r, valid) with r_f = v_{f+1} − warp(v_f, flow_f), both (B, C|1, F−1, H, W); `flow` (B, 2, F−1, H, W)
    maps frame f+1's pixels to frame f (v_{f+1}(p) ≈ v_f(p + flow_f(p))); None: no motion."""
    if video.dim() != 5 or video.shape[2] < 2:
        raise VidiffError(f"the temporal-consistency loss needs videos (B, C, F, H, W) with F >= 2; "
                          f"got shape {tuple(video.shape)}")
    b, c, f, h, w = video.shape
    if flow is None:
        return video[:, :, 1:] - video[:, :, :-1], video.new_ones(b, 1, f - 1, h, w)
    if tuple(flow.shape) != (b, 2, f - 1, h, w):
        raise VidiffError(f"flow must have shape (B, 2, F-1, H, W) = {(b, 2, f - 1, h, w)}; got {tuple(flow.shape)}")
    src = video[:, :, :-1].transpose(1, 2).reshape(b * (f - 1), c, h, w)  # frames 0 … F−2
    fl = flow.transpose(1, 2).reshape(b * (f - 1), 2, h, w).to(video.dtype)
    warped, valid = warp_frames(src, fl)  # (B·(F−1), C, H, W), (B·(F−1), 1, H, W)
    warped = warped.reshape(b, f - 1, c, h, w).transpose(1, 2)
    valid = valid.reshape(b, f - 1, 1, h, w).transpose(1, 2)
    return (video[:, :, 1:] - warped) * valid, valid


def temporal_consistency_loss(video: Tensor, flow: Tensor | None = None, reference: Tensor | None = None) -> Tensor:
    """Per-sample (B,) mean |r(video) − r(reference)| over valid pixels, channels and frame pairs, with r the
    flow-warp residual (`warp_residual`; the reference's 0 when `reference` is None: plain flicker/warp
    error). Zero for a static video, for frames that are exact warps of each other under `flow`, and for
    video = reference; positive with flicker."""
    r, valid = warp_residual(video, flow)
    if reference is not None:
        if reference.shape != video.shape:
            raise VidiffError(f"reference shape {tuple(reference.shape)} must equal video shape {tuple(video.shape)}")
        r = r - warp_residual(reference, flow)[0]
    b, c = video.shape[:2]
    count = (valid.reshape(b, -1).sum(1) * c).clamp(min=1)
    return r.abs().reshape(b, -1).sum(1) / count
