"""Temporal mixers of the video-diffusion textbook chapter (§11.2.3, §11.2.4, §11.2.6, §11.3.2) as UNet3D
temporal layers, on the U-Net's `(B·F, C, H, W)` layout (`UNet3DConfig.temporal`):

  "convgru"       recurrent propagation: a ConvGRU runs over the frames in order (Ballas et al. 2016), so
                  frame f sees frames ≤ f (causal by construction)
  "biconvgru"     bidirectional propagation: a forward and a backward ConvGRU, their states fused per frame
  "hierarchical"  short-, mid- and long-term mixers fused per block: depthwise temporal convs at dilations
                  1 and 3 and attention over the spatially pooled frames (the whole clip)
  "dwconv"        lightweight (2+1)D: each ResBlock 3×3 conv is followed by a depthwise 3-tap conv over frames
                  (C·3 weights against Make-A-Video's C²·3), initialised to the delta kernel
  "motion"        content/motion split: content = the mean of the frames (of frames ≤ f when causal), motion
                  = x − content; a depthwise temporal conv mixes the motion, the content is broadcast

Every mixer is a residual branch whose last projection starts at zero (or, for "dwconv", a delta kernel),
so at initialisation a model is its spatial path frame by frame: an image model inflated with any of them
(`video_ldm_from_image(image, temporal=...)`) keeps its output. Image samples (`ctx.keep` = 0) skip the
mixers, as with the other temporal layers.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..utils import VidiffError
from .layers import TemporalAttention, VideoCtx, frame_keep, group_norm

MIXERS = ("convgru", "biconvgru", "hierarchical", "dwconv", "motion")
RESBLOCK_MIXERS = ("dwconv",)  # mixers that sit inside the ResBlock, after each 2D conv


def _gate(branch: Tensor, ctx: VideoCtx) -> Tensor:
    """The residual branch (B·F, C, H, W), zeroed for image samples (ctx.keep = 0)."""
    return branch if ctx.keep is None else branch * frame_keep(ctx.keep, ctx.frames)


def _zero_conv1x1(cin: int, cout: int) -> nn.Conv2d:
    """A 1×1 projection that starts at zero (the residual branch starts as nothing)."""
    conv = nn.Conv2d(cin, cout, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class DepthwiseTemporalConv(nn.Module):
    """y[c, f] = b[c] + Σ_j w[c, j] · x[c, f + (j − left)·d], zero beyond the clip: a k×1×1 depthwise
    convolution over frames (the temporal half of a depthwise-separable (2+1)D conv, Tran et al. 2018).
    `identity=True` starts at the delta kernel (w[:, left] = 1), i.e. y = x; causal taps read frames ≤ f."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: int = 1, causal: bool = False,
                 identity: bool = True):
        super().__init__()
        self.kernel_size, self.dilation, self.causal = kernel_size, dilation, causal
        self.weight = nn.Parameter(torch.zeros(channels, kernel_size))  # (C, k)
        self.bias = nn.Parameter(torch.zeros(channels))
        with torch.no_grad():
            if identity:
                self.weight[:, self.left] = 1.0
            else:  # torch's Conv1d default for a fan-in of k
                bound = 1 / math.sqrt(kernel_size)
                self.weight.uniform_(-bound, bound)

    @property
    def left(self) -> int:
        """Index of the tap that reads frame f itself."""
        return self.kernel_size - 1 if self.causal else self.kernel_size // 2

    def forward(self, x: Tensor, ctx: VideoCtx) -> Tensor:
        c, k, d = x.shape[1], self.kernel_size, self.dilation
        v = rearrange(x, "(b f) c h w -> b c f h w", b=ctx.batch)
        v = F.pad(v, (0, 0, 0, 0, self.left * d, (k - 1 - self.left) * d))  # zeros before/after the clip
        y = F.conv3d(v, self.weight.view(c, 1, k, 1, 1), self.bias, dilation=(d, 1, 1), groups=c)  # (B, C, F, H, W)
        y = rearrange(y, "b c f h w -> (b f) c h w")
        if ctx.keep is not None:
            y = x + frame_keep(ctx.keep, ctx.frames) * (y - x)
        return y


