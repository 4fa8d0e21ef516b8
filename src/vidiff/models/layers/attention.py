"""Attention: SDPA multi-head attention with swappable processors, and the spatial / temporal / joint /
windowed / cross attention layers built on it.

An `Attention` computes q, k, v (with optional QK-norm and RoPE) and hands them to its `processor`, a
callable `(q, k, v, mask, frames) -> o` on (N, heads, L, d) tensors. The default `AttnProcessor` is
plain softmax attention; `CrossFrameAttnProcessor` (Text2Video-Zero) and `SparseCausalAttnProcessor`
(Tune-A-Video) make per-frame spatial attention read the keys/values of other frames. Every
`Attention` has a `role` ("spatial" per frame, "joint" over the clip, "temporal", "window"), so
`set_attn_processor(model, processor, role=...)` swaps the processor of one kind of layer only.
Processors hold no parameters: swapping them never changes a state dict.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ...utils import VidiffError
from .primitives import (RelativePositionBias, RMSNorm, VideoCtx, apply_rope, causal_bias, frame_keep, group_norm,
                         rope_angles, rope_angles_grid)

ROLES = ("spatial", "joint", "temporal", "window")

# ----------------------------------------------------------------------------- processors


class AttnProcessor:
    """softmax(q·kᵀ/√d + mask)·v (Vaswani et al. 2017 eq. 1) with torch's scaled_dot_product_attention."""

    def __call__(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None,
                 frames: int | None = None) -> Tensor:
        """q, k, v (N, heads, L, d); `frames`: F when N = B·F holds one frame per row, else None."""
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (N, heads, L, d)


def _by_frame(z: Tensor, frames: int | None, what: str) -> Tensor:
    """(B·F, heads, L, d) → (B, F, heads, L, d); a clear error where the layer does not attend per frame."""
    if frames is None:
        raise VidiffError(f"{what} needs per-frame spatial attention ((B·F, L, D) tokens); set it on "
                          "role='spatial' layers of a model with spatial_attention='frame'")
    return rearrange(z, "(b f) h l d -> b f h l d", f=frames)


class CrossFrameAttnProcessor(AttnProcessor):
    """Every frame attends to the keys/values of the first frame (Text2Video-Zero, Khachatryan et al.
    2023, §3.3): Attn(Qᵏ, K¹, V¹) instead of Attn(Qᵏ, Kᵏ, Vᵏ), which carries frame 0's appearance."""

    def __call__(self, q, k, v, mask=None, frames=None):
        k, v = (_by_frame(z, frames, "cross-frame attention")[:, :1].expand(-1, frames, -1, -1, -1).flatten(0, 1)
                for z in (k, v))  # (B·F, heads, L, d): frame 0's keys/values for every frame
        return super().__call__(q, k, v, mask, frames)


class SparseCausalAttnProcessor(AttnProcessor):
    """Frame i attends to the keys/values of frames 0 and i − 1 (frame 0: itself twice) (Tune-A-Video,
    Wu et al. 2023, §4.1 sparse-causal attention)."""

    def __call__(self, q, k, v, mask=None, frames=None):
        def first_and_previous(z: Tensor) -> Tensor:
            z = _by_frame(z, frames, "sparse-causal attention")  # (B, F, heads, L, d)
            previous = torch.cat([z[:, :1], z[:, :-1]], dim=1)
            first = z[:, :1].expand_as(z)
            return torch.cat([first, previous], dim=3).flatten(0, 1)  # (B·F, heads, 2L, d)

        if mask is not None:
            mask = torch.cat([mask, mask], dim=-1)  # the same mask over both key frames
        return super().__call__(q, first_and_previous(k), first_and_previous(v), mask, frames)


def set_attn_processor(model: nn.Module, processor: AttnProcessor | None, role: str = "spatial") -> int:
    """Give every `Attention` of `role` in `model` the processor (None: the default); returns how many."""
    if role not in ROLES:
        raise VidiffError(f"unknown attention role {role!r}; choose one of {list(ROLES)}")
    layers = [m for m in model.modules() if isinstance(m, Attention) and m.role == role]
    if not layers:
        raise VidiffError(f"{type(model).__name__} has no {role!r} attention layers to set a processor on")
    for layer in layers:
        layer.processor = processor if processor is not None else AttnProcessor()
    return len(layers)


