"""Primitives: sinusoidal and learned embeddings, norms, position encodings, the FFN, layout helpers."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

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


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm that also trains behind frozen layers: torch's CPU backward crashes on a channels-last
    input that needs no gradient while the affine weights do, so such an input is made contiguous first."""

    def forward(self, x: Tensor) -> Tensor:
        if (self.affine and self.weight.requires_grad and not x.requires_grad and torch.is_grad_enabled()
                and x.device.type == "cpu" and not x.is_contiguous()):
            x = x.contiguous()
        return super().forward(x)


def group_norm(channels: int, groups: int = 32, eps: float = 1e-5) -> GroupNorm:
    """GroupNorm with the largest group count ≤ `groups` that divides `channels`."""
    return GroupNorm(math.gcd(groups, channels), channels, eps=eps)


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


# ----------------------------------------------------------------------------- feed-forward


class FeedForward(nn.Module):
    """Two-layer GELU MLP (Transformer FFN)."""

    def __init__(self, dim: int, mult: float = 4.0):
        super().__init__()
        hidden = int(dim * mult)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


# ----------------------------------------------------------------------------- U-Net layout


@dataclass
class VideoCtx:
    """What the per-block modules of the U-Net need besides the features: batch/frame counts and conditioning."""

    batch: int
    frames: int
    emb: Tensor | None  # (B, temb); None where no block reads it (temporal layers only)
    text: Tensor | None = None  # (B, M, D_text)
    text_mask: Tensor | None = None  # (B, M)
    keep: Tensor | None = None  # (B,) 1 = video, 0 = independent images


def frame_keep(keep: Tensor | None, frames: int) -> Tensor | None:
    """(B,) keep → (B·F, 1, 1, 1), for gating residual branches on the `(B·F, C, H, W)` layout."""
    return None if keep is None else keep.repeat_interleave(frames)[:, None, None, None]


# ----------------------------------------------------------------------------- misc


def maybe_checkpoint(fn, *args, enabled: bool):
    """Run fn(*args) under activation checkpointing when enabled and gradients are on (Chen et al. 2016)."""
    if enabled and torch.is_grad_enabled():
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())
