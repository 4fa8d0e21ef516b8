"""Video LDM (Blattmann et al. 2023, "Align your Latents"): learn time on top of a frozen image model.

The image model is vidiff's `UNet3D` with `temporal="none"` (trained on single frames or images).
`video_ldm_from_image` builds the video model: the same config with `temporal="videoldm"` — a temporal
3D-conv block after every ResBlock and temporal attention after every block's spatial layers, each merged
with its input as z = α·z_spatial + (1 − α)·z_temporal with a learned α per layer (eq. 2; `AlphaBlend`) —
with every image weight copied exactly and the temporal layers at the identity, so at initialisation
the video model is the image model applied frame by frame. `select_parameters(model, "temporal")` names
the parameters to train; `set_trainable` freezes the rest (no gradients, so no optimizer state), which
keeps the image model bit-identical (`vidiff train --init-image MODEL --train temporal`).

`temporal="attention"` / `"conv"` give the VDM / Make-A-Video inflations of the same image model
(residual temporal layers without α), trained the same way.

A backbone built of diffusers blocks (Stable Diffusion's `UNet2DConditionModel` driven with the frames
folded into the batch, as `diffusers_io.SDUNet` does) gets the same layers from `VideoLDM`: forward hooks
run them after every `ResnetBlock2D` and `Transformer2DModel` of its down, mid and up blocks (where
AnimateDiff puts its motion modules), so the diffusers weights keep their names and values.
"""
from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any, Iterator

from torch import Tensor, nn

from ..conditioning.cond import Cond
from ..utils import VidiffError
from .inflate import inflate
from .layers import AlphaBlend, TemporalAttentionBlock, TemporalResBlock, VideoCtx
from .registry import load_model
from .temporal_mixers import MIXERS
from .unet3d import UNet3D

WHICH = ("all", "temporal", "spatial")
VIDEO_TEMPORAL = ("videoldm", "attention", "conv", *MIXERS)


def video_ldm_from_image(image: nn.Module | str | Path, temporal: str = "videoldm",
                         **overrides: Any) -> nn.Module:
    """The video model over an image model, at initialisation equal to it frame by frame.

    A UNet3D (or its checkpoint folder): a new UNet3D with the image weights copied exactly and new temporal
    layers (`temporal`, default Video LDM's α-merged blocks) at the identity; `overrides` may set config
    fields that add no weights, e.g. causal=True, temporal_pos="rope". A backbone of diffusers blocks (an
    SD UNet with frames folded into the batch): `VideoLDM(image, **overrides)`, which wraps it in place."""
    if isinstance(image, (str, Path)):
        image = load_model(image)
    if not isinstance(image, UNet3D) and _diffusers_blocks(image):
        if temporal != "videoldm":
            raise VidiffError(f"a diffusers backbone takes Video LDM's layers (temporal='videoldm'), not {temporal!r}")
        video = VideoLDM(image, **overrides)
        param = next(image.parameters())
        video.temporal.to(device=param.device, dtype=param.dtype)
        return video
    if not isinstance(image, UNet3D):
        raise VidiffError(f"the image model must be a vidiff UNet3D with temporal='none' or a backbone of diffusers "
                          f"UNet2DConditionModel blocks, got {type(image).__name__}")
    cfg = image.config
    if cfg.temporal != "none" or cfg.temporal_down_levels or cfg.spatial_attention != "frame":
        raise VidiffError(f"the image model must treat frames independently (temporal='none', spatial_attention="
                          f"'frame', no temporal_down_levels); got temporal={cfg.temporal!r}, spatial_attention="
                          f"{cfg.spatial_attention!r}, temporal_down_levels={list(cfg.temporal_down_levels)}")
    if temporal not in VIDEO_TEMPORAL:
        raise VidiffError(f"temporal={temporal!r} cannot be trained over a frozen image model; "
                          f"choose one of {list(VIDEO_TEMPORAL)}")
    video = inflate(image.state_dict(), dataclasses.replace(cfg, temporal=temporal, **overrides))
    param = next(image.parameters())
    return video.to(device=param.device, dtype=param.dtype)


def select_parameters(model: nn.Module, which: str = "all") -> list[str]:
    """Names of the parameters to train: "all"; "temporal", the layers that mix frames; "spatial", the rest
    (the image model). A model that does not separate the two, or has no temporal layers, is an error."""
    if which not in WHICH:
        raise VidiffError(f"unknown parameter selection {which!r}; choose one of {list(WHICH)}")
    names = [name for name, _ in model.named_parameters()]
    if which == "all":
        return names
    temporal_names = getattr(model, "temporal_parameter_names", None)
    if temporal_names is None:
        raise VidiffError(f"{type(model).__name__} does not keep its temporal layers apart from its spatial ones; "
                          "train a UNet3D video model (video_ldm_from_image) or train all parameters")
    temporal = set(temporal_names())
    if not temporal:
        raise VidiffError(f"the model has no temporal layers to train (temporal="
                          f"{getattr(getattr(model, 'config', None), 'temporal', None)!r}); start a video model "
                          "from this image model with --init-image (video_ldm_from_image)")
    return [name for name in names if (name in temporal) == (which == "temporal")]