class ConvGRU(nn.Module):
    """ConvGRU over frames (Ballas et al. 2016, eq. 4–7 with a GRU): z_f = σ(W_z x_f + U_z ∗ h_{f−1}),
    r_f = σ(W_r x_f + U_r ∗ h_{f−1}), n_f = tanh(W_n x_f + U_n ∗ (r_f ⊙ h_{f−1})), h_f = (1 − z_f) ⊙ h_{f−1}
    + z_f ⊙ n_f, h_{−1} = 0; W are 1×1 convs (computed for all frames at once), U 3×3 convs (the state
    spreads spatially as it moves through time). `reverse=True` runs from the last frame to the first."""

    def __init__(self, channels: int, hidden: int, kernel_size: int = 3):
        super().__init__()
        self.hidden = hidden
        self.x_gates = nn.Conv2d(channels, 3 * hidden, 1)
        self.h_gates = nn.Conv2d(hidden, 2 * hidden, kernel_size, padding=kernel_size // 2, bias=False)
        self.h_cand = nn.Conv2d(hidden, hidden, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor, ctx: VideoCtx, reverse: bool = False) -> Tensor:
        _, _, hh, ww = x.shape
        gx = self.x_gates(x).view(ctx.batch, ctx.frames, 3 * self.hidden, hh, ww)  # (B, F, 3·hidden, H, W)
        state = x.new_zeros(ctx.batch, self.hidden, hh, ww)  # (B, hidden, H, W)
        states: list[Tensor | None] = [None] * ctx.frames
        for f in (reversed(range(ctx.frames)) if reverse else range(ctx.frames)):
            xz, xr, xn = gx[:, f].chunk(3, dim=1)
            hz, hr = self.h_gates(state).chunk(2, dim=1)
            z, r = torch.sigmoid(xz + hz), torch.sigmoid(xr + hr)
            n = torch.tanh(xn + self.h_cand(r * state))
            state = (1 - z) * state + z * n
            states[f] = state
        return torch.stack(states, dim=1).flatten(0, 1)  # (B·F, hidden, H, W)


class RecurrentTemporalBlock(nn.Module):
    """x + W_o h(GN(x)): recurrent propagation (chapter §11.2.3) with a ConvGRU's states h, or bidirectional
    propagation with [h_forward; h_backward] fused by W_o (a 1×1 conv starting at zero ⇒ identity)."""

    def __init__(self, channels: int, groups: int = 32, eps: float = 1e-5, bidirectional: bool = False,
                 hidden: int | None = None):
        super().__init__()
        hidden = hidden or max(4, channels // 2)
        self.norm = group_norm(channels, groups, eps)
        self.forward_gru = ConvGRU(channels, hidden)
        self.backward_gru = ConvGRU(channels, hidden) if bidirectional else None
        self.proj_out = _zero_conv1x1(hidden * (2 if bidirectional else 1), channels)

    def forward(self, x: Tensor, ctx: VideoCtx) -> Tensor:
        h = self.norm(x)  # (B·F, C, H, W)
        states = self.forward_gru(h, ctx)  # (B·F, hidden, H, W)
        if self.backward_gru is not None:
            states = torch.cat([states, self.backward_gru(h, ctx, reverse=True)], dim=1)  # (B·F, 2·hidden, H, W)
        return x + _gate(self.proj_out(states), ctx)


class HierarchicalTemporalBlock(nn.Module):
    """x + W_o [short; mid; long] (chapter §11.2.4, multi-scale temporal modelling) on x̃ = GN(x):
    short = depthwise temporal conv over adjacent frames (dilation 1), mid = the same at dilation 3 (±3
    frames), long = self-attention over the frames of the spatially pooled features (the whole clip, or
    frames ≤ f when causal), broadcast back over H×W. W_o is a 1×1 conv starting at zero ⇒ identity."""

    def __init__(self, channels: int, heads: int, groups: int = 32, eps: float = 1e-5, causal: bool = False,
                 pos: str = "bias"):
        super().__init__()
        self.norm = group_norm(channels, groups, eps)
        self.short = DepthwiseTemporalConv(channels, 3, 1, causal, identity=False)
        self.mid = DepthwiseTemporalConv(channels, 3, 3, causal, identity=False)
        self.long_norm = nn.LayerNorm(channels)
        self.long = TemporalAttention(channels, heads, pos=pos, causal=causal, zero_out=False)
        self.proj_out = _zero_conv1x1(3 * channels, channels)

    def forward(self, x: Tensor, ctx: VideoCtx) -> Tensor:
        h = self.norm(x)  # (B·F, C, H, W)
        inner = VideoCtx(ctx.batch, ctx.frames, None)  # the whole branch is gated below
        pooled = rearrange(h.mean(dim=(2, 3)), "(b f) c -> b f c", b=ctx.batch)  # (B, F, C)
        long = self.long(self.long_norm(pooled))  # (B, F, C)
        long = rearrange(long, "b f c -> (b f) c")[:, :, None, None].expand_as(h)  # (B·F, C, H, W)
        mixed = torch.cat([self.short(h, inner), self.mid(h, inner), long], dim=1)  # (B·F, 3C, H, W)
        return x + _gate(self.proj_out(F.silu(mixed)), ctx)


class MotionDecompositionBlock(nn.Module):
    """x + W_o [content; mix_t(motion)] on x̃ = GN(x) split as x̃ = content + motion (chapter §11.3.2, motion
    decomposition): content is the mean of the clip's frames (a running mean over frames ≤ f when causal),
    shared by every frame; motion = x̃ − content is what changes, mixed over time by a depthwise 3-tap
    temporal conv. W_o is a 1×1 conv starting at zero ⇒ identity."""

    def __init__(self, channels: int, groups: int = 32, eps: float = 1e-5, causal: bool = False):
        super().__init__()
        self.causal = causal
        self.norm = group_norm(channels, groups, eps)
        self.motion_mix = DepthwiseTemporalConv(channels, 3, 1, causal, identity=False)
        self.proj_out = _zero_conv1x1(2 * channels, channels)

    def decompose(self, x: Tensor, ctx: VideoCtx) -> tuple[Tensor, Tensor]:
        """(content, motion) of (B·F, C, H, W) features, each (B·F, C, H, W), with content + motion = x."""
        v = rearrange(x, "(b f) c h w -> b f c h w", b=ctx.batch)
        if self.causal:
            count = torch.arange(1, ctx.frames + 1, device=x.device, dtype=x.dtype)[None, :, None, None, None]
            content = v.cumsum(dim=1) / count  # mean of frames ≤ f
        else:
            content = v.mean(dim=1, keepdim=True).expand_as(v)  # (B, F, C, H, W)
        content = content.flatten(0, 1)
        return content, x - content

    def forward(self, x: Tensor, ctx: VideoCtx) -> Tensor:
        content, motion = self.decompose(self.norm(x), ctx)  # (B·F, C, H, W) each
        inner = VideoCtx(ctx.batch, ctx.frames, None)
        mixed = torch.cat([content, self.motion_mix(motion, inner)], dim=1)  # (B·F, 2C, H, W)
        return x + _gate(self.proj_out(F.silu(mixed)), ctx)


def check_mixer(kind: str, causal: bool) -> None:
    """Refuse a mixer that cannot honour `causal` (a backward pass reads later frames)."""
    if kind == "biconvgru" and causal:
        raise VidiffError("temporal='biconvgru' reads later frames (its backward pass), so it cannot be causal; "
                          "use temporal='convgru' (forward only) or causal=False")


def block_mixer(kind: str, channels: int, heads: int, groups: int, eps: float, causal: bool,
                pos: str = "bias") -> nn.Module | None:
    """The temporal layer a UNet3D block runs after its spatial layers for mixer `kind` (None for the
    mixers that live inside the ResBlock)."""
    check_mixer(kind, causal)
    if kind in ("convgru", "biconvgru"):
        return RecurrentTemporalBlock(channels, groups, eps, bidirectional=kind == "biconvgru")
    if kind == "hierarchical":
        return HierarchicalTemporalBlock(channels, heads, groups, eps, causal, pos)
    if kind == "motion":
        return MotionDecompositionBlock(channels, groups, eps, causal)
    return None


__all__ = ["MIXERS", "RESBLOCK_MIXERS", "ConvGRU", "DepthwiseTemporalConv", "HierarchicalTemporalBlock",
           "MotionDecompositionBlock", "RecurrentTemporalBlock", "block_mixer", "check_mixer"]
