"""Shared building blocks of the video backbones: norms, embeddings, attention, temporal mixing.

Layout conventions. Video tensors enter a backbone as (B, C, F, H, W). Inside the U-Net the
frames are folded into the batch, `(B*F, C, H, W)`, so a 2D convolution over that tensor *is* a
1×3×3 video convolution (VDM §3); temporal layers unfold the frames with einops patterns that
double as documentation. Token layers work on `(N, L, D)` sequences.

`keep` tensors are (B,) floats: 1 for video samples, 0 for samples flagged `Cond.is_image`
(VDM joint image–video training): temporal layers are bypassed for the zeros.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..utils import VidiffError

# ----------------------------------------------------------------------------- embeddings


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features [cos(t·ω_i), sin(t·ω_i)], ω_i = max_period^(-i/(dim/2)) (Vaswani 2017 §3.5)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, 2·half)
    return F.pad(emb, (0, dim - 2 * half))


class TimestepEmbedder(nn.Module):
    """t ∈ [0, 1] → MLP(sinusoid(1000·t)) (DDPM / DiT timestep embedding)."""

    def __init__(self, freq_dim: int, dim: int, scale: float = 1000.0):
        super().__init__()
        self.freq_dim, self.scale = freq_dim, scale
        self.fc1 = nn.Linear(freq_dim, dim)
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, t: Tensor) -> Tensor:
        h = timestep_embedding(self.scale * t, self.freq_dim)  # (B, freq_dim)
        return self.fc2(F.silu(self.fc1(h.to(self.fc1.weight.dtype))))  # (B, dim)



class NullCondition(nn.Module):
    """Learned null text condition for classifier-free guidance (Ho & Salimans 2022 §3.2): one null
    token (plus padding masked out) and a null pooled vector replace the text of dropped samples."""

    def __init__(self, text_dim: int):
        super().__init__()
        self.text = nn.Parameter(torch.randn(text_dim) * 0.02)  # (D,)
        self.pooled = nn.Parameter(torch.zeros(text_dim))        # (D,)


def apply_null_condition(cond, null: NullCondition | None, num_classes: int):
    """`cond` with the samples flagged by `cond.drop` switched to the null class and the learned null
    text/pooled embedding; returns `cond` unchanged (with drop cleared) when nothing is flagged."""
    import dataclasses

    if cond.drop is None:
        return cond
    d = cond.drop.bool()  # (B,)
    out = dataclasses.replace(cond, drop=None)
    if cond.class_ids is not None:
        out.class_ids = torch.where(d, torch.full_like(cond.class_ids, num_classes), cond.class_ids)
    if cond.text is not None or cond.pooled is not None:
        if null is None:
            raise VidiffError("cond.text/pooled given but the model has text_dim=0; set text_dim in the model config")
    if cond.text is not None:
        b, length, dim = cond.text.shape  # (B, L, D)
        null_tokens = torch.cat([null.text.to(cond.text.dtype).expand(b, 1, dim),
                                 cond.text.new_zeros(b, length - 1, dim)], dim=1)  # (B, L, D)
        out.text = torch.where(d[:, None, None], null_tokens, cond.text)
        mask = cond.text_mask.bool() if cond.text_mask is not None else \
            torch.ones(b, length, dtype=torch.bool, device=cond.text.device)
        null_mask = torch.zeros_like(mask)
        null_mask[:, 0] = True
        out.text_mask = torch.where(d[:, None], null_mask, mask)  # (B, L)
    if cond.pooled is not None:
        out.pooled = torch.where(d[:, None], null.pooled.to(cond.pooled.dtype).expand_as(cond.pooled), cond.pooled)
    return out


def embed_conditions(t: Tensor, cond, batch: int, *, time_embed: nn.Module, class_embed: nn.Module | None,
                     pooled_proj: nn.Module | None, noise_aug_embed: nn.Module | None, num_classes: int) -> Tensor:
    """emb(t) + emb(class) + proj(pooled) + emb(noise_aug), (B, D): the global conditioning vector.

    Missing class ids use the null class `num_classes` (classifier-free guidance); a condition the
    model was not built for raises a one-line VidiffError naming the config field to set.
    """
    emb = time_embed(t.expand(batch) if t.dim() == 0 else t)
    if class_embed is not None:
        ids = cond.class_ids
        if ids is None:
            ids = torch.full((batch,), num_classes, dtype=torch.long, device=emb.device)
        emb = emb + class_embed(ids)
    elif cond.class_ids is not None:
        raise VidiffError("cond.class_ids given but the model has num_classes=0; set num_classes in the model config")
    if cond.pooled is not None:
        if pooled_proj is None:
            raise VidiffError("cond.pooled given but the model has text_dim=0; set text_dim in the model config")
        emb = emb + pooled_proj(cond.pooled.to(emb.dtype))
    if cond.noise_aug is not None:
        if noise_aug_embed is None:
            raise VidiffError("cond.noise_aug given but the model has cond_channels=0")
        emb = emb + noise_aug_embed(cond.noise_aug)
    return emb


def concat_condition(x: Tensor, cond, cond_channels: int) -> Tensor:
    """x (B, C, F, H, W) -> (B, C + cond_channels, F, H, W) with cond.concat (zeros when absent)."""
    b, _, frames, h, w = x.shape
    if cond_channels:
        concat = cond.concat if cond.concat is not None else x.new_zeros(b, cond_channels, frames, h, w)
        if concat.shape != (b, cond_channels, frames, h, w):
            raise VidiffError(f"cond.concat must have shape {(b, cond_channels, frames, h, w)}, "
                              f"got {tuple(concat.shape)}")
        return torch.cat([x, concat.to(x.dtype)], dim=1)  # (B, C + C_cond, F, H, W)
    if cond.concat is not None:
        raise VidiffError("cond.concat given but the model has cond_channels=0; set cond_channels")
    return x


def self_condition(x: Tensor, cond, enabled: bool) -> Tensor:
    """x (B, C, F, H, W) -> (B, 2C, F, H, W) with cond.self_cond, the previous x̂₀ estimate (zeros when
    absent; Chen et al. 2022, "Analog Bits", sec. 3.3), when the backbone is self-conditioned."""
    if enabled:
        prev = cond.self_cond if cond.self_cond is not None else torch.zeros_like(x)
        if prev.shape != x.shape:
            raise VidiffError(f"cond.self_cond must have the shape of x_t {tuple(x.shape)}, got {tuple(prev.shape)}")
        return torch.cat([x, prev.to(x.dtype)], dim=1)  # (B, 2C, F, H, W)
    if cond.self_cond is not None:
        raise VidiffError("cond.self_cond given but the model was built with self_cond=False")
    return x


def sincos_1d(positions: Tensor, dim: int) -> Tensor:
    """Fixed sinusoidal position embedding of (any) integer positions, (N,) → (N, dim)."""
    return timestep_embedding(positions.float(), dim)


def sincos_3d(frames: int, height: int, width: int, dim: int, device=None) -> Tensor:
    """Space-time position embedding for a (T, h, w) token grid: 2D sin-cos + 1D temporal, (T, h·w, dim).

    Computed on the fly, so a model runs at any frame count or resolution (Latte / DiT style).
    """
    half = dim // 2
    ys = torch.arange(height, device=device).repeat_interleave(width)  # (h·w,)
    xs = torch.arange(width, device=device).repeat(height)  # (h·w,)
    spatial = torch.cat([sincos_1d(ys, half), sincos_1d(xs, dim - half)], dim=-1)  # (h·w, dim)
    temporal = sincos_1d(torch.arange(frames, device=device), dim)  # (T, dim)
    return spatial[None] + temporal[:, None]  # (T, h·w, dim)


# ----------------------------------------------------------------------------- norms


def group_norm(channels: int, groups: int = 32, eps: float = 1e-5) -> nn.GroupNorm:
    """GroupNorm with the largest group count ≤ `groups` that divides `channels`."""
    return nn.GroupNorm(math.gcd(groups, channels), channels, eps=eps)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + ε) · g (Zhang & Sennrich 2019), over the last dim."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN: x·(1 + scale) + shift, with (B, D) shift/scale broadcast over tokens (DiT §3.2)."""
    expand = (slice(None),) + (None,) * (x.dim() - 2) + (slice(None),)
    return x * (1 + scale[expand]) + shift[expand]