def set_trainable(model: nn.Module, which: str = "all") -> list[nn.Parameter]:
    """Freeze every parameter outside `select_parameters(model, which)` (requires_grad=False: no gradients,
    so an optimizer built on the returned list keeps no state for them); returns the trainable ones."""
    chosen = set(select_parameters(model, which))
    trainable = []
    for name, p in model.named_parameters():
        p.requires_grad_(name in chosen)
        if name in chosen:
            trainable.append(p)
    return trainable


# ----------------------------------------------------------------------------- diffusers backbones

_DIFFUSERS_BLOCKS = {"ResnetBlock2D": "conv", "Transformer2DModel": "attention"}
_UNET_PARTS = ("down_blocks", "mid_block", "up_blocks")


def _diffusers_blocks(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """(name, module, "conv" | "attention") of the ResnetBlock2D / Transformer2DModel blocks of a diffusers
    UNet's down, mid and up blocks inside `model` (matched by class name: diffusers is not imported)."""
    found = []
    for name, module in model.named_modules():
        parts = name.split(".")
        kind = _DIFFUSERS_BLOCKS.get(type(module).__name__)
        if kind and len(parts) >= 2 and parts[-2] in ("resnets", "attentions") and set(parts) & set(_UNET_PARTS):
            found.append((name, module, kind))
    return found


def _run_temporal(module: nn.Module, args, output):
    """Forward hook: the block's output through its α-merged temporal layer while a video runs."""
    owner, key = module._vidiff_temporal
    ctx = owner.ctx
    if ctx is None:
        return None  # an image batch: the block's own output
    layer = owner.layers[key]
    if isinstance(output, tuple):  # Transformer2DModel(return_dict=False)
        return (layer(output[0], ctx), *output[1:])
    if hasattr(output, "sample"):  # Transformer2DModelOutput
        output.sample = layer(output.sample, ctx)
        return output
    return layer(output, ctx)  # (B·F, C, H, W)


class DiffusersTemporalLayers(nn.Module):
    """Video LDM's temporal layers for the diffusers blocks of `image`: an α-merged temporal 3D-conv block
    after each ResnetBlock2D and α-merged temporal attention after each Transformer2DModel, run by forward
    hooks while `video(batch, frames)` is active (outside it the blocks behave as before). Each block
    finds its layer through a plain attribute, so a deep copy of the whole video model (an EMA) is
    self-contained."""

    def __init__(self, image: nn.Module, head_dim: int = 64, temporal_pos: str = "bias", causal: bool = False):
        super().__init__()
        blocks = _diffusers_blocks(image)
        if not blocks:
            raise VidiffError(f"{type(image).__name__} has no diffusers ResnetBlock2D / Transformer2DModel blocks "
                              "in down/mid/up blocks to put temporal layers after")
        groups = getattr(getattr(image, "config", None), "norm_num_groups", None) or 32
        self.ctx: VideoCtx | None = None
        self.layers = nn.ModuleDict()
        for name, module, kind in blocks:
            if hasattr(module, "_vidiff_temporal"):
                raise VidiffError(f"{name} already has temporal layers; build VideoLDM from the image model once")
            channels = module.out_channels if kind == "conv" else module.in_channels
            if kind == "conv":
                layer = TemporalResBlock(channels, groups, causal=causal)
            else:
                heads = max(1, channels // head_dim)
                while channels % heads:
                    heads -= 1
                layer = TemporalAttentionBlock(channels, heads, temporal_pos, causal)
            key = name.replace(".", "_")
            self.layers[key] = AlphaBlend(layer)
            object.__setattr__(module, "_vidiff_temporal", (self, key))  # a plain attribute: no new state-dict keys
            module.register_forward_hook(_run_temporal)

    @contextlib.contextmanager
    def video(self, batch: int, frames: int, keep: Tensor | None = None) -> Iterator[None]:
        """Run the temporal layers on `(B·F, C, H, W)` features of `batch` clips of `frames` frames."""
        self.ctx = VideoCtx(batch, frames, None, keep=keep)
        try:
            yield
        finally:
            self.ctx = None


class VideoLDM(nn.Module):
    """A backbone of diffusers blocks that folds frames into the batch (`image`, e.g. an SD UNet as a vidiff
    backbone) with Video LDM's temporal layers: `forward(x (B, C, F, H, W), t, cond)` as `image`'s. The
    parameters under `image.` are the frozen image model, those under `temporal.` are new."""

    def __init__(self, image: nn.Module, head_dim: int = 64, temporal_pos: str = "bias", causal: bool = False):
        super().__init__()
        self.image = image
        self.temporal = DiffusersTemporalLayers(image, head_dim, temporal_pos, causal)

    def temporal_parameter_names(self) -> list[str]:
        """Names of the temporal layers' parameters; the rest is the image model."""
        return [name for name, _ in self.named_parameters() if name.startswith("temporal.")]

    def forward(self, x: Tensor, t: Tensor, cond: Cond | None = None) -> Tensor:
        if x.dim() != 5:
            raise VidiffError(f"expected video of shape (B, C, F, H, W), got {tuple(x.shape)}")
        keep = None
        if cond is not None and cond.is_image is not None:
            keep = (~cond.is_image.bool()).to(x.dtype)  # (B,): image samples skip the temporal layers
        with self.temporal.video(x.shape[0], x.shape[2], keep):
            return self.image(x, t, cond)  # (B, C, F, H, W)
