"""Video autoencoder (KL): a per-frame 2D encoder and a decoder whose 2D blocks are each followed by
temporal layers — Video LDM's temporal decoder (Blattmann et al. 2023, §3.1.1) — with a causal option.

Layout. Videos are (B, C, F, H, W); inside the encoder and decoder the frames are folded into the
batch, `(B·F, C, H, W)`, so 2D layers act per frame and temporal layers unfold the frames (the U-Net's
convention, `vidiff.models.layers`). Temporal layers are identity at initialisation (the last conv of
each temporal residual block and the output of temporal attention are zeroed), so a fresh video
decoder decodes exactly like the per-frame decoder with the same 2D weights.

Causal variant (`causal=True, temporal_compression=4`, CogVideoX / LTX style): the first frame is
encoded alone and the rest in groups of 4, so F = 1 + 4k frames give 1 + k latent frames; temporal
convolutions and attention only look at earlier frames, so decoded frame 0 depends on latent 0 alone.

Memory: `encode`/`decode` run in temporal chunks (with `overlap` latent frames of context on each side
that the decoder can see — exact when it covers the temporal receptive field, `decoder_halo`) and in
spatial tiles whose seams are blended linearly (diffusers' VAE tiling, SVD's `decode_chunk_size`).
Exactness costs compute: each chunk decodes (chunk + 2·overlap) frames, so a smaller `overlap` trades a
small error (it decays fast with the overlap) for speed. A decoder whose temporal layers are convolutions
streams its chunks instead (`vae_stream`: the convolutions' caches carried between chunks, each frame
decoded once, exact); temporal attention has no bounded cache and keeps the overlapped chunks. Tiling is
approximate: GroupNorm statistics and the spatial receptive field differ per tile.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..checkpoint import save_pretrained
from ..config import config_to_dict
from ..utils import VidiffError
from .layers import SpatialAttentionBlock, TemporalAttentionBlock, TemporalConv, VideoCtx, group_norm
from .vae_stream import stream_decode, streamable

TemporalKind = Literal["none", "conv3d", "attention", "both"]


@dataclass(frozen=True)
class VAEConfig:
    """A KL video autoencoder: `spatial_factor` = 2^(levels − 1), `temporal_compression` 1 or 4 (causal only).

    `scaling_factor`/`shift_factor` map latents to the diffusion space, (z − shift)·scale (LDM §4.3.2);
    the latent cache measures 1/std of the latents for it.
    """

    in_channels: int = 3
    latent_channels: int = 4
    base_channels: int = 32  # 3.3 M parameters at the default multipliers (13 MB in float32)
    channel_mult: tuple[int, ...] | None = None  # one per level; None: (1, 2, 4, 4)[:levels]
    num_res_blocks: int = 1
    spatial_factor: int = 4
    temporal_decoder: TemporalKind = "conv3d"
    causal: bool = False
    temporal_compression: int = 1
    attention_heads: int = 1  # temporal attention heads in the decoder
    mid_attention: bool = True  # per-frame spatial self-attention in the middle blocks (as SD's VAE)
    norm_groups: int = 32
    scaling_factor: float = 1.0
    shift_factor: float = 0.0

    def __post_init__(self):
        if self.spatial_factor not in (4, 8):
            raise VidiffError(f"VAE spatial_factor must be 4 or 8, got {self.spatial_factor}")
        if self.channel_mult is not None and len(self.channel_mult) != self.levels:
            raise VidiffError(f"channel_mult {self.channel_mult} needs {self.levels} entries for spatial_factor "
                              f"{self.spatial_factor} (one per level)")
        if self.temporal_compression not in (1, 4):
            raise VidiffError(f"temporal_compression must be 1 or 4, got {self.temporal_compression}")
        if self.temporal_compression == 4 and not self.causal:
            raise VidiffError("temporal_compression=4 needs causal=True (the first frame alone, then groups of 4)")
        if self.temporal_compression == 4 and self.temporal_decoder == "none":
            raise VidiffError("temporal_compression=4 needs a temporal decoder: conv3d, attention or both")
        if self.temporal_decoder not in ("none", "conv3d", "attention", "both"):
            raise VidiffError(f"unknown temporal_decoder {self.temporal_decoder!r}; "
                              "use none, conv3d, attention or both")
        if min(self.base_channels, self.latent_channels, self.num_res_blocks, self.in_channels) < 1:
            raise VidiffError("VAE channel and block counts must be >= 1")

    @property
    def levels(self) -> int:
        return int(math.log2(self.spatial_factor)) + 1

    @property
    def mults(self) -> tuple[int, ...]:
        return tuple(self.channel_mult) if self.channel_mult is not None else (1, 2, 4, 4)[: self.levels]


# ----------------------------------------------------------------------------- posterior


@dataclass
class DiagonalGaussian:
    """q(z|x) = N(mean, diag(exp(logvar))) over latents (B, C, F, h, w); logvar clamped to [−30, 20] (LDM).

    `deterministic=True`: a point mass at the mean (std 0, sample = mean, kl = 0), for autoencoders
    without noise such as the identity.
    """

    mean: Tensor
    logvar: Tensor
    deterministic: bool = False

    def __post_init__(self):
        self.logvar = self.logvar.clamp(-30.0, 20.0)

    @classmethod
    def from_moments(cls, moments: Tensor) -> DiagonalGaussian:
        """(B, 2C, …) = [mean, logvar] along channels."""
        mean, logvar = moments.chunk(2, dim=1)
        return cls(mean, logvar)

    @property
    def std(self) -> Tensor:
        return torch.zeros_like(self.mean) if self.deterministic else torch.exp(0.5 * self.logvar)

    @property
    def var(self) -> Tensor:
        return torch.zeros_like(self.mean) if self.deterministic else torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """z = mean + std·ε, ε ~ N(0, I) drawn from `generator` (reparameterisation, Kingma & Welling 2014)."""
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def mode(self) -> Tensor:
        return self.mean

    def kl(self) -> Tensor:
        """KL(q ‖ N(0, I)) = ½ Σ (μ² + σ² − 1 − log σ²) per sample, (B,) (Kingma & Welling 2014, B)."""
        if self.deterministic:
            return self.mean.new_zeros(self.mean.shape[0])
        dims = tuple(range(1, self.mean.dim()))
        return 0.5 * (self.mean.pow(2) + self.var - 1.0 - self.logvar).sum(dim=dims)


# ----------------------------------------------------------------------------- chunks and tiles


def _first_frame(i: int, tf: int) -> int:
    """Index of the first pixel frame of latent frame i (latent 0 ↦ frame 0, latent i ↦ 1 + tf·(i − 1) …)."""
    return i if tf == 1 else (0 if i == 0 else 1 + tf * (i - 1))


def chunked(fn: Callable[[Tensor], Tensor], x: Tensor, chunk: int, left: int, right: int, tf: int,
            decode: bool) -> Tensor:
    """fn applied to temporal windows of x: each `chunk` latent frames with `left`/`right` latent frames of
    context that are computed and dropped. Exact when the context covers fn's temporal receptive field.

    With temporal compression (tf > 1) fn treats the first frame of a window as a lone first frame, so a
    decode window starts one latent early (that latent is cropped) and an encode window starts with the
    last frame of the preceding group (its latent is cropped).
    """
    frames = x.shape[2]
    length = frames if decode else (frames - 1) // tf + 1  # latent frames
    if decode and tf > 1:
        left = max(left, 1)
    outs = []
    for s in range(0, length, chunk):
        e = min(length, s + chunk)
        a, b = max(0, s - left), min(length, e + right)
        if decode:
            y = fn(x[:, :, a:b])  # (B, C, frames of latents a..b−1, H, W)
            outs.append(y[:, :, _first_frame(s - a, tf):_first_frame(e - a, tf)])
        else:
            lead = 1 if tf > 1 and a > 0 else 0
            y = fn(x[:, :, _first_frame(a, tf) - lead:_first_frame(b, tf)])  # (B, C, lead + b − a, h, w)
            outs.append(y[:, :, lead + s - a:lead + e - a])
    return torch.cat(outs, dim=2)


def _starts(n: int, tile: int, overlap: int) -> list[int]:
    """Tile origins covering [0, n) with stride tile − overlap; the last tile ends at n."""
    if n <= tile:
        return [0]
    starts = list(range(0, n - tile, tile - overlap)) + [n - tile]
    return sorted(set(starts))


def _ramp(length: int, ramp: int, rise: bool, fall: bool, device) -> Tensor:
    """Blend weights (length,): linear 0→1 over the first `ramp` positions (rise) and 1→0 over the last (fall)."""
    w = torch.ones(length, device=device, dtype=torch.float64)
    if ramp > 0:
        r = (torch.arange(ramp, device=device, dtype=torch.float64) + 0.5) / ramp
        if rise:
            w[:ramp] = torch.minimum(w[:ramp], r)
        if fall:
            w[length - ramp:] = torch.minimum(w[length - ramp:], r.flip(0))
    return w


def tiled(fn: Callable[[Tensor], Tensor], x: Tensor, tile: int, overlap: int, scale: float) -> Tensor:
    """fn applied to spatial tiles of x (B, C, F, H, W) of `tile`×`tile` input pixels overlapping by `overlap`,
    outputs (scaled by `scale` in space) blended with linear ramps across each seam (diffusers' tiled VAE)."""
    h, w = x.shape[-2:]
    if tile <= overlap:
        raise VidiffError(f"tile ({tile}) must be larger than its overlap ({overlap})")
    if h <= tile and w <= tile:
        return fn(x)
    ys, xs = _starts(h, tile, overlap), _starts(w, tile, overlap)
    out = weight = None
    ramp = round(overlap * scale)
    for y0 in ys:
        for x0 in xs:
            part = fn(x[..., y0:y0 + tile, x0:x0 + tile])  # (B, C', F', th·scale, tw·scale)
            th, tw = part.shape[-2:]
            if out is None:
                out = x.new_zeros(*part.shape[:-2], round(h * scale), round(w * scale), dtype=torch.float64)
                weight = torch.zeros(out.shape[-2:], dtype=torch.float64, device=x.device)
            wy = _ramp(th, ramp, y0 > 0, y0 + tile < h, x.device)
            wx = _ramp(tw, ramp, x0 > 0, x0 + tile < w, x.device)
            oy, ox = round(y0 * scale), round(x0 * scale)
            out[..., oy:oy + th, ox:ox + tw] += part.double() * (wy[:, None] * wx[None])
            weight[oy:oy + th, ox:ox + tw] += wy[:, None] * wx[None]
    return (out / weight).to(x.dtype)


class Autoencoder(nn.Module):
    """The interface latent pipelines use, whatever the autoencoder (vidiff's, a diffusers folder, identity).

    Subclasses implement `encode_moments(x) -> (B, 2C, f, h, w)` and `decode_latents(z) -> (B, 3, F, H, W)`
    on whole clips and set the attributes below; chunked and tiled processing is shared here.
    """

    latent_channels: int
    in_channels: int = 3
    spatial_factor: int = 1
    temporal_factor: int = 1
    causal: bool = False
    scaling_factor: float = 1.0
    shift_factor: float = 0.0
    encoder_halo: int | None = 0  # latent frames of context each encoded latent needs (None: unbounded)
    decoder_halo: int | None = 0  # latent frames of context each decoded frame needs (None: unbounded)
    fingerprint: str | None = None  # sha256 of the weights file it was loaded from
    source: str | None = None
    bounded: bool = False  # its latents are pixels in [−1, 1] (the identity): clamped like pixels while sampling

    def encode_moments(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def decode_latents(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def posterior(self, moments: Tensor) -> DiagonalGaussian:
        return DiagonalGaussian.from_moments(moments)

    def latent_frames(self, frames: int) -> int:
        return frames if self.temporal_factor == 1 else (frames - 1) // self.temporal_factor + 1

    def pixel_frames(self, latent_frames: int) -> int:
        return _first_frame(latent_frames, self.temporal_factor)

    def check_video_shape(self, frames: int, height: int, width: int) -> None:
        """VidiffError naming the sizes that work when (frames, height, width) cannot be encoded."""
        f = self.spatial_factor
        for name, n in (("height", height), ("width", width)):
            if n % f or n < f:
                lo = max(f, n // f * f)
                raise VidiffError(f"frame {name} {n} is not divisible by the autoencoder's spatial factor {f}; "
                                  f"use a multiple of {f}, e.g. {lo} or {lo + f}")
        tf = self.temporal_factor
        if tf > 1 and (frames - 1) % tf:
            k = max(0, (frames - 1) // tf)
            raise VidiffError(f"{frames} frames do not fit the causal autoencoder: it needs 1 + {tf}k frames, "
                              f"e.g. {1 + tf * k} or {1 + tf * (k + 1)}")

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(C, f, h, w) of the latents of a (3, frames, height, width) clip."""
        self.check_video_shape(frames, height, width)
        f = self.spatial_factor
        return self.latent_channels, self.latent_frames(frames), height // f, width // f

    def encode(self, x: Tensor, chunk: int | None = None, tile: int | None = None, overlap: int | None = None,
               tile_overlap: int | None = None) -> DiagonalGaussian:
        """x (B, 3, F, H, W) in [−1, 1] → q(z|x) over (B, C, f, h, w); `chunk` latent frames and `tile`
        latent pixels at a time (None: all at once)."""
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise VidiffError(f"expected videos (B, {self.in_channels}, F, H, W), got shape {tuple(x.shape)}")
        self.check_video_shape(*x.shape[2:])
        fn = self.encode_moments
        if tile:
            sf, ov = self.spatial_factor, _tile_overlap(tile, tile_overlap)
            fn = _tiles_of(fn, tile * sf, ov * sf, 1 / sf)
        if chunk and self.latent_frames(x.shape[2]) > chunk:
            halo = self.encoder_halo if overlap is None else overlap
            halo = chunk if halo is None else halo
            moments = chunked(fn, x, chunk, halo, 0 if self.causal else halo, self.temporal_factor, decode=False)
        else:
            moments = fn(x)
        return self.posterior(moments)

    def stream_fn(self, chunk: int) -> Callable[[Tensor], Tensor] | None:
        """`decode_latents` fed `chunk` latent frames at a time, each decoded once with the temporal layers'
        caches carried between chunks (`vae_stream`, exact); None where the decoder cannot stream."""
        return None

    def decode(self, z: Tensor, chunk: int | None = None, tile: int | None = None, overlap: int | None = None,
               tile_overlap: int | None = None, stream: bool = True) -> Tensor:
        """z (B, C, f, h, w) (unscaled latents) → (B, 3, F, H, W); `chunk` latent frames decoded at a time —
        streamed (`stream_fn`: each frame decoded once, exact) where the decoder can and no `overlap` is given,
        else with `overlap` frames of context (default: the receptive field, or `chunk` where it is unbounded,
        as with temporal attention) — and `tile` latent pixels per spatial tile, overlapping by `tile_overlap`
        (default tile/4)."""
        if z.dim() != 5 or z.shape[1] != self.latent_channels:
            raise VidiffError(f"expected latents (B, {self.latent_channels}, F, h, w), got shape {tuple(z.shape)}")
        long = bool(chunk) and z.shape[2] > chunk
        streamed = self.stream_fn(chunk) if long and stream and overlap is None else None
        fn = streamed or self.decode_latents
        if tile:
            fn = _tiles_of(fn, tile, _tile_overlap(tile, tile_overlap), self.spatial_factor)
        if long and streamed is None:
            halo = self.decoder_halo if overlap is None else overlap
            halo = chunk if halo is None else halo
            return chunked(fn, z, chunk, halo, 0 if self.causal else halo, self.temporal_factor, decode=True)
        return fn(z)


def _tile_overlap(tile: int, overlap: int | None) -> int:
    """The tile overlap in latent pixels (default a quarter of the tile), checked."""
    overlap = tile // 4 if overlap is None else overlap
    if tile < 1 or not 0 <= overlap < tile:
        raise VidiffError(f"a tile of {tile} latent pixels needs an overlap in [0, {tile}), got {overlap}")
    return overlap


def _tiles_of(fn: Callable[[Tensor], Tensor], tile: int, overlap: int, scale: float) -> Callable[[Tensor], Tensor]:
    return lambda x: tiled(fn, x, tile, overlap, scale)


# ----------------------------------------------------------------------------- blocks


class ResBlock2d(nn.Module):
    """GroupNorm–SiLU–conv twice with a skip, per frame (the residual block of LDM's autoencoder)."""

    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.norm1, self.conv1 = group_norm(cin, groups, 1e-6), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = group_norm(cout, groups, 1e-6), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (N, Cout, H, W)
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class TemporalResBlock(nn.Module):
    """x + conv_t(SiLU(GN(conv_t(SiLU(GN(x)))))) with (3, 1, 1) convolutions over frames (SVD's temporal
    decoder blocks); the second conv starts at zero, so the block starts as the identity."""

    kernel_size = 3

    def __init__(self, channels: int, groups: int, causal: bool):
        super().__init__()
        self.norm1, self.conv1 = group_norm(channels, groups, 1e-6), TemporalConv(channels, self.kernel_size, causal)
        self.norm2, self.conv2 = group_norm(channels, groups, 1e-6), TemporalConv(channels, self.kernel_size, causal)
        nn.init.zeros_(self.conv2.weight)
        self.causal = causal

    def reach(self) -> int:
        """Frames this block looks back (causal) or to each side."""
        per_conv = self.kernel_size - 1 if self.causal else self.kernel_size // 2
        return 2 * per_conv

    def forward(self, x: Tensor, ctx: VideoCtx) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)), ctx)  # (B·F, C, H, W)
        return x + self.conv2(F.silu(self.norm2(h)), ctx)


class TemporalLayers(nn.Module):
    """Video LDM's temporal layers after one 2D block: a (3, 1, 1) conv residual block and/or temporal attention."""

    def __init__(self, channels: int, kind: str, causal: bool, groups: int, heads: int):
        super().__init__()
        self.conv = TemporalResBlock(channels, groups, causal) if kind in ("conv3d", "both") else None
        attends = kind in ("attention", "both")
        self.attn = TemporalAttentionBlock(channels, heads, pos="bias", causal=causal) if attends else None

    def reach(self) -> int | None:
        return None if self.attn is not None else self.conv.reach()

    def forward(self, x: Tensor, ctx: VideoCtx) -> Tensor:
        if self.conv is not None:
            x = self.conv(x, ctx)  # (B·F, C, H, W)
        if self.attn is not None:
            x = self.attn(x, ctx)
        return x


class DecoderBlock(nn.Module):
    """A 2D block (per frame) followed by its temporal layers (none for a per-frame decoder)."""

    def __init__(self, spatial: nn.Module, channels: int, cfg: VAEConfig):
        super().__init__()
        self.spatial = spatial
        kind = cfg.temporal_decoder
        self.temporal = None if kind == "none" else TemporalLayers(channels, kind, cfg.causal, cfg.norm_groups,
                                                                   cfg.attention_heads)

    def forward(self, x: Tensor, ctx: VideoCtx) -> Tensor:
        x = self.spatial(x)  # (B·F, C, H, W)
        return x if self.temporal is None else self.temporal(x, ctx)


def temporal_downsample(x: Tensor, batch: int) -> Tensor:
    """(B·F, C, H, W) → (B·(1 + (F−1)/2), …): the first frame kept alone, the others averaged in pairs
    (CogVideoX's causal temporal downsampling)."""
    v = rearrange(x, "(b f) c h w -> b f c h w", b=batch)
    rest = rearrange(v[:, 1:], "b (f two) c h w -> b f two c h w", two=2).mean(2)
    return rearrange(torch.cat([v[:, :1], rest], 1), "b f c h w -> (b f) c h w")


def temporal_upsample(x: Tensor, batch: int) -> Tensor:
    """(B·F, C, H, W) → (B·(1 + 2(F−1)), …): the first frame kept alone, the others repeated twice."""
    v = rearrange(x, "(b f) c h w -> b f c h w", b=batch)
    rest = v[:, 1:].repeat_interleave(2, dim=1)
    return rearrange(torch.cat([v[:, :1], rest], 1), "b f c h w -> (b f) c h w")


def _ctx(batch: int, frames: int, x: Tensor) -> VideoCtx:
    return VideoCtx(batch=batch, frames=frames, emb=x.new_empty(batch, 0))


class Encoder(nn.Module):
    """Per-frame 2D encoder to [mean, logvar]; with temporal compression, causal pair-pooling over time after the
    first two downsamplings, each followed by a causal temporal residual block."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        ch = [cfg.base_channels * m for m in cfg.mults]
        g, n = cfg.norm_groups, cfg.num_res_blocks
        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.down = nn.ModuleList()
        cin = ch[0]
        for i, c in enumerate(ch):
            level = nn.Module()
            level.blocks = nn.ModuleList([ResBlock2d(cin if j == 0 else c, c, g) for j in range(n)])
            last = i == len(ch) - 1
            level.downsample = None if last else nn.Conv2d(c, c, 3, stride=2, padding=1)
            squeeze = cfg.temporal_compression > 1 and i < 2 and not last
            level.temporal = TemporalResBlock(c, g, causal=True) if squeeze else None
            self.down.append(level)
            cin = c
        self.mid = nn.ModuleList([ResBlock2d(cin, cin, g),
                                  SpatialAttentionBlock(cin, 1, g, 1e-6) if cfg.mid_attention else nn.Identity(),
                                  ResBlock2d(cin, cin, g)])
        self.norm_out = group_norm(cin, g, 1e-6)
        self.conv_out = nn.Conv2d(cin, 2 * cfg.latent_channels, 3, padding=1)

    def halo(self) -> int:
        """Latent frames of (left) context the temporal blocks reach: Σ ⌈reach / frames per latent⌉."""
        per_latent, total = 4, 0
        for level in self.down:
            if level.temporal is not None:
                per_latent //= 2
                total += math.ceil(level.temporal.reach() / per_latent)
        return total

    def forward(self, x: Tensor) -> Tensor:
        b, frames = x.shape[0], x.shape[2]
        h = self.conv_in(rearrange(x, "b c f h w -> (b f) c h w"))  # (B·F, C0, H, W)
        for level in self.down:
            for block in level.blocks:
                h = block(h)
            if level.downsample is not None:
                h = level.downsample(h)  # (B·F, C, H/2, W/2)
            if level.temporal is not None:
                h = temporal_downsample(h, b)  # (B·(1 + (F−1)/2), C, H', W')
                frames = 1 + (frames - 1) // 2
                h = level.temporal(h, _ctx(b, frames, h))
        for block in self.mid:
            h = block(h)
        h = self.conv_out(F.silu(self.norm_out(h)))  # (B·f, 2·C_lat, h, w)
        return rearrange(h, "(b f) c h w -> b c f h w", b=b)


class Decoder(nn.Module):
    """2D decoder blocks each followed by temporal layers (Video LDM §3.1.1); with temporal compression, causal
    frame repetition mirrors the encoder's pooling."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        ch = [cfg.base_channels * m for m in cfg.mults]
        g, n, top = cfg.norm_groups, cfg.num_res_blocks, ch[-1]
        self.conv_in = nn.Conv2d(cfg.latent_channels, top, 3, padding=1)
        attn = SpatialAttentionBlock(top, 1, g, 1e-6) if cfg.mid_attention else nn.Identity()
        self.mid = nn.ModuleList([DecoderBlock(ResBlock2d(top, top, g), top, cfg), DecoderBlock(attn, top, cfg),
                                  DecoderBlock(ResBlock2d(top, top, g), top, cfg)])
        self.up = nn.ModuleList()
        cin = top
        for i in reversed(range(len(ch))):
            c = ch[i]
            level = nn.Module()
            level.blocks = nn.ModuleList([DecoderBlock(ResBlock2d(cin if j == 0 else c, c, g), c, cfg)
                                          for j in range(n + 1)])
            level.upsample = nn.Conv2d(c, c, 3, padding=1) if i > 0 else None
            level.temporal_up = cfg.temporal_compression > 1 and i in (1, 2)
            self.up.append(level)
            cin = c
        self.norm_out = group_norm(cin, g, 1e-6)
        self.conv_out = nn.Conv2d(cin, cfg.in_channels, 3, padding=1)

    def halo(self) -> int | None:
        """Latent frames of context the temporal layers reach: Σ ⌈reach / frames per latent⌉ (None: attention)."""
        per_latent, total = 1, 0
        for blocks, up in [(self.mid, False)] + [(level.blocks, level.temporal_up) for level in self.up]:
            for block in blocks:
                if block.temporal is not None:
                    reach = block.temporal.reach()
                    if reach is None:
                        return None
                    total += math.ceil(reach / per_latent)
            per_latent *= 2 if up else 1
        return total

    def forward(self, z: Tensor) -> Tensor:
        b, frames = z.shape[0], z.shape[2]
        h = self.conv_in(rearrange(z, "b c f h w -> (b f) c h w"))  # (B·f, C, h, w)
        ctx = _ctx(b, frames, h)
        for block in self.mid:
            h = block(h, ctx)
        for level in self.up:
            for block in level.blocks:
                h = block(h, ctx)  # (B·F', C, H', W')
            if level.temporal_up:
                h = temporal_upsample(h, b)  # (B·(1 + 2(F'−1)), C, H', W')
                ctx = _ctx(b, 1 + 2 * (ctx.frames - 1), h)
            if level.upsample is not None:
                h = level.upsample(F.interpolate(h, scale_factor=2.0, mode="nearest"))  # (·, C, 2H', 2W')
        h = self.conv_out(F.silu(self.norm_out(h)))  # (B·F, 3, H, W)
        return rearrange(h, "(b f) c h w -> b c f h w", b=b)


class VideoAutoencoder(Autoencoder):
    """KL video autoencoder: `encode(x) -> DiagonalGaussian`, `decode(z) -> x`, chunked and tiled (see module doc)."""

    def __init__(self, config: VAEConfig | None = None):
        super().__init__()
        self.config = cfg = config or VAEConfig()
        self.encoder, self.decoder = Encoder(cfg), Decoder(cfg)
        self.in_channels, self.latent_channels = cfg.in_channels, cfg.latent_channels
        self.spatial_factor = cfg.spatial_factor
        self.temporal_factor, self.causal = cfg.temporal_compression, cfg.causal
        self.scaling_factor, self.shift_factor = cfg.scaling_factor, cfg.shift_factor
        self.encoder_halo = self.encoder.halo()
        halo = self.decoder.halo()
        # a decode window with compression treats its first latent as a lone first frame: one more of context
        self.decoder_halo = None if halo is None else halo + (cfg.temporal_compression > 1)

    def encode_moments(self, x: Tensor) -> Tensor:
        return self.encoder(x)  # (B, 2·C_lat, f, h, w)

    def decode_latents(self, z: Tensor) -> Tensor:
        return self.decoder(z)  # (B, 3, F, H, W)

    def stream_fn(self, chunk: int) -> Callable[[Tensor], Tensor] | None:
        """Streamed decoding where the temporal layers are convolutions (none with temporal attention)."""
        return partial(stream_decode, self.decoder, chunk=chunk) if streamable(self.decoder) else None

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, DiagonalGaussian]:
        """Reconstruction of x from z ~ q(z|x) and the posterior (for the training losses)."""
        posterior = self.encode(x)
        return self.decode(posterior.sample(generator)), posterior

    def temporal_parameters(self) -> list[nn.Parameter]:
        """The decoder's temporal-layer parameters (Video LDM fine-tunes only these on video)."""
        return [p for name, p in self.decoder.named_parameters() if ".temporal." in name]


def save_vae(folder: str | Path, vae: VideoAutoencoder, extra_config: dict | None = None) -> Path:
    """Write `folder/model.safetensors` + `folder/config.json` ({"vae": config, **extra_config})."""
    return save_pretrained(folder, vae, {**(extra_config or {}), "vae": config_to_dict(vae.config)})


__all__ = ["Autoencoder", "DiagonalGaussian", "VAEConfig", "VideoAutoencoder", "chunked", "save_vae", "tiled"]
