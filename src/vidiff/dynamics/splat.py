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


_GRID: dict = {}


def _base_grid(h: int, w: int, device, dtype) -> tuple[Tensor, Tensor]:
    """Pixel coordinates (H, W) x and y, cached per size/device/dtype (rendering reuses them every frame)."""
    key = (h, w, str(device), dtype)
    if key not in _GRID:
        if len(_GRID) > 32:
            _GRID.clear()
        gy, gx = torch.meshgrid(torch.arange(h, device=device, dtype=dtype),
                                torch.arange(w, device=device, dtype=dtype), indexing="ij")
        _GRID[key] = (gx, gy)
    return _GRID[key]


def splat_accumulate(x: Tensor, flow: Tensor) -> Tensor:
    """Σ_p b(p, q) x(p): bilinear forward splat of ``x (B, C, H, W)`` by ``flow (B, 2, H, W)`` (eq. 1)."""
    b, c, h, w = x.shape
    if flow.shape != (b, 2, h, w):
        raise VidiffError(f"flow must be (B, 2, H, W) = {(b, 2, h, w)}, got {tuple(flow.shape)}")
    gx, gy = _base_grid(h, w, x.device, x.dtype)
    tx = gx + flow[:, 0]  # (B, H, W) target x
    ty = gy + flow[:, 1]
    x0, y0 = torch.floor(tx), torch.floor(ty)
    fx, fy = tx - x0, ty - y0  # fractional parts carry the gradient w.r.t. flow
    x0i, y0i = x0.long(), y0.long()
    vx0, vx1 = (x0i >= 0) & (x0i < w), (x0i >= -1) & (x0i < w - 1)  # corner columns inside
    vy0, vy1 = (y0i >= 0) & (y0i < h), (y0i >= -1) & (y0i < h - 1)
    gx0, gy0 = 1 - fx, 1 - fy
    wgt = torch.stack([gx0 * gy0 * (vx0 & vy0), fx * gy0 * (vx1 & vy0),
                       gx0 * fy * (vx0 & vy1), fx * fy * (vx1 & vy1)])  # (4, B, H, W)
    boff = (torch.arange(b, device=x.device) * (h * w)).view(b, 1, 1)
    i00 = boff + y0i.clamp(0, h - 1) * w + x0i.clamp(0, w - 1)  # (B, H, W) flat index of each corner
    i01 = boff + y0i.clamp(0, h - 1) * w + (x0i + 1).clamp(0, w - 1)
    i10 = boff + (y0i + 1).clamp(0, h - 1) * w + x0i.clamp(0, w - 1)
    i11 = boff + (y0i + 1).clamp(0, h - 1) * w + (x0i + 1).clamp(0, w - 1)
    idx = torch.stack([i00, i01, i10, i11]).reshape(-1)  # (4·B·H·W,)
    xc = x.transpose(0, 1).reshape(c, 1, b * h * w)  # (C, 1, B·H·W): channels first, one row each
    src = (xc * wgt.reshape(1, 4, b * h * w)).reshape(c, -1)  # (C, 4·B·H·W)
    out = x.new_zeros(c, b * h * w).index_add(1, idx, src)  # (C, B·H·W): one index_add for all corners
    return out.view(c, b, h, w).transpose(0, 1)  # (B, C, H, W)


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
