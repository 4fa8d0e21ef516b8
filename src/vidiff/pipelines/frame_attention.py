"""Per-frame self-attention that reads other frames' keys and values, on vidiff and diffusers backbones.

Two modes, as in the papers that adapt an image model to video:
  "cross_frame"    every frame attends to the first frame's keys/values (Text2Video-Zero §3.3);
  "sparse_causal"  frame i attends to frames 0 and i − 1 (Tune-A-Video §4.1).

`frame_attention(model, mode)` is a context manager that swaps the self-attention processors of a
backbone for the duration of a call and restores the previous ones:
  * a vidiff backbone (UNet3D with per-frame spatial attention): `layers.set_attn_processor` on the
    role="spatial" layers with `CrossFrameAttnProcessor` / `SparseCausalAttnProcessor`;
  * a diffusers UNet2DConditionModel behind `SDUNet` (frames folded into the batch as '(b f)'):
    `unet.set_attn_processor` with `diffusers_frame_processor(mode, frames)`, an `AttnProcessor2_0`
    subclass that hands the other frames' hidden states to the key/value projections; text
    cross-attention is left as it is.
Processors hold no parameters, so state dicts never change.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Iterator

import torch
from einops import rearrange
from torch import Tensor, nn

from ..models.layers import Attention, AttnProcessor, CrossFrameAttnProcessor, SparseCausalAttnProcessor
from ..utils import VidiffError

MODES = ("cross_frame", "sparse_causal")
_VIDIFF = {"cross_frame": CrossFrameAttnProcessor, "sparse_causal": SparseCausalAttnProcessor}


def frame_context(h: Tensor, frames: int, mode: str) -> Tensor:
    """The key/value source of each frame: (B·F, L, D) hidden states → (B·F, L, D) frame 0's
    ("cross_frame") or (B·F, 2L, D) frames 0 and i − 1 concatenated along L ("sparse_causal";
    frame 0: itself twice)."""
    if h.shape[0] % frames:
        raise VidiffError(f"{h.shape[0]} rows are not a whole number of {frames}-frame clips")
    z = rearrange(h, "(b f) l d -> b f l d", f=frames)
    first = z[:, :1].expand_as(z)
    if mode == "cross_frame":
        return first.flatten(0, 1)
    previous = torch.cat([z[:, :1], z[:, :-1]], dim=1)
    return torch.cat([first, previous], dim=2).flatten(0, 1)  # (B·F, 2L, D)


@functools.cache
def _diffusers_processor_class() -> type:
    from diffusers.models.attention_processor import AttnProcessor2_0  # heavy optional dependency

    class FrameAttnProcessor(AttnProcessor2_0):
        """diffusers self-attention whose keys/values come from other frames (`frame_context`)."""

        def __init__(self, mode: str, frames: int):
            super().__init__()
            self.mode, self.frames = mode, frames

        def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                     *args, **kwargs):
            if encoder_hidden_states is None and not attn.is_cross_attention:  # self-attention only
                if hidden_states.ndim != 3 or attn.group_norm is not None or attn.spatial_norm is not None:
                    raise VidiffError(f"{self.mode.replace('_', '-')} attention needs token self-attention "
                                      "((B·F, L, D), no group/spatial norm), as in Stable Diffusion's "
                                      "transformer blocks")
                encoder_hidden_states = frame_context(hidden_states, self.frames, self.mode)  # (B·F, L|2L, D)
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)

    return FrameAttnProcessor


def diffusers_frame_processor(mode: str, frames: int):
    """A diffusers attention processor for `mode` on batches whose rows are '(b f)' with `frames` frames."""
    if mode not in MODES:
        raise VidiffError(f"unknown frame attention {mode!r}; choose one of {list(MODES)}")
    return _diffusers_processor_class()(mode, frames)


def _diffusers_unet(model: nn.Module):
    """The diffusers UNet2DConditionModel inside `model` (an SDUNet, or Video LDM layers around one), or None
    for a vidiff backbone."""
    return next((m for m in model.modules() if hasattr(m, "set_attn_processor") and hasattr(m, "attn_processors")),
                None)


def check_frame_attention(model: nn.Module, what: str) -> None:
    """Refuse a model without per-frame self-attention for `what` (the method needing it), in one line."""
    if _diffusers_unet(model) is not None:
        return
    layers = [m for m in model.modules() if isinstance(m, Attention) and m.role == "spatial"]
    if not layers:
        cfg = getattr(model, "config", None)
        detail = (f" (spatial_attention={cfg.spatial_attention!r}, attention_levels={list(cfg.attention_levels)}, "
                  f"mid_attention={cfg.mid_attention})") if hasattr(cfg, "attention_levels") else ""
        raise VidiffError(f"{what} needs per-frame spatial self-attention, which this model lacks{detail}; use an "
                          "image model with spatial_attention='frame' and at least one attention level")


@contextlib.contextmanager
def frame_attention(model: nn.Module, mode: str | None, frames: int) -> Iterator[None]:
    """Within the block, `model`'s per-frame self-attention runs in `mode` (None: unchanged) on clips of
    `frames` frames; the previous processors are restored afterwards."""
    if mode is None:
        yield
        return
    if mode not in MODES:
        raise VidiffError(f"unknown frame attention {mode!r}; choose one of {list(MODES)}")
    check_frame_attention(model, mode.replace("_", "-") + " attention")
    unet = _diffusers_unet(model)
    if unet is not None:
        previous = unet.attn_processors
        unet.set_attn_processor(diffusers_frame_processor(mode, frames))
        try:
            yield
        finally:
            unet.set_attn_processor(previous)
        return
    layers = [m for m in model.modules() if isinstance(m, Attention) and m.role == "spatial"]
    previous = [layer.processor for layer in layers]
    for layer in layers:
        layer.processor = _VIDIFF[mode]()
    try:
        yield
    finally:
        for layer, processor in zip(layers, previous):
            layer.processor = processor if processor is not None else AttnProcessor()
