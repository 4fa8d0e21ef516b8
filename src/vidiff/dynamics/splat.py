"""Softmax splatting (Niklaus & Liu, CVPR 2020, eq. 1-4) in pure PyTorch: differentiable, CPU and GPU.

Each source pixel p is pushed to p + F(p) and shared among the 4 integer neighbours with bilinear
weights b. Modes:
  "sum":      out(q) = Σ_p b(p, q) I(p)                                   (eq. 1, conserves mass)
  "average":  out(q) = Σ b I / Σ b                                        (eq. 2)
  "softmax":  out(q) = Σ b exp(Z) I / Σ b exp(Z)                          (eq. 4)
The metric Z is taken from the motion magnitude as in GID sec. 5 (``motion_metric``); exp(Z) is
computed after subtracting the per-image max of Z, which cancels in the ratio (numerical stability).
All 4 corners and all channels go through one ``index_add_`` on a flattened (B·H·W) index.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from ..utils import VidiffError

Mode = Literal["sum", "average", "softmax"]


def motion_metric(flow: Tensor, scale: float = 1.0) -> Tensor:
    """GID's splatting metric Z = scale · ||F|| (fast-moving pixels win); ``(B, 2, H, W)`` -> ``(B, 1, H, W)``."""
    return scale * flow.pow(2).sum(1, keepdim=True).add(1e-12).sqrt()


def splat_accumulate(x: Tensor, flow: Tensor) -> Tensor:
    """Σ_p b(p, q) x(p): bilinear forward splat of ``x (B, C, H, W)`` by ``flow (B, 2, H, W)`` (eq. 1)."""
    b, c, h, w = x.shape
    if flow.shape != (b, 2, h, w):
        raise VidiffError(f"flow must be (B, 2, H, W) = {(b, 2, h, w)}, got {tuple(flow.shape)}")
    dev, dt = x.device, x.dtype
    gy, gx = torch.meshgrid(torch.arange(h, device=dev, dtype=dt), torch.arange(w, device=dev, dtype=dt), indexing="ij")
    tx = gx + flow[:, 0]  # (B, H, W) target x
    ty = gy + flow[:, 1]
    x0, y0 = torch.floor(tx), torch.floor(ty)
    fx, fy = tx - x0, ty - y0  # fractional parts carry the gradient w.r.t. flow
    x0i, y0i = x0.long(), y0.long()
    # the 4 corners stacked on a new leading axis: (4, B, H, W)
    cx = torch.stack([x0i, x0i + 1, x0i, x0i + 1])
    cy = torch.stack([y0i, y0i, y0i + 1, y0i + 1])
    wgt = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy])  # (4, B, H, W)
    inside = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
    wgt = wgt * inside
    boff = (torch.arange(b, device=dev) * (h * w)).view(1, b, 1, 1)
    idx = (boff + cy.clamp(0, h - 1) * w + cx.clamp(0, w - 1)).reshape(-1)  # (4·B·H·W,)
    src = x.permute(0, 2, 3, 1).unsqueeze(0) * wgt.unsqueeze(-1)  # (4, B, H, W, C)
    out = torch.zeros(b * h * w, c, device=dev, dtype=dt)
    out = out.index_add(0, idx, src.reshape(-1, c))  # (B·H·W, C)
    return out.view(b, h, w, c).permute(0, 3, 1, 2)  # (B, C, H, W)


def splat(x: Tensor, flow: Tensor, mode: Mode = "softmax", metric: Tensor | None = None,
          eps: float = 1e-7, return_weight: bool = False):
    """Forward-warp ``x (B, C, H, W)`` by ``flow (B, 2, H, W)`` (module doc).

    ``metric (B, 1, H, W)`` is Z for "softmax" (default: ``motion_metric(flow)``). With
    ``return_weight`` also returns the coverage Σ_p b(p, q) ``(B, 1, H, W)``: 0 at holes (output 0 there).
    """
    if mode == "sum":
        out = splat_accumulate(x, flow)
        return (out, splat_accumulate(torch.ones_like(x[:, :1]), flow)) if return_weight else out
    if mode == "average":
        wz = torch.ones_like(x[:, :1])
    elif mode == "softmax":
        z = motion_metric(flow) if metric is None else metric
        if z.shape != x[:, :1].shape:
            raise VidiffError(f"metric must be (B, 1, H, W), got {tuple(z.shape)}")
        # stable exp: the per-image max cancels in the ratio; the floor keeps exp(Z) > 0 in float32
        z = (z - z.detach().amax(dim=(1, 2, 3), keepdim=True)).clamp_min(-60.0)
        wz = torch.exp(z)
    else:
        raise VidiffError(f"unknown splat mode {mode!r}; choose 'sum', 'average' or 'softmax'")
    ones = torch.ones_like(x[:, :1])
    acc = splat_accumulate(torch.cat([x * wz, wz, ones], dim=1), flow)  # (B, C+2, H, W)
    num, den, cover = acc[:, :-2], acc[:, -2:-1], acc[:, -1:]
    hole = cover <= eps  # no source pixel lands here: output 0
    out = torch.where(hole, torch.zeros_like(num), num / torch.where(hole, torch.ones_like(den), den))
    return (out, cover) if return_weight else out