# ----------------------------------------------------------------------------- attention on tokens


class Attention(nn.Module):
    """Multi-head self-attention on (N, L, D) tokens; the softmax step is the swappable `processor`."""

    def __init__(self, dim: int, heads: int, qk_norm: bool = False, zero_out: bool = False, role: str = "spatial"):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        if role not in ROLES:
            raise ValueError(f"attention role must be one of {ROLES}, got {role!r}")
        self.heads, self.head_dim, self.role = heads, dim // heads, role
        self.processor: AttnProcessor = AttnProcessor()
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.to_out = nn.Linear(dim, dim)
        self.q_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        if zero_out:
            nn.init.zeros_(self.to_out.weight)
            nn.init.zeros_(self.to_out.bias)

    def forward(self, x: Tensor, mask: Tensor | None = None, rope: tuple[Tensor, Tensor] | None = None,
                frames: int | None = None) -> Tensor:
        """`mask`: bool (keep) or additive float, broadcastable to (N, heads, L, L); `frames`: F when the
        rows of x are the frames of B clips, '(b f) l d' (per-frame spatial attention), else None."""
        q, k, v = rearrange(self.to_qkv(x), "n l (three h d) -> three n h l d", three=3, h=self.heads)
        q, k = self.q_norm(q), self.k_norm(k)  # (N, heads, L, d)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        o = self.processor(q, k, v, mask=mask, frames=frames)  # (N, heads, L, d)
        return self.to_out(rearrange(o, "n h l d -> n l (h d)"))  # (N, L, D)


