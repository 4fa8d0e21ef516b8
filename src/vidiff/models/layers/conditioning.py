"""Conditioning glue shared by the backbones: the global embedding (time, class, pooled text, noise
augmentation), concat / self-conditioning input channels, and the learned null condition (CFG)."""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from ...utils import VidiffError


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
