"""Temporal mixing on the U-Net's `(B·F, C, H, W)` layout: convolutions over frames (pseudo-3D, full-3D,
Video LDM's 3D-conv block) and Video LDM's learned α-merge of a temporal layer with its spatial input."""
from __future__ import annotations

import dataclasses
import math

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


class TemporalResBlock(nn.Module):
    """x + conv_t(SiLU(GN(conv_t(SiLU(GN(x)))))) with k×1×1 convolutions over frames: Video LDM's 3D-conv
    temporal block (Blattmann et al. 2023 §3.1; the time stack of SVD's VideoResBlock). The second conv
    starts at zero, so the block starts as the identity; image samples (`ctx.keep` = 0) pass through."""

    def __init__(self, channels: int, groups: int = 32, eps: float = 1e-5, kernel_size: int = 3,
                 causal: bool = False):
        super().__init__()
        self.norm1 = group_norm(channels, groups, eps)
        self.conv1 = TemporalConv(channels, kernel_size, causal)
        self.norm2 = group_norm(channels, groups, eps)
        self.conv2 = TemporalConv(channels, kernel_size, causal)
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.conv1.weight, a=math.sqrt(5))  # torch's Conv1d default
            self.conv2.weight.zero_()

    def forward(self, x: Tensor, ctx: VideoCtx) -> Tensor:
        inner = dataclasses.replace(ctx, keep=None)  # the whole branch is gated below, not each conv
        h = self.conv1(F.silu(self.norm1(x)), inner)  # (B·F, C, H, W)
        h = self.conv2(F.silu(self.norm2(h)), inner)
        if ctx.keep is not None:
            h = h * frame_keep(ctx.keep, ctx.frames)
        return x + h


class AlphaBlend(nn.Module):
    """z = α·z_spatial + (1 − α)·z_temporal, z_temporal = layer(z_spatial), α = sigmoid(alpha_logit) a learned
    scalar per layer (Video LDM, Blattmann et al. 2023, eq. 2).

    The sigmoid keeps α in (0, 1) with a gradient everywhere (a clamped α stops learning once it leaves
    [0, 1]); the identity at initialisation comes from the temporal layer (a residual block whose last
    projection is zero), not from α, so α starts at ½, where its sigmoid is steepest. The merge is
    computed as z_t + α·(z_s − z_t), which is exactly z_s while z_t = z_s. Image samples (`ctx.keep` = 0)
    get z_spatial: their frames stay independent (joint image–video training).
    """

    def __init__(self, layer: nn.Module, alpha_logit: float = 0.0):
        super().__init__()
        self.layer = layer
        self.alpha_logit = nn.Parameter(torch.full((1,), float(alpha_logit)))

    @property
    def alpha(self) -> Tensor:
        """α ∈ (0, 1), the weight of the spatial features, shape (1,)."""
        return torch.sigmoid(self.alpha_logit)

    def forward(self, x: Tensor, ctx: VideoCtx) -> Tensor:
        z_temporal = self.layer(x, ctx)  # (B·F, C, H, W)
        z = z_temporal + self.alpha.to(x.dtype) * (x - z_temporal)  # eq. 2
        if ctx.keep is not None:
            z = torch.where(frame_keep(ctx.keep, ctx.frames) > 0, z, x)
        return z
