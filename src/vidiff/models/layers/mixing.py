"""Temporal mixing on the U-Net's `(B·F, C, H, W)` layout: convolutions over frames (pseudo-3D, full-3D)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .primitives import VideoCtx, frame_keep, group_norm


class TemporalConv(nn.Module):
    """1D convolution over frames at every pixel, initialised to the identity (Make-A-Video §3.2 pseudo-3D).

    Computed as one 1×1 conv to k·C channels followed by shifted sums along F, which keeps the
    `(B·F, C, H, W)` layout (no transposes). Causal: taps only look at frames ≤ t.
    """

    def __init__(self, channels: int, kernel_size: int = 3, causal: bool = False):
        super().__init__()
        self.kernel_size, self.causal = kernel_size, causal
        self.weight = nn.Parameter(torch.zeros(channels, channels, kernel_size))  # Conv1d layout (out, in, k)
        self.bias = nn.Parameter(torch.zeros(channels))
        with torch.no_grad():
            self.weight[:, :, self.left].copy_(torch.eye(channels))

    @property
    def left(self) -> int:
        return self.kernel_size - 1 if self.causal else self.kernel_size // 2

    def forward(self, x: Tensor, ctx: VideoCtx) -> Tensor:
        bf, c, h, w = x.shape
        b, frames, k = ctx.batch, ctx.frames, self.kernel_size
        z = F.conv2d(x, rearrange(self.weight, "o i k -> (k o) i")[..., None, None])  # (B·F, k·C, H, W)
        z = z.view(b, frames, k, c, h, w)
        y = torch.zeros_like(z[:, :, 0]) + self.bias[:, None, None]  # (B, F, C, H, W)
        for j in range(k):
            o = j - self.left  # output frame f reads input frame f + o
            if abs(o) >= frames:
                continue
            if o >= 0:
                y[:, : frames - o] += z[:, o:, j]
            else:
                y[:, -o:] += z[:, : frames + o, j]
        y = y.reshape(bf, c, h, w)
        if ctx.keep is not None:
            g = frame_keep(ctx.keep, frames)
            y = x + g * (y - x)
        return y


class VideoConv3d(nn.Module):
    """k×k×k convolution of `(B·F, C, H, W)` features (full-3D variant); image samples use the centre time slice."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, causal: bool = False):
        super().__init__()
        self.causal, self.k = causal, kernel_size
        self.conv = nn.Conv3d(cin, cout, kernel_size, padding=(0, kernel_size // 2, kernel_size // 2))

    def forward(self, x: Tensor, ctx: VideoCtx) -> Tensor:
        b, frames, k = ctx.batch, ctx.frames, self.k
        v = rearrange(x, "(b f) c h w -> b c f h w", b=b)
        left = k - 1 if self.causal else k // 2
        v = F.pad(v, (0, 0, 0, 0, left, k - 1 - left))  # zero-pad time
        y = rearrange(self.conv(v), "b c f h w -> (b f) c h w")
        if ctx.keep is not None:
            y2d = F.conv2d(x, self.conv.weight[:, :, left], self.conv.bias, padding=k // 2)
            g = frame_keep(ctx.keep, frames)
            y = y2d + g * (y - y2d)
        return y
