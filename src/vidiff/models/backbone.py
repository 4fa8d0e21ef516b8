"""`Backbone`: what vidiff's video backbones share — the conditioning embedders, `embed()`, and the forward
prologue that checks the input and turns `Cond` into input channels, a global embedding and `keep`."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..conditioning.cond import Cond
from ..conditioning.content import ContentEncoder, encode_content
from ..utils import VidiffError
from .layers import (CrossAttention, NullCondition, TimestepEmbedder, apply_null_condition, concat_condition,
                     embed_conditions, self_condition, timestep_embedding)


class MicroEmbedder(nn.Module):
    """Micro-conditions (B, K) → (B, dim): each value's sinusoidal features (in its own units, no time
    scaling), concatenated and mapped by an MLP — Stable Video Diffusion's `add_time_proj` +
    `add_embedding` over its added time ids (fps − 1, motion bucket, noise augmentation). The last layer
    starts at zero, so adding micro-conditions to a trained model leaves its output unchanged at first."""

    def __init__(self, num: int, freq_dim: int, dim: int):
        super().__init__()
        self.num, self.freq_dim = num, freq_dim
        self.fc1 = nn.Linear(num * freq_dim, dim)
        self.fc2 = nn.Linear(dim, dim)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, micro: Tensor) -> Tensor:
        b = micro.shape[0]
        h = timestep_embedding(micro.reshape(-1).float(), self.freq_dim).reshape(b, -1)  # (B, K·freq_dim)
        return self.fc2(F.silu(self.fc1(h.to(self.fc1.weight.dtype))))  # (B, dim)


class Backbone(nn.Module):
    """Base of `UNet3D` and `DiT`: `forward(x, t, cond) -> Tensor`, x (B, C, F, H, W), t (B,) in [0, 1].

    A subclass sets `self.config` (fields in_channels, self_cond, cond_channels, num_classes, text_dim,
    gradient_checkpointing, micro_conds), calls `init_conditioning` where its embedders belong, implements
    `check_size`, and may override `image_keep` (how it supports `Cond.is_image`).
    """

    config: Any

    def init_conditioning(self, freq_dim: int, width: int) -> None:
        """Embedders of t, class ids, pooled text, noise augmentation and `micro_conds` micro-conditions into
        `width`, and the null text."""
        cfg = self.config
        self.time_embed = TimestepEmbedder(freq_dim, width)
        self.class_embed = nn.Embedding(cfg.num_classes + 1, width) if cfg.num_classes else None
        self.pooled_proj = nn.Linear(cfg.text_dim, width) if cfg.text_dim else None
        self.null_cond = NullCondition(cfg.text_dim) if cfg.text_dim else None
        self.noise_aug_embed = TimestepEmbedder(freq_dim, width) if cfg.cond_channels else None
        self.content_encoder = ContentEncoder(cfg.content_channels, cfg.text_dim) if cfg.content_channels else None
        micro = getattr(cfg, "micro_conds", 0)
        if micro:  # only models built with micro-conditions own the module (older checkpoints load unchanged)
            self.micro_embed = MicroEmbedder(micro, freq_dim, width)

    def conditioning_outputs(self) -> list[str]:
        """Names of the last tensors on the paths by which text, an embedded image or the concat condition's
        noise level reach the features: every cross-attention's output projection, the pooled projection into
        the time embedding and the noise-augmentation embedder's last layer. At zero those paths add nothing
        (`training.surgery.init_weights_from` zeroes the ones its checkpoint lacks, so a fine-tune that adds
        them starts as the checkpoint's model whatever the noise level, as `MicroEmbedder` does by
        construction)."""
        names = [f"{name}.to_out.{p}" for name, m in self.named_modules() if isinstance(m, CrossAttention)
                 for p in ("weight", "bias")]
        names += ["pooled_proj.weight", "pooled_proj.bias"] if self.pooled_proj is not None else []
        return names + (["noise_aug_embed.fc2.weight", "noise_aug_embed.fc2.bias"]
                        if self.noise_aug_embed is not None else [])

    @property
    def input_channels(self) -> int:
        """Channels of the stem's input: x_t [, the previous x̂₀ (self_cond)] [, Cond.concat]."""
        cfg = self.config
        return cfg.in_channels * (2 if cfg.self_cond else 1) + cfg.cond_channels

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute block activations in backward to save memory (Chen et al. 2016)."""
        self.gradient_checkpointing = enabled

    def check_size(self, frames: int, height: int, width: int) -> None:
        """Raise VidiffError unless (F, H, W) passes through the network unchanged."""
        raise NotImplementedError

    def image_keep(self, is_image: Tensor, dtype) -> Tensor | None:
        """(B,) keep = 1 for video samples, 0 for `Cond.is_image` ones (VDM joint image–video training)."""
        return (~is_image.bool()).to(dtype)

    def embed(self, t: Tensor, cond: Cond, batch: int) -> Tensor:
        """emb(t) + emb(class) + proj(pooled) + emb(noise_aug) [+ emb(micro)], (B, width): the global
        conditioning vector."""
        emb = embed_conditions(t, cond, batch, time_embed=self.time_embed, class_embed=self.class_embed,
                               pooled_proj=self.pooled_proj, noise_aug_embed=self.noise_aug_embed,
                               num_classes=self.config.num_classes)
        k = getattr(self.config, "micro_conds", 0)
        if not k:
            if cond.micro is not None:
                raise VidiffError("cond.micro given but the model has micro_conds=0; train it with micro-conditions "
                                  "(vidiff train --micro ...)")
            return emb
        if cond.micro is None:
            raise VidiffError(f"this model is conditioned on {k} micro-condition(s) (cond.micro of shape (B, {k})); "
                              "give them (vidiff sample --fps / --motion-bucket / --speed)")
        micro = torch.as_tensor(cond.micro, device=emb.device)
        if micro.shape != (batch, k):
            raise VidiffError(f"cond.micro must have shape (B, K) = ({batch}, {k}); got {tuple(micro.shape)}")
        return emb + self.micro_embed(micro)

    def prologue(self, x: Tensor, t: Tensor, cond: Cond | None) -> tuple[Tensor, Cond, Tensor, Tensor | None]:
        """Check x (B, C, F, H, W); apply the CFG null condition; append the self-conditioning and concat
        channels. Returns (x (B, C_in, F, H, W), cond, emb (B, width), keep (B,) or None)."""
        cfg = self.config
        cond = cond if cond is not None else Cond()
        if x.dim() != 5:
            raise VidiffError(f"expected video of shape (B, C, F, H, W), got {tuple(x.shape)}")
        b, c, frames, h, w = x.shape  # (B, C, F, H, W)
        self.check_size(frames, h, w)
        if c != cfg.in_channels:
            raise VidiffError(f"expected {cfg.in_channels} input channels, got {c}")
        cond = encode_content(cond, self.content_encoder)  # Gen-1 / i2v: reference or first frame -> tokens, pooled
        if self.content_encoder is not None and cond.text is None:
            raise VidiffError("this model embeds an image (content_channels > 0) but the cond has none; give "
                              "cond.content (its reference or first frame) or the null (conditioning.image_embed)")
        cond = apply_null_condition(cond, self.null_cond, cfg.num_classes)  # CFG: flagged samples -> null
        x = self_condition(x, cond, cfg.self_cond)  # (B, C [+ C], F, H, W)
        x = concat_condition(x, cond, cfg.cond_channels)  # (B, C_in, F, H, W)
        if cond.text is not None and not cfg.text_dim:
            raise VidiffError("cond.text given but the model has text_dim=0; set text_dim in the model config")
        keep = None if cond.is_image is None else self.image_keep(cond.is_image, x.dtype)  # (B,)
        return x, cond, self.embed(t, cond, b), keep