class CrossAttention(nn.Module):
    """Attention from (N, L, D) queries to (N, M, D_ctx) text tokens, with a key padding mask (Imagen / LDM)."""

    def __init__(self, dim: int, context_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(context_dim, 2 * dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, context: Tensor, context_mask: Tensor | None = None) -> Tensor:
        q = rearrange(self.to_q(x), "n l (h d) -> n h l d", h=self.heads)
        k, v = rearrange(self.to_kv(context), "n m (two h d) -> two n h m d", two=2, h=self.heads)
        mask = None
        if context_mask is not None:
            mask = context_mask.bool()[:, None, None, :]  # (N, 1, 1, M)
            mask = mask | ~mask.any(-1, keepdim=True)  # all-padding rows attend to everything (no NaN)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (N, heads, L, d)
        return self.to_out(rearrange(o, "n h l d -> n l (h d)"))


class TemporalAttention(nn.Module):
    """Self-attention over the frame axis of (N, F, D) sequences with relative bias or RoPE, optionally causal."""

    def __init__(self, dim: int, heads: int, pos: str = "bias", causal: bool = False, zero_out: bool = True):
        super().__init__()
        if pos not in ("bias", "rope"):
            raise ValueError(f"temporal position encoding must be 'bias' or 'rope', got {pos!r}")
        self.pos, self.causal = pos, causal
        self.attn = Attention(dim, heads, zero_out=zero_out, role="temporal")
        self.rel_bias = RelativePositionBias(heads) if pos == "bias" else None

    def forward(self, x: Tensor) -> Tensor:
        n, frames, _ = x.shape
        mask = self.rel_bias(frames)[None] if self.rel_bias is not None else None  # (1, heads, F, F)
        if self.causal:
            cb = causal_bias(frames, x.device, x.dtype)
            mask = cb if mask is None else mask + cb
        rope = None
        if self.pos == "rope":
            rope = rope_angles(torch.arange(frames, device=x.device), self.attn.head_dim)
        return self.attn(x, mask=None if mask is None else mask.to(x.dtype), rope=rope)  # (N, F, D)


def frame_mask(frames: int, tokens_per_frame: int, causal: bool, keep: Tensor | None, device=None) -> Tensor | None:
    """Bool keep-mask (B|1, 1, L, L) for joint space-time attention over L = F·S tokens.

    Causal: a token of frame i sees frames ≤ i. Image samples (keep = 0): only their own frame.
    """
    if not causal and keep is None:
        return None
    f = torch.arange(frames, device=device).repeat_interleave(tokens_per_frame)  # (L,)
    same = f[:, None] == f[None, :]
    allowed = (f[None, :] <= f[:, None]) if causal else torch.ones_like(same)
    if keep is None:
        return allowed[None, None]
    video = keep.bool()[:, None, None, None]
    return torch.where(video, allowed[None, None], (allowed & same)[None, None])  # (B, 1, L, L)


class WindowAttention3D(nn.Module):
    """Self-attention inside non-overlapping 3D windows of a (B, T, H, W, D) token grid (Video Swin, Liu 2022).

    With `shift`, windows move by half a window (cyclic roll); tokens only attend to tokens that were
    within one window of them before the roll, which is the Swin shifted-window mask. Grids that are
    not a multiple of the window are padded and the padding is masked out.
    """

    def __init__(self, dim: int, heads: int, window: tuple[int, int, int], shift: bool = False):
        super().__init__()
        self.window, self.shift = tuple(window), shift
        self.attn = Attention(dim, heads, role="window")

    def forward(self, x: Tensor, causal: bool = False, keep: Tensor | None = None) -> Tensor:
        b, t, h, w, d = x.shape
        win = tuple(min(s, n) for s, n in zip(self.window, (t, h, w)))
        pads = [(-n) % s for n, s in zip((t, h, w), win)]
        x = F.pad(x, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))  # (B, T', H', W', D)
        sizes = x.shape[1:4]
        # original coordinates of each grid cell (padding gets a 'valid' flag of 0)
        grids = torch.meshgrid(*[torch.arange(n, device=x.device) for n in sizes], indexing="ij")
        coords = torch.stack(grids, dim=-1)  # (T', H', W', 3)
        valid = (coords < torch.tensor((t, h, w), device=x.device)).all(-1)  # (T', H', W')
        shifts = tuple(-(s // 2) if self.shift and s < n else 0 for s, n in zip(win, sizes))
        if any(shifts):
            x = torch.roll(x, shifts, dims=(1, 2, 3))
            coords = torch.roll(coords, shifts, dims=(0, 1, 2))
            valid = torch.roll(valid, shifts, dims=(0, 1, 2))

        def windows(z: Tensor, lead: int) -> Tensor:  # '(b nt wt) ... -> (b nt nh nw) (wt wh ww) ...'
            return rearrange(z, "b (nt wt) (nh wh) (nw ww) ... -> (b nt nh nw) (wt wh ww) ...",
                             wt=win[0], wh=win[1], ww=win[2], b=lead)

        tokens = windows(x, b)  # (B·nW, L, D)
        c = windows(coords[None], 1)  # (nW, L, 3)
        v = windows(valid[None], 1)  # (nW, L)
        near = ((c[:, :, None] - c[:, None, :]).abs() < torch.tensor(win, device=x.device)).all(-1)  # (nW, L, L)
        allowed = near & v[:, None, :]
        ft = c[..., 0]
        if causal:
            allowed = allowed & (ft[:, None, :] <= ft[:, :, None])
        eye = torch.eye(allowed.shape[-1], dtype=torch.bool, device=x.device)
        allowed = (allowed | eye)[None]  # (1, nW, L, L)
        if keep is not None:
            same = (ft[:, None, :] == ft[:, :, None])[None]
            allowed = torch.where(keep.bool()[:, None, None, None], allowed, allowed & same | eye)  # (B, nW, L, L)
        mask = allowed.expand(b, -1, -1, -1).reshape(-1, 1, *allowed.shape[-2:])  # (B·nW, 1, L, L)
        out = self.attn(tokens, mask=mask)  # (B·nW, L, D)
        out = rearrange(out, "(b nt nh nw) (wt wh ww) d -> b (nt wt) (nh wh) (nw ww) d", b=b,
                        nt=sizes[0] // win[0], nh=sizes[1] // win[1], wt=win[0], wh=win[1], ww=win[2])
        if any(shifts):
            out = torch.roll(out, tuple(-s for s in shifts), dims=(1, 2, 3))
        return out[:, :t, :h, :w]  # (B, T, H, W, D)


# ----------------------------------------------------------------------------- residual blocks on (B·F, C, H, W)


class TemporalAttentionBlock(nn.Module):
    """Residual temporal attention at every pixel: '(b f) c h w -> (b h w) f c' (VDM §3), zero-init ⇒ identity."""

    def __init__(self, channels: int, heads: int, pos: str = "bias", causal: bool = False):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.attn = TemporalAttention(channels, heads, pos=pos, causal=causal, zero_out=True)

    def forward(self, x: Tensor, ctx: VideoCtx) -> Tensor:
        bf, c, h, w = x.shape
        t = rearrange(x, "(b f) c h w -> (b h w) f c", b=ctx.batch)
        t = self.attn(self.norm(t))  # (B·H·W, F, C)
        t = rearrange(t, "(b h w) f c -> (b f) c h w", b=ctx.batch, h=h, w=w)
        if ctx.keep is not None:
            t = t * frame_keep(ctx.keep, ctx.frames)
        return x + t


class SpatialAttentionBlock(nn.Module):
    """Residual self-attention over the H·W positions of each frame: 'n c h w -> n (h w) c' (VDM §3).

    `joint=True`: over all F·H·W positions of the clip instead ('(b f) c h w -> b (f h w) c', full
    space-time attention as in ViViT model 1 / Latte's joint variant), masked per frame for image
    samples (`ctx.keep`) and to frames <= t when `causal`.
    `pos="rope"`: axial rotary position encoding over (F, H, W) (joint) or (H, W) (per frame), so the
    attention sees how far apart two tokens are in time and space; "none": positions only reach it
    through the convolutions' padding.
    """

    def __init__(self, channels: int, heads: int, groups: int = 32, eps: float = 1e-5, joint: bool = False,
                 causal: bool = False, pos: str = "none"):
        super().__init__()
        if pos not in ("none", "rope"):
            raise ValueError(f"spatial attention position encoding must be 'none' or 'rope', got {pos!r}")
        self.norm = group_norm(channels, groups, eps)
        self.attn = Attention(channels, heads, role="joint" if joint else "spatial")
        self.joint, self.causal, self.pos = joint, causal, pos

    def forward(self, x: Tensor, ctx: VideoCtx | None = None) -> Tensor:
        n, c, h, w = x.shape
        if not self.joint:
            rope = rope_angles_grid((h, w), self.attn.head_dim, device=x.device) if self.pos == "rope" else None
            t = self.attn(rearrange(self.norm(x), "n c h w -> n (h w) c"), rope=rope,
                          frames=None if ctx is None else ctx.frames)  # (N, H·W, C)
            return x + rearrange(t, "n (h w) c -> n c h w", h=h)
        if ctx is None:
            raise ValueError("joint space-time attention needs the VideoCtx (batch and frame counts)")
        mask = frame_mask(ctx.frames, h * w, self.causal, ctx.keep, device=x.device)  # (B|1, 1, L, L) or None
        rope = (rope_angles_grid((ctx.frames, h, w), self.attn.head_dim, device=x.device)
                if self.pos == "rope" else None)  # (F·H·W, d/2) each
        t = rearrange(self.norm(x), "(b f) c h w -> b (f h w) c", b=ctx.batch)  # (B, F·H·W, C)
        t = self.attn(t, mask=mask, rope=rope)
        return x + rearrange(t, "b (f h w) c -> (b f) c h w", f=ctx.frames, h=h)


class CrossAttentionBlock(nn.Module):
    """Residual cross-attention from every pixel of every frame to the text tokens (Imagen Video)."""

    def __init__(self, channels: int, context_dim: int, heads: int, groups: int = 32, eps: float = 1e-5):
        super().__init__()
        self.norm = group_norm(channels, groups, eps)
        self.attn = CrossAttention(channels, context_dim, heads)

    def forward(self, x: Tensor, ctx: VideoCtx) -> Tensor:
        if ctx.text is None:
            return x
        n, c, h, w = x.shape
        text = ctx.text.repeat_interleave(ctx.frames, 0)  # (B·F, M, D_text)
        mask = None if ctx.text_mask is None else ctx.text_mask.repeat_interleave(ctx.frames, 0)
        t = self.attn(rearrange(self.norm(x), "n c h w -> n (h w) c"), text.to(x.dtype), mask)
        return x + rearrange(t, "n (h w) c -> n c h w", h=h)