# ----------------------------------------------------------------------------- positions


class RelativePositionBias(nn.Module):
    """Learned per-head bias b[h, clamp(j − i)] added to attention logits (Shaw 2018; VDM temporal attention)."""

    def __init__(self, heads: int, max_distance: int = 32):
        super().__init__()
        self.max_distance = max_distance
        self.table = nn.Parameter(torch.zeros(heads, 2 * max_distance + 1))

    def forward(self, length: int) -> Tensor:
        pos = torch.arange(length, device=self.table.device)
        rel = (pos[None, :] - pos[:, None]).clamp(-self.max_distance, self.max_distance)  # (L, L)
        return self.table[:, rel + self.max_distance]  # (heads, L, L)


def rope_angles(positions: Tensor, head_dim: int, base: float = 10000.0) -> tuple[Tensor, Tensor]:
    """cos/sin of rotary angles p·θ_i, θ_i = base^(−2i/d) (RoFormer, Su et al. 2021 eq. 34), (L, d/2) each."""
    inv = base ** (-torch.arange(0, head_dim // 2, device=positions.device, dtype=torch.float32) * 2 / head_dim)
    ang = positions.float()[:, None] * inv[None]
    return ang.cos(), ang.sin()


def rope_angles_grid(grid: tuple[int, ...], head_dim: int, base: float = 10000.0,
                     device=None) -> tuple[Tensor, Tensor]:
    """Axial RoPE on a token grid (e.g. (F, H, W), flattened in that order): the d/2 rotary pairs are split
    over the axes (the first axis takes the remainder) and each axis rotates its pairs by its own
    coordinate, so q·k depends only on the offset between two tokens (3D RoPE as in CogVideoX). (L, d/2)."""
    pairs, n = head_dim // 2, len(grid)
    if head_dim % 2 or pairs < n:
        raise ValueError(f"axial RoPE over {n} axes needs an even head_dim >= {2 * n}, got {head_dim}")
    split = [pairs // n + (pairs % n if i == 0 else 0) for i in range(n)]
    coords = torch.meshgrid(*[torch.arange(g, device=device) for g in grid], indexing="ij")
    cos, sin = zip(*(rope_angles(c.reshape(-1), 2 * k, base) for c, k in zip(coords, split)))
    return torch.cat(cos, dim=1), torch.cat(sin, dim=1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate consecutive channel pairs of x (…, L, d) by the angles (RoFormer eq. 34)."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.flatten(-2).to(x.dtype)


def causal_bias(length: int, device=None, dtype=torch.float32) -> Tensor:
    """Additive mask (L, L): 0 where key j ≤ query i, −inf above the diagonal (frame t sees frames ≤ t)."""
    return torch.full((length, length), float("-inf"), device=device, dtype=dtype).triu(1)


# ----------------------------------------------------------------------------- attention


class Attention(nn.Module):
    """Multi-head self-attention on (N, L, D) tokens via torch's scaled_dot_product_attention."""

    def __init__(self, dim: int, heads: int, qk_norm: bool = False, zero_out: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads, self.head_dim = heads, dim // heads
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.to_out = nn.Linear(dim, dim)
        self.q_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        if zero_out:
            nn.init.zeros_(self.to_out.weight)
            nn.init.zeros_(self.to_out.bias)

    def forward(self, x: Tensor, mask: Tensor | None = None, rope: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """`mask`: bool (keep) or additive float, broadcastable to (N, heads, L, L)."""
        q, k, v = rearrange(self.to_qkv(x), "n l (three h d) -> three n h l d", three=3, h=self.heads)
        q, k = self.q_norm(q), self.k_norm(k)  # (N, heads, L, d)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (N, heads, L, d)
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
        self.attn = Attention(dim, heads, zero_out=zero_out)
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
        self.attn = Attention(dim, heads)

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

        def windows(z: Tensor, lead: int) -> Tensor:  # '(lead) (nt wt) (nh wh) (nw ww) ... -> (lead nt nh nw) (wt wh ww) ...'
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


# ----------------------------------------------------------------------------- video blocks (U-Net layout)


@dataclass
class VideoCtx:
    """What the per-block modules of the U-Net need besides the features: batch/frame counts and conditioning."""

    batch: int
    frames: int
    emb: Tensor  # (B, temb)
    text: Tensor | None = None  # (B, M, D_text)
    text_mask: Tensor | None = None  # (B, M)
    keep: Tensor | None = None  # (B,) 1 = video, 0 = independent images


def frame_keep(keep: Tensor | None, frames: int) -> Tensor | None:
    """(B,) keep → (B·F, 1, 1, 1), for gating residual branches on the `(B·F, C, H, W)` layout."""
    return None if keep is None else keep.repeat_interleave(frames)[:, None, None, None]


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
        self.attn = Attention(channels, heads)
        self.joint, self.causal, self.pos = joint, causal, pos

    def forward(self, x: Tensor, ctx: VideoCtx | None = None) -> Tensor:
        n, c, h, w = x.shape
        if not self.joint:
            rope = rope_angles_grid((h, w), self.attn.head_dim, device=x.device) if self.pos == "rope" else None
            t = self.attn(rearrange(self.norm(x), "n c h w -> n (h w) c"), rope=rope)  # (N, H·W, C)
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


class FeedForward(nn.Module):
    """Two-layer GELU MLP (Transformer FFN)."""

    def __init__(self, dim: int, mult: float = 4.0):
        super().__init__()
        hidden = int(dim * mult)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


# ----------------------------------------------------------------------------- misc


def maybe_checkpoint(fn, *args, enabled: bool):
    """Run fn(*args) under activation checkpointing when enabled and gradients are on (Chen et al. 2016)."""
    if enabled and torch.is_grad_enabled():
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())
