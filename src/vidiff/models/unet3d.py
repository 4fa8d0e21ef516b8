"""Factorized space-time U-Net (VDM, Ho et al. 2022) with pseudo-3D (Make-A-Video) and full-3D variants.

Each resolution level stacks blocks of: ResBlock (2D convs applied per frame, i.e. 1×3×3) →
spatial self-attention (only at `attention_levels`; per frame, or over the whole clip with
`spatial_attention="joint"`) → text cross-attention (same levels, if
`text_dim`) → temporal mixing (`temporal`):

  "attention"  temporal self-attention at every pixel with relative position bias / RoPE (VDM)
  "conv"       a 1D temporal conv after each 2D conv, initialised to identity (Make-A-Video)
  "full3d"     the ResBlock convs are k×k×k
  "videoldm"   the layers of "none", each ResBlock followed by a temporal 3D-conv block and each block's
               spatial part by temporal attention, each merged with its input by a learned α (Video LDM
               eq. 2); identity at initialisation, so an image model can be frozen under it (temporal.py)
  "none"       an image model applied frame by frame
  "convgru", "biconvgru", "hierarchical", "dwconv", "motion"
               the textbook chapter's mixers (recurrent, bidirectional, multi-scale, lightweight (2+1)D,
               content/motion split), identity at initialisation (temporal_mixers.py)

`temporal_down_levels` also halves the frame count when leaving those levels (Lumiere STUNet).
The block layout follows diffusers' `UNet2DModel` so a 2D U-Net can be inflated (see inflate.py).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..conditioning.cond import Cond
from ..utils import VidiffError
from .backbone import Backbone
from .layers import (
    AlphaBlend,
    CrossAttentionBlock,
    SpatialAttentionBlock,
    TemporalAttentionBlock,
    TemporalConv,
    TemporalResBlock,
    VideoConv3d,
    VideoCtx,
    group_norm,
    maybe_checkpoint,
)
from .temporal_mixers import MIXERS, RESBLOCK_MIXERS, DepthwiseTemporalConv, block_mixer

TEMPORAL = ("attention", "conv", "full3d", "videoldm", "none", *MIXERS)
# Module names that hold temporal layers (every parameter below one of them mixes frames).
TEMPORAL_MODULES = frozenset({"temporal", "temporal_conv", "tconv", "tconv1", "tconv2"})


def is_temporal_key(key: str) -> bool:
    """True for a UNet3D parameter/state-dict key that belongs to a temporal layer."""
    return any(part in TEMPORAL_MODULES for part in key.split(".")[:-1])


@dataclass(frozen=True)
class UNet3DConfig:
    """Hyper-parameters of `UNet3D`. Level i works at resolution H/2^i; level 0 is full resolution."""

    arch: Literal["unet3d"] = "unet3d"
    in_channels: int = 3
    out_channels: int = 3
    cond_channels: int = 0  # extra input channels taken from Cond.concat (zeros when absent)
    micro_conds: int = 0  # K micro-conditions, Cond.micro (B, K), added to the time embedding (SVD)
    self_cond: bool = False  # in_channels more inputs: the previous x̂₀ estimate, Cond.self_cond (Chen et al. 2022)
    patch_size: int = 1  # space-to-depth stem: the U-Net runs at (H/p, W/p) on p²·C channels (Simple Diffusion)
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 1  # per down level; up levels use num_res_blocks + 1 (as in DDPM/diffusers)
    attention_levels: tuple[int, ...] = (2,)  # levels with spatial (and text cross-) attention
    mid_attention: bool = True
    # "frame": that attention sees the H·W positions of one frame (VDM); "joint": all F·H·W positions of
    # the clip, so an object meets itself in every frame in one hop (the temporal attention stays).
    spatial_attention: Literal["frame", "joint"] = "frame"
    # "rope": axial rotary positions in that attention (over F, H, W when joint); "none": no encoding.
    spatial_pos: Literal["none", "rope"] = "none"
    head_dim: int = 32  # heads = channels // head_dim (at least 1)
    temporal: Literal["attention", "conv", "full3d", "videoldm", "none",
                      "convgru", "biconvgru", "hierarchical", "dwconv", "motion"] = "attention"
    temporal_pos: Literal["bias", "rope"] = "bias"
    temporal_down_levels: tuple[int, ...] = ()  # Lumiere: levels whose downsampling also halves F
    causal: bool = False  # frame t only sees frames <= t
    num_classes: int = 0  # 0 = unconditional; class id `num_classes` is the null class (CFG)
    text_dim: int = 0  # 0 = no text; else width of Cond.text tokens / Cond.pooled
    content_channels: int = 0  # 0 = none; else channels of an image embedded as text tokens (Cond.content: Gen-1, i2v)
    norm_groups: int = 32  # GroupNorm groups (capped so each group has >= min_group_channels channels)
    min_group_channels: int = 1
    # AdaGN (Dhariwal & Nichol 2021 §3): the embedding scales and shifts the normalised features,
    # h = GN(h)·(1 + s) + b, instead of being added before the norm, where a group of one channel
    # would normalise it away.
    scale_shift_norm: bool = False
    norm_eps: float = 1e-5
    dropout: float = 0.0
    gradient_checkpointing: bool = False

    def groups(self, channels: int) -> int:
        """GroupNorm group count for `channels`: at most norm_groups, at least min_group_channels per group."""
        return max(1, min(self.norm_groups, channels // max(1, self.min_group_channels)))


class ResBlock(nn.Module):
    """Residual block with timestep embedding (DDPM, Ho et al. 2020 App. B) on `(B·F, C, H, W)` features."""

    def __init__(self, cin: int, cout: int, temb: int, cfg: UNet3DConfig):
        super().__init__()
        self.norm1 = group_norm(cin, cfg.groups(cin), cfg.norm_eps)
        self.scale_shift = cfg.scale_shift_norm
        self.time_proj = nn.Linear(temb, 2 * cout if self.scale_shift else cout)
        self.norm2 = group_norm(cout, cfg.groups(cout), cfg.norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)
        if cfg.temporal == "full3d":
            self.conv1, self.conv2 = VideoConv3d(cin, cout, 3, cfg.causal), VideoConv3d(cout, cout, 3, cfg.causal)
        else:
            self.conv1, self.conv2 = nn.Conv2d(cin, cout, 3, padding=1), nn.Conv2d(cout, cout, 3, padding=1)
        if cfg.temporal == "conv":
            self.tconv1, self.tconv2 = TemporalConv(cout, 3, cfg.causal), TemporalConv(cout, 3, cfg.causal)
        elif cfg.temporal in RESBLOCK_MIXERS:  # lightweight (2+1)D: depthwise taps over frames
            self.tconv1 = DepthwiseTemporalConv(cout, 3, causal=cfg.causal)
            self.tconv2 = DepthwiseTemporalConv(cout, 3, causal=cfg.causal)
        else:
            self.tconv1 = self.tconv2 = None
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def _conv(self, conv: nn.Module, tconv: nn.Module | None, h: Tensor, ctx: VideoCtx) -> Tensor:
        h = conv(h, ctx) if isinstance(conv, VideoConv3d) else conv(h)
        return tconv(h, ctx) if tconv is not None else h

    def forward(self, x: Tensor, ctx: VideoCtx) -> Tensor:
        h = self._conv(self.conv1, self.tconv1, F.silu(self.norm1(x)), ctx)  # (B·F, Cout, H, W)
        e = self.time_proj(F.silu(ctx.emb)).repeat_interleave(ctx.frames, 0)[:, :, None, None]  # (B·F, ·, 1, 1)
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift  # AdaGN
        else:
            h = self.norm2(h + e)
        h = self._conv(self.conv2, self.tconv2, self.dropout(F.silu(h)), ctx)
        return self.skip(x) + h


class SpaceTimeBlock(nn.Module):
    """ResBlock → [temporal conv block] → [spatial attention] → [text cross-attention] → [temporal attn]."""

    def __init__(self, cin: int, cout: int, temb: int, cfg: UNet3DConfig, spatial_attention: bool):
        super().__init__()
        heads = max(1, cout // cfg.head_dim)
        self.res = ResBlock(cin, cout, temb, cfg)
        self.attn = (SpatialAttentionBlock(cout, heads, cfg.groups(cout), cfg.norm_eps,
                                           joint=cfg.spatial_attention == "joint", causal=cfg.causal,
                                           pos=cfg.spatial_pos)
                     if spatial_attention else None)
        self.cross = (CrossAttentionBlock(cout, cfg.text_dim, heads, cfg.groups(cout), cfg.norm_eps)
                      if spatial_attention and cfg.text_dim else None)
        self.temporal_conv = None  # Video LDM: a temporal 3D-conv block after the ResBlock
        self.temporal = None
        if cfg.temporal in ("attention", "videoldm"):
            self.temporal = TemporalAttentionBlock(cout, heads, cfg.temporal_pos, cfg.causal)
        if cfg.temporal == "videoldm":
            self.temporal = AlphaBlend(self.temporal)
            self.temporal_conv = AlphaBlend(TemporalResBlock(cout, cfg.groups(cout), cfg.norm_eps, causal=cfg.causal))
        if cfg.temporal in MIXERS:
            self.temporal = block_mixer(cfg.temporal, cout, heads, cfg.groups(cout), cfg.norm_eps, cfg.causal,
                                        cfg.temporal_pos)

    def forward(self, x: Tensor, ctx: VideoCtx) -> Tensor:
        h = self.res(x, ctx)  # (B·F, Cout, H, W)
        if self.temporal_conv is not None:
            h = self.temporal_conv(h, ctx)
        for layer in (self.attn, self.cross, self.temporal):
            if layer is not None:
                h = layer(h, ctx)
        return h


class Downsample(nn.Module):
    """Stride-2 3×3 conv per frame; with `temporal`, frames are also halved by a stride-2 temporal conv (Lumiere)."""

    def __init__(self, channels: int, temporal: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.tconv = nn.Conv1d(channels, channels, 3, stride=2, padding=1) if temporal else None
        if self.tconv is not None:  # start as the average of frame pairs (2t, 2t+1)
            with torch.no_grad():
                self.tconv.weight.zero_()
                self.tconv.bias.zero_()
                eye = torch.eye(channels)
                self.tconv.weight[:, :, 1] = 0.5 * eye
                self.tconv.weight[:, :, 2] = 0.5 * eye

    def forward(self, x: Tensor, ctx: VideoCtx) -> Tensor:
        h = self.conv(x)  # (B·F, C, H/2, W/2)
        if self.tconv is None:
            return h
        hh, ww = h.shape[-2:]
        t = self.tconv(rearrange(h, "(b f) c h w -> (b h w) c f", b=ctx.batch))  # (B·h·w, C, F/2)
        return rearrange(t, "(b h w) c f -> (b f) c h w", b=ctx.batch, h=hh, w=ww)


class Upsample(nn.Module):
    """Nearest ×2 upsampling (also of frames when `temporal`) followed by a 3×3 conv per frame."""

    def __init__(self, channels: int, temporal: bool):
        super().__init__()
        self.temporal = temporal
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor, ctx: VideoCtx) -> Tensor:
        if self.temporal:  # ctx.frames is the (coarser) input frame count
            x = rearrange(x, "(b f) c h w -> b f c h w", b=ctx.batch).repeat_interleave(2, 1).flatten(0, 1)
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet3D(Backbone):
    """VDM-style space-time U-Net: `forward(x, t, cond) -> Tensor`, x (B, C, F, H, W), t (B,) in [0, 1]."""

    def __init__(self, config: UNet3DConfig):
        super().__init__()
        cfg = self.config = config
        levels = len(cfg.channel_mults)
        if cfg.temporal not in TEMPORAL:
            raise VidiffError(f"temporal must be one of {list(TEMPORAL)}, got {cfg.temporal!r}")
        if not levels:
            raise VidiffError("channel_mults must list at least one level, e.g. [1, 2, 4]")
        bad = [i for i in (*cfg.attention_levels, *cfg.temporal_down_levels) if not 0 <= i < levels]
        if bad:
            raise VidiffError(f"attention_levels/temporal_down_levels {bad} out of range: levels are 0..{levels - 1}")
        if cfg.spatial_attention not in ("frame", "joint"):
            raise VidiffError(f"spatial_attention must be 'frame' or 'joint', got {cfg.spatial_attention!r}")
        if cfg.spatial_pos not in ("none", "rope"):
            raise VidiffError(f"spatial_pos must be 'none' or 'rope', got {cfg.spatial_pos!r}")
        if cfg.causal and cfg.temporal_down_levels:
            raise VidiffError("causal=True is not supported with temporal_down_levels (frame pooling mixes "
                              "frames 2t and 2t+1); drop one of them")
        if levels - 1 in cfg.temporal_down_levels:
            raise VidiffError(f"temporal_down_levels cannot include the last level {levels - 1} "
                              "(it has no downsampling)")
        self.gradient_checkpointing = cfg.gradient_checkpointing
        ch = [cfg.base_channels * m for m in cfg.channel_mults]
        c0, temb = ch[0], 4 * ch[0]
        self.init_conditioning(c0, temb)
        if cfg.patch_size < 1:
            raise VidiffError(f"patch_size must be >= 1, got {cfg.patch_size}")
        p2 = cfg.patch_size ** 2
        self.conv_in = nn.Conv2d(self.input_channels * p2, c0, 3, padding=1)  # x_t [, x̂₀ previous] [, concat]

        self.down = nn.ModuleList()
        cin = c0
        for i, cout in enumerate(ch):
            level = nn.Module()
            level.blocks = nn.ModuleList(
                SpaceTimeBlock(cin if j == 0 else cout, cout, temb, cfg, i in cfg.attention_levels)
                for j in range(cfg.num_res_blocks)
            )
            level.downsample = Downsample(cout, i in cfg.temporal_down_levels) if i < levels - 1 else None
            self.down.append(level)
            cin = cout
        self.mid = nn.ModuleList([SpaceTimeBlock(ch[-1], ch[-1], temb, cfg, cfg.mid_attention),
                                  SpaceTimeBlock(ch[-1], ch[-1], temb, cfg, False)])
        self.up = nn.ModuleList()
        rch = ch[::-1]
        cout = rch[0]
        for j in range(levels):  # up level j works at level i = levels-1-j
            i = levels - 1 - j
            prev, cout, skip_in = cout, rch[j], rch[min(j + 1, levels - 1)]
            level = nn.Module()
            level.blocks = nn.ModuleList(
                SpaceTimeBlock((prev if k == 0 else cout) + (skip_in if k == cfg.num_res_blocks else cout),
                               cout, temb, cfg, i in cfg.attention_levels)
                for k in range(cfg.num_res_blocks + 1)
            )
            level.upsample = Upsample(cout, (i - 1) in cfg.temporal_down_levels) if i > 0 else None
            self.up.append(level)
        self.norm_out = group_norm(c0, cfg.groups(c0), cfg.norm_eps)
        self.conv_out = nn.Conv2d(c0, cfg.out_channels * p2, 3, padding=1)

    # ------------------------------------------------------------------ public helpers
    def check_size(self, frames: int, height: int, width: int) -> None:
        """Raise VidiffError unless (F, H, W) can pass through the down/up path unchanged."""
        m = self.config.patch_size * 2 ** (len(self.config.channel_mults) - 1)
        mt = 2 ** len(self.config.temporal_down_levels)
        if height % m or width % m or height < 1 or width < 1:
            raise VidiffError(f"H and W must be positive multiples of {m} for this UNet3D (patch_size "
                              f"{self.config.patch_size}, {len(self.config.channel_mults)} levels); "
                              f"got {height}x{width}")
        if frames < 1 or frames % mt:
            raise VidiffError(f"the frame count must be a positive multiple of {mt} for this UNet3D "
                              f"(temporal_down_levels={list(self.config.temporal_down_levels)}); got {frames}")

    def temporal_parameter_names(self) -> list[str]:
        """Names of the parameters of the temporal layers (those that mix frames); the rest is the image model."""
        if self.config.temporal == "full3d":
            raise VidiffError("temporal='full3d' mixes space and time in the same k×k×k kernels, so its temporal "
                              "parameters cannot be trained alone; use temporal='videoldm', 'attention' or 'conv'")
        return [name for name, _ in self.named_parameters() if is_temporal_key(name)]

    def image_keep(self, is_image: Tensor, dtype) -> Tensor | None:
        if self.config.temporal_down_levels:
            raise VidiffError("cond.is_image (joint image-video) is not supported with temporal_down_levels")
        return super().image_keep(is_image, dtype)

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor, t: Tensor, cond: Cond | None = None) -> Tensor:
        cfg = self.config
        x, cond, emb, keep = self.prologue(x, t, cond)  # x (B, C_in, F, H, W), emb (B, 4·C0), keep (B,) | None
        b, _, frames = x.shape[:3]
        ctx = VideoCtx(b, frames, emb, cond.text, cond.text_mask, keep)

        ck = self.gradient_checkpointing
        p = cfg.patch_size
        h = rearrange(x, "b c f h w -> (b f) c h w")
        h = F.pixel_unshuffle(h, p) if p > 1 else h  # (B·F, p²·C, H/p, W/p)
        # channels-last makes oneDNN convolutions ~1.5-2.5x faster on CPU
        hs = [self.conv_in(h.contiguous(memory_format=torch.channels_last))]  # (B·F, C0, H/p, W/p)
        ctxs = []
        for i, level in enumerate(self.down):
            for block in level.blocks:
                hs.append(maybe_checkpoint(block, hs[-1], ctx, enabled=ck))
            if level.downsample is not None:
                ctxs.append(ctx)
                hs.append(level.downsample(hs[-1], ctx))  # (B·F', C, H/2, W/2)
                if i in cfg.temporal_down_levels:
                    ctx = dataclasses.replace(ctx, frames=ctx.frames // 2)
        h = hs[-1]
        for block in self.mid:
            h = maybe_checkpoint(block, h, ctx, enabled=ck)
        for level in self.up:
            for block in level.blocks:
                h = maybe_checkpoint(block, torch.cat([h, hs.pop()], dim=1), ctx, enabled=ck)
            if level.upsample is not None:
                h = level.upsample(h, ctx)
                ctx = ctxs.pop()
        h = self.conv_out(F.silu(self.norm_out(h)))  # (B·F, p²·C_out, H/p, W/p)
        h = F.pixel_shuffle(h, p) if p > 1 else h  # (B·F, C_out, H, W)
        return rearrange(h, "(b f) c h w -> b c f h w", b=b)  # (B, C_out, F, H, W)
