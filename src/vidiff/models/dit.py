"""Video DiT on spacetime patches (Peebles & Xie 2023; Latte, Ma et al. 2024; Sora-style patches).

x (B, C, F, H, W) is cut into p_t×p×p patches → tokens (B, T, S, D) with T = F/p_t, S = (H/p)(W/p),
plus a 3D sin-cos position embedding computed for the actual grid (so any frame count or
resolution works). Blocks are conditioned by adaLN-Zero on c = emb(t) + emb(class) + proj(pooled)
and cross-attend to text tokens. `space_time` picks the attention pattern:

  "factorized"  spatial attention per frame, then temporal attention per patch (Latte variant 2)
  "joint"       full attention over all T·S tokens
  "window"      3D windowed attention, shifted in every other block (Video Swin)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..conditioning.cond import Cond
from ..utils import VidiffError
from .backbone import Backbone
from .layers import (
    Attention,
    CrossAttention,
    FeedForward,
    TemporalAttention,
    WindowAttention3D,
    frame_mask,
    maybe_checkpoint,
    modulate,
    sincos_3d,
)


@dataclass(frozen=True)
class DiTConfig:
    """Hyper-parameters of `DiT`."""

    arch: Literal["dit"] = "dit"
    in_channels: int = 3
    out_channels: int = 3
    cond_channels: int = 0  # extra input channels from Cond.concat (zeros when absent)
    micro_conds: int = 0  # K micro-conditions, Cond.micro (B, K), added to the time embedding (SVD)
    self_cond: bool = False  # in_channels more inputs: the previous x̂₀ estimate, Cond.self_cond (Chen et al. 2022)
    hidden_size: int = 96
    depth: int = 4
    heads: int = 3
    mlp_ratio: float = 4.0
    patch_size: int = 2
    patch_t: int = 1
    space_time: Literal["factorized", "joint", "window"] = "factorized"
    window: tuple[int, int, int] = (4, 4, 4)  # (frames, h, w) in tokens, for space_time="window"
    temporal: Literal["attention", "none"] = "attention"  # "none": frames never interact (image model)
    temporal_pos: Literal["bias", "rope"] = "rope"  # extra relative encoding in temporal attention
    causal: bool = False
    num_classes: int = 0
    text_dim: int = 0
    content_channels: int = 0  # 0 = none; else channels of an image embedded as text tokens (Cond.content: Gen-1, i2v)
    qk_norm: bool = True
    gradient_checkpointing: bool = False


class DiTBlock(nn.Module):
    """Transformer block with adaLN-Zero modulation (DiT §3.2) and the chosen space-time attention."""

    def __init__(self, cfg: DiTConfig, index: int):
        super().__init__()
        d = cfg.hidden_size
        self.kind = cfg.space_time if cfg.temporal == "attention" else "spatial"
        self.causal = cfg.causal
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        if self.kind == "window":
            self.attn = WindowAttention3D(d, cfg.heads, cfg.window, shift=index % 2 == 1)
        else:
            self.attn = Attention(d, cfg.heads, qk_norm=cfg.qk_norm,
                                  role="joint" if self.kind == "joint" else "spatial")
        self.tattn = None
        if self.kind == "factorized":
            self.norm_t = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
            self.tattn = TemporalAttention(d, cfg.heads, pos=cfg.temporal_pos, causal=cfg.causal, zero_out=False)
        self.cross = None
        if cfg.text_dim:
            self.norm_c = nn.LayerNorm(d, eps=1e-6)
            self.cross = CrossAttention(d, cfg.text_dim, cfg.heads)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.mlp = FeedForward(d, cfg.mlp_ratio)
        # adaLN chunks: shift/scale/gate of the attention (msa) and the MLP, then of the temporal attention
        self.n_mod = 9 if self.tattn is not None else 6
        self.modulation = nn.Linear(d, self.n_mod * d)
        nn.init.zeros_(self.modulation.weight)  # adaLN-Zero: every residual branch starts at 0
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: Tensor, c: Tensor, text: Tensor | None, text_mask: Tensor | None,
                keep: Tensor | None, hw: tuple[int, int]) -> Tensor:
        b, t, s, d = x.shape  # (B, T, S, D); S = h·w patches per frame
        mods = self.modulation(F.silu(c)).chunk(self.n_mod, dim=-1)  # each (B, D)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods[:6]
        h = modulate(self.norm1(x), shift_msa, scale_msa)  # (B, T, S, D)
        if self.kind in ("spatial", "factorized"):
            a = self.attn(rearrange(h, "b t s d -> (b t) s d"), frames=t)  # (B·T, S, D)
            a = rearrange(a, "(b t) s d -> b t s d", b=b)
        elif self.kind == "joint":
            mask = frame_mask(t, s, self.causal, keep, device=x.device)
            a = self.attn(rearrange(h, "b t s d -> b (t s) d"), mask=mask)
            a = rearrange(a, "b (t s) d -> b t s d", t=t)
        else:  # window
            a = self.attn(rearrange(h, "b t (h w) d -> b t h w d", h=hw[0]), causal=self.causal, keep=keep)
            a = rearrange(a, "b t h w d -> b t (h w) d")
        x = x + gate_msa[:, None, None] * a
        if self.tattn is not None:
            shift_tmsa, scale_tmsa, gate_tmsa = mods[6:]
            h = modulate(self.norm_t(x), shift_tmsa, scale_tmsa)
            a = rearrange(self.tattn(rearrange(h, "b t s d -> (b s) t d")), "(b s) t d -> b t s d", b=b)
            if keep is not None:
                a = a * keep[:, None, None, None]
            x = x + gate_tmsa[:, None, None] * a
        if self.cross is not None and text is not None:
            q = rearrange(self.norm_c(x), "b t s d -> b (t s) d")
            x = x + rearrange(self.cross(q, text.to(x.dtype), text_mask), "b (t s) d -> b t s d", t=t)
        h = modulate(self.norm2(x), shift_mlp, scale_mlp)
        return x + gate_mlp[:, None, None] * self.mlp(h)  # (B, T, S, D)


class DiT(Backbone):
    """Video Diffusion Transformer: `forward(x, t, cond) -> Tensor`, x (B, C, F, H, W), t (B,) in [0, 1]."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        cfg = self.config = config
        d = cfg.hidden_size
        if d % cfg.heads or (d // cfg.heads) % 2:
            raise VidiffError(f"hidden_size {d} must be divisible by heads {cfg.heads} into an even head width")
        if cfg.temporal == "none" and cfg.patch_t != 1:
            raise VidiffError("temporal='none' keeps frames independent, so it needs patch_t=1")
        if cfg.patch_size < 1 or cfg.patch_t < 1:
            raise VidiffError("patch_size and patch_t must be >= 1")
        self.gradient_checkpointing = cfg.gradient_checkpointing
        p, pt = cfg.patch_size, cfg.patch_t
        self.patch_embed = nn.Conv3d(self.input_channels, d, (pt, p, p), stride=(pt, p, p))
        self.init_conditioning(256, d)
        self.blocks = nn.ModuleList(DiTBlock(cfg, i) for i in range(cfg.depth))
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.mod_out = nn.Linear(d, 2 * d)
        self.proj_out = nn.Linear(d, pt * p * p * cfg.out_channels)
        for layer in (self.mod_out, self.proj_out):  # adaLN-Zero: the model starts by predicting 0
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def check_size(self, frames: int, height: int, width: int) -> None:
        """Raise VidiffError unless (F, H, W) divide into whole patches."""
        p, pt = self.config.patch_size, self.config.patch_t
        if height < 1 or width < 1 or height % p or width % p:
            raise VidiffError(f"H and W must be positive multiples of the patch size {p} for this DiT; "
                              f"got {height}x{width}")
        if frames < 1 or frames % pt:
            raise VidiffError(f"the frame count must be a positive multiple of patch_t={pt} for this DiT; got {frames}")

    def image_keep(self, is_image: Tensor, dtype) -> Tensor | None:
        if self.config.temporal == "none":
            return None  # frames never interact
        if self.config.patch_t != 1:
            raise VidiffError("cond.is_image (joint image-video) needs patch_t=1: larger temporal patches mix frames")
        return super().image_keep(is_image, dtype)

    def forward(self, x: Tensor, t: Tensor, cond: Cond | None = None) -> Tensor:
        cfg = self.config
        x, cond, c, keep = self.prologue(x, t, cond)  # x (B, C_in, F, H, W), c (B, D), keep (B,) | None
        b, _, frames, h, w = x.shape

        p, pt = cfg.patch_size, cfg.patch_t
        tt, hh, ww = frames // pt, h // p, w // p
        tokens = rearrange(self.patch_embed(x), "b d t h w -> b t (h w) d")  # (B, T, S, D)
        tokens = tokens + sincos_3d(tt, hh, ww, cfg.hidden_size, device=x.device).to(tokens.dtype)
        for block in self.blocks:
            tokens = maybe_checkpoint(block, tokens, c, cond.text, cond.text_mask, keep, (hh, ww),
                                      enabled=self.gradient_checkpointing)
        shift, scale = self.mod_out(F.silu(c)).chunk(2, dim=-1)
        out = self.proj_out(modulate(self.norm_out(tokens), shift, scale))  # (B, T, S, pt·p·p·C_out)
        return rearrange(out, "b t (h w) (pt p1 p2 c) -> b c (t pt) (h p1) (w p2)",
                         h=hh, pt=pt, p1=p, p2=p)  # (B, C_out, F, H, W)
