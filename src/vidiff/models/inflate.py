"""Inflate an image U-Net into a video UNet3D (VDM §3; Make-A-Video §3.2; Tune-A-Video).

The 2D layers keep their weights; the new temporal layers start as the identity (temporal
attention with a zero output projection, temporal convs with a centred identity tap, k×k×k kernels
with the 2D kernel in their centre time slice, Video LDM's α-merged blocks with a zero last layer),
so at initialisation the video model equals the image model applied to every frame.

Sources:
  * a `UNet3D` with temporal="none" (or its state dict): `inflate(state, cfg)`;
  * a diffusers `UNet2DModel` folder (config.json + diffusion_pytorch_model.safetensors), read
    without importing diffusers: `inflate_from_diffusers(folder, temporal="attention")`.
    Supported subset: DownBlock2D/AttnDownBlock2D, UpBlock2D/AttnUpBlock2D mirrored,
    UNetMidBlock2D, conv down/up-sampling, positional timestep embedding with
    flip_sin_to_cos=True and freq_shift=0, GroupNorm, SiLU, no class embedding. The video
    model at time t matches diffusers' model at `timestep = 1000·t`.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..checkpoint import load_state_dict
from ..utils import VidiffError
from .unet3d import UNet3D, UNet3DConfig, is_temporal_key

DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"


def inflate(image_state: dict[str, Tensor], cfg: UNet3DConfig) -> UNet3D:
    """A UNet3D (config `cfg`) whose 2D layers come from `image_state`, temporal layers at identity."""
    model = UNet3D(cfg)
    target = model.state_dict()
    new: dict[str, Tensor] = {}
    used: set[str] = set()
    for key, value in target.items():
        src_key = key
        if key not in image_state and key.rsplit(".", 2)[-2] == "conv":  # VideoConv3d wraps its Conv3d as `.conv`
            src_key = key.rsplit(".", 2)[0] + "." + key.rsplit(".", 1)[-1]
        src = image_state.get(src_key)
        used.add(src_key)
        if src is None:
            if is_temporal_key(key):
                continue  # new temporal layer: keep its identity initialisation
            raise VidiffError(f"the image model has no weight for {key}; its config must match the video "
                              "config apart from `temporal`")
        if src.dim() == 4 and value.dim() == 5:  # 2D kernel → k×k×k kernel, centre (causal: last) time slice
            k = value.shape[2]
            centre = k - 1 if cfg.causal else k // 2
            full = torch.zeros_like(value)
            full[:, :, centre] = src
            src = full
        if src.shape != value.shape:
            raise VidiffError(f"shape mismatch for {key}: image model {tuple(src.shape)} vs video model "
                              f"{tuple(value.shape)}")
        new[key] = src
    unexpected = sorted(set(image_state) - used)
    if unexpected:
        raise VidiffError(f"unexpected image weights {unexpected[:3]}; the image config must match the video config")
    model.load_state_dict(new, strict=False)
    return model


# ----------------------------------------------------------------------------- diffusers UNet2DModel


def _require(dcfg: dict, key: str, allowed: tuple, default: Any) -> None:
    value = dcfg.get(key, default)
    if value not in allowed:
        raise VidiffError(f"unsupported UNet2DModel config {key}={value!r}; inflation supports {list(allowed)}")


def unet2d_to_unet3d_config(dcfg: dict, **overrides: Any) -> UNet3DConfig:
    """The UNet3DConfig whose 2D layers mirror a diffusers UNet2DModel config (see the module docstring)."""
    _require(dcfg, "time_embedding_type", ("positional",), "positional")
    _require(dcfg, "flip_sin_to_cos", (True,), True)
    _require(dcfg, "freq_shift", (0,), 0)
    _require(dcfg, "center_input_sample", (False,), False)
    _require(dcfg, "mid_block_type", ("UNetMidBlock2D",), "UNetMidBlock2D")
    _require(dcfg, "downsample_type", ("conv",), "conv")
    _require(dcfg, "upsample_type", ("conv",), "conv")
    _require(dcfg, "downsample_padding", (1,), 1)
    _require(dcfg, "act_fn", ("silu", "swish"), "silu")
    _require(dcfg, "resnet_time_scale_shift", ("default",), "default")
    _require(dcfg, "mid_block_scale_factor", (1, 1.0), 1)
    _require(dcfg, "class_embed_type", (None,), None)
    _require(dcfg, "num_class_embeds", (None,), None)
    boc = list(dcfg.get("block_out_channels", (224, 448, 672, 896)))
    _require(dcfg, "time_embedding_dim", (None, 4 * boc[0]), None)
    groups = dcfg.get("norm_num_groups", 32)
    _require(dcfg, "attn_norm_num_groups", (None, groups), None)
    if any(c % boc[0] for c in boc):
        raise VidiffError(f"block_out_channels {boc} must be multiples of the first entry to inflate")
    down = list(dcfg.get("down_block_types", ()))
    up = list(dcfg.get("up_block_types", ()))
    ok_down, ok_up = {"DownBlock2D": False, "AttnDownBlock2D": True}, {"UpBlock2D": False, "AttnUpBlock2D": True}
    bad = [t for t in down if t not in ok_down] + [t for t in up if t not in ok_up]
    if bad:
        raise VidiffError(f"unsupported UNet2DModel block types {bad}; supported: {list(ok_down) + list(ok_up)}")
    attn = tuple(i for i, t in enumerate(down) if ok_down[t])
    if tuple(ok_up[t] for t in up) != tuple(ok_down[t] for t in reversed(down)) or len(down) != len(boc):
        raise VidiffError("up_block_types must mirror down_block_types (attention at the same levels) to inflate")
    head_dim = dcfg.get("attention_head_dim", 8) or max(boc)  # None: one head per layer
    if groups is None or any(c % groups for c in boc):
        raise VidiffError(f"norm_num_groups={groups} must divide every block_out_channels entry")
    base = UNet3DConfig(
        in_channels=dcfg.get("in_channels", 3), out_channels=dcfg.get("out_channels", 3),
        base_channels=boc[0], channel_mults=tuple(c // boc[0] for c in boc),
        num_res_blocks=dcfg.get("layers_per_block", 2), attention_levels=attn,
        mid_attention=dcfg.get("add_attention", True), head_dim=head_dim, norm_groups=groups,
        norm_eps=float(dcfg.get("norm_eps", 1e-5)), dropout=float(dcfg.get("dropout", 0.0)),
    )
    return dataclasses.replace(base, **overrides)


def _rename(key: str) -> str | None:
    """diffusers UNet2DModel key → UNet3D key ('' prefix parts only; q/k/v are fused separately)."""
    p = key.split(".")
    head = {"conv_in": "conv_in", "conv_out": "conv_out", "conv_norm_out": "norm_out"}
    if p[0] in head:
        return ".".join([head[p[0]], *p[1:]])
    if p[0] == "time_embedding":
        return ".".join(["time_embed", {"linear_1": "fc1", "linear_2": "fc2"}[p[1]], *p[2:]])
    res = {"norm1": "norm1", "conv1": "conv1", "time_emb_proj": "time_proj", "norm2": "norm2",
           "conv2": "conv2", "conv_shortcut": "skip"}
    attn = {"group_norm": "norm", "to_out": "attn.to_out"}
    if p[0] in ("down_blocks", "up_blocks"):
        side = "down" if p[0] == "down_blocks" else "up"
        if p[2] == "resnets":
            return ".".join([side, p[1], "blocks", p[3], "res", res[p[4]], *p[5:]])
        if p[2] == "attentions":
            rest = p[5:] if p[4] != "to_out" else p[6:]  # to_out.0.weight
            return ".".join([side, p[1], "blocks", p[3], "attn", attn.get(p[4], p[4]), *rest])
        if p[2] in ("downsamplers", "upsamplers"):
            return ".".join([side, p[1], "downsample" if side == "down" else "upsample", *p[4:]])
    if p[0] == "mid_block":
        if p[1] == "resnets":
            return ".".join(["mid", p[2], "res", res[p[3]], *p[4:]])
        if p[1] == "attentions":
            rest = p[4:] if p[3] != "to_out" else p[5:]
            return ".".join(["mid", "0", "attn", attn.get(p[3], p[3]), *rest])
    return None


def diffusers_unet2d_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a diffusers UNet2DModel state dict to UNet3D keys; to_q/to_k/to_v are fused into to_qkv."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        name = _rename(key)
        if name is None:
            raise VidiffError(f"cannot map UNet2DModel weight {key!r}; "
                              "see vidiff.models.inflate for the supported subset")
        out[name] = value
    for key in [k for k in out if ".attn.to_q." in k]:
        stem, kind = key.split(".attn.to_q.")
        parts = [out.pop(f"{stem}.attn.to_{n}.{kind}") for n in ("q", "k", "v")]
        out[f"{stem}.attn.attn.to_qkv.{kind}"] = torch.cat(parts, dim=0)
    return out


def inflate_from_diffusers(folder: str | Path, **overrides: Any) -> UNet3D:
    """Build a UNet3D from a diffusers UNet2DModel folder; `overrides` set e.g. temporal="conv", causal=True."""
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise VidiffError(f"{folder} is not a diffusers model folder: config.json is missing")
    dcfg = json.loads(cfg_path.read_text())
    if dcfg.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise VidiffError(f"{folder} holds a {dcfg['_class_name']}; only UNet2DModel can be inflated")
    cfg = unet2d_to_unet3d_config(dcfg, **overrides)
    if cfg.patch_size != 1:
        raise VidiffError("patch_size must be 1 when inflating a UNet2DModel (its first conv sees raw pixels)")
    state = diffusers_unet2d_state_dict(load_state_dict(folder / DIFFUSERS_WEIGHTS))
    return inflate(state, cfg)
