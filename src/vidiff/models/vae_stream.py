"""Streaming decoding with the temporal decoder of `vidiff.models.vae`: every latent frame is decoded once.

Decoding in overlapping chunks (`vae.chunked`) is exact only when each chunk carries the decoder's whole
temporal receptive field as context on both sides, so a chunk of c latent frames decodes c + 2·halo of them
(for the default decoder, halo = 18 and c = 8: about 5.5× the work). Streaming instead carries, from one chunk
to the next, what the temporal layers still need: each temporal convolution keeps the last k − 1 frames of its
input (the conv cache of CogVideoX's and LTX-Video's causal VAEs), and each temporal residual block keeps the
skip frames its convolutions have not caught up with. A causal convolution's output is final as soon as its
input frame arrives; a centred one (kernel 3) is final one frame later, so a non-causal decoder emits its
frames with a delay of its receptive field and flushes them when the last chunk arrives. Every other layer
of the decoder acts per frame (2D convolutions, GroupNorm over (C, H, W), spatial attention, frame
repetition), so the streamed frames equal the one-shot decode up to floating-point reordering.

Temporal attention attends over all frames of a window (or all earlier ones when causal), so it has no
bounded cache: decoders with it keep the overlapped chunks, which are approximate for them.

Frames travel as (B, n, C, H, W) segments, in order; None is a segment of no frames.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .layers import VideoCtx

Segment = Optional[Tensor]  # (B, n, C, H, W) frames in order, or None (no frames)


def _cat(*parts: Segment) -> Segment:
    parts = [p for p in parts if p is not None and p.shape[1] > 0]
    return None if not parts else parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def _per_frame(fn: Callable[[Tensor], Tensor], x: Segment) -> Segment:
    """fn on frames folded into the batch, (B·n, C, H, W) → (B·n, C', H', W')."""
    if x is None:
        return None
    y = fn(x.flatten(0, 1))
    return y.view(x.shape[0], x.shape[1], *y.shape[1:])


class ConvCache:
    """A `TemporalConv` over a stream: output frame f needs inputs f − left … f + right (zeros outside the
    clip); it is emitted once input f + right has arrived (at the end of the clip: at once), at most `limit`
    frames per call. The cache holds the inputs from (first frame not yet emitted) − left on."""

    def __init__(self, conv: nn.Module, limit: int | None = None):
        self.conv, self.left, self.limit = conv, conv.left, limit
        self.right = conv.kernel_size - 1 - conv.left
        self.tail: Segment = None
        self.start = 0  # clip index of tail[:, 0]
        self.emitted = 0

    def __call__(self, x: Segment, final: bool) -> tuple[Segment, bool]:
        """(the frames now final, whether all are out: `final` means no more input will come)."""
        seq = _cat(self.tail, x)
        if seq is None:
            return None, final
        a, b = self.start, self.start + seq.shape[1]  # seq holds input frames a … b − 1
        hi = b if final else max(self.emitted, b - self.right)  # outputs emitted … hi − 1 are final now
        if self.limit:
            hi = min(hi, self.emitted + self.limit)
        y = None
        if hi > self.emitted:
            n = seq.shape[1]
            out = self.conv(seq.flatten(0, 1), VideoCtx(batch=seq.shape[0], frames=n, emb=None))  # (B·n, C, H, W)
            y = out.view(seq.shape)[:, self.emitted - a:hi - a]  # (B, hi − emitted, C, H, W)
        self.emitted = hi
        keep = max(0, hi - self.left)
        self.tail, self.start = seq[:, keep - a:].clone(), keep  # a copy: the chunk itself can be freed
        return y, final and hi == b


class ResBlockStream:
    """`vae.TemporalResBlock` over a stream: x + conv2(SiLU(GN(conv1(SiLU(GN(x)))))), the skip frames held until
    the convolutions emit theirs."""

    def __init__(self, block: nn.Module, limit: int | None = None):
        self.block, self.conv1, self.conv2 = block, ConvCache(block.conv1, limit), ConvCache(block.conv2, limit)
        self.skip: Segment = None

    def __call__(self, x: Segment, final: bool) -> tuple[Segment, bool]:
        blk = self.block
        h, final = self.conv1(_per_frame(lambda t: F.silu(blk.norm1(t)), x), final)
        h, final = self.conv2(_per_frame(lambda t: F.silu(blk.norm2(t)), h), final)
        buf = _cat(self.skip, x)
        if h is None:
            self.skip = buf
            return None, final
        m = h.shape[1]
        self.skip = buf[:, m:].clone()
        return buf[:, :m] + h, final


class BlockStream:
    """`vae.DecoderBlock` over a stream: its 2D block per frame, then its temporal residual block."""

    def __init__(self, block: nn.Module, limit: int | None = None):
        self.spatial = block.spatial
        self.temporal = ResBlockStream(block.temporal.conv, limit) if block.temporal is not None else None

    def __call__(self, x: Segment, final: bool) -> tuple[Segment, bool]:
        x = _per_frame(self.spatial, x)
        return (x, final) if self.temporal is None else self.temporal(x, final)


class UpsampleStream:
    """`vae.temporal_upsample` over a stream: the clip's first frame alone, every later frame twice."""

    def __init__(self):
        self.seen = 0

    def __call__(self, x: Segment) -> Segment:
        if x is None:
            return None
        first = self.seen == 0
        self.seen += x.shape[1]
        rest = (x[:, 1:] if first else x).repeat_interleave(2, dim=1)
        return torch.cat([x[:, :1], rest], dim=1) if first else rest


def streamable(decoder: nn.Module) -> bool:
    """Whether `decoder` (a `vae.Decoder`) has only bounded temporal layers (convolutions), so it can stream."""
    blocks = list(decoder.mid) + [b for level in decoder.up for b in level.blocks]
    return all(b.temporal is None or b.temporal.attn is None for b in blocks)


class DecoderStream:
    """A `vae.Decoder` fed latent chunks in order: `push(z)` returns the pixel frames that are final so far
    (B, 3, n, H, W), or None; after the last chunk, `push(None, final=True)` flushes the frames still held (a
    centred decoder holds its receptive field) until all 1 + rate·(f − 1) frames are out. With `chunk`, a layer
    passes on at most a chunk's worth of frames (at its frame rate) per call, so the flush runs in chunk-sized
    pieces too."""

    def __init__(self, decoder: nn.Module, chunk: int | None = None):
        if not streamable(decoder):
            raise ValueError("a decoder with temporal attention cannot stream; decode it in overlapping chunks")
        self.decoder = d = decoder
        rate = 1  # frames per latent frame at the current layer
        self.mid = [BlockStream(b, chunk) for b in d.mid]
        self.up = []
        for level in d.up:
            blocks = [BlockStream(b, chunk and chunk * rate) for b in level.blocks]
            self.up.append((blocks, UpsampleStream() if level.temporal_up else None))
            rate *= 2 if level.temporal_up else 1
        self.rate = rate  # output frames per latent frame after the first

    def push(self, z: Segment, final: bool = False) -> Segment:
        d = self.decoder
        x = _per_frame(d.conv_in, None if z is None else rearrange(z, "b c f h w -> b f c h w"))  # (B, n, C, h, w)
        for block in self.mid:
            x, final = block(x, final)  # final: every frame before this layer is out
        for level, (blocks, up) in zip(d.up, self.up):
            for block in blocks:
                x, final = block(x, final)  # (B, n', C, H', W')
            if up is not None:
                x = up(x)
            if level.upsample is not None:
                x = _per_frame(lambda t, conv=level.upsample: conv(F.interpolate(t, scale_factor=2.0, mode="nearest")),
                               x)  # (B, n', C, 2H', 2W')
        x = _per_frame(lambda t: d.conv_out(F.silu(d.norm_out(t))), x)  # (B, n, 3, H, W)
        return None if x is None else rearrange(x, "b f c h w -> b c f h w")


def stream_decode(decoder: nn.Module, z: Tensor, chunk: int) -> Tensor:
    """z (B, C, f, h, w) → `decoder(z)` (B, 3, F, H, W), fed `chunk` latent frames at a time through a
    `DecoderStream`: each latent frame is decoded once, and memory holds about one chunk plus the caches."""
    stream, outs = DecoderStream(decoder, chunk), []
    for s in range(0, z.shape[2], chunk):
        outs.append(stream.push(z[:, :, s:s + chunk]))
    frames, done = 1 + stream.rate * (z.shape[2] - 1), sum(y.shape[2] for y in outs if y is not None)
    while done < frames:  # the frames held for look-ahead, a chunk's worth per layer and call
        y = stream.push(None, final=True)
        if y is not None:
            outs.append(y)
            done += y.shape[2]
    return torch.cat([y for y in outs if y is not None], dim=2)


__all__ = ["ConvCache", "DecoderStream", "stream_decode", "streamable"]
