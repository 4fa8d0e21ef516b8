"""Content of a Gen-1 edit (Esser et al. 2023): an image embedding of a reference frame, seen by the backbone
through cross-attention (`Cond.text`) and its pooled vector (`Cond.pooled`).

Gen-1 embeds the reference with a frozen CLIP image encoder; here a small convolutional `ContentEncoder` is
trained jointly with the diffusion model (it is a submodule of the backbone, built when the backbone config
sets `content_channels`). Its tokens come from global pooling only, so they carry what the reference looks
like (colour, shape, texture) and not where things are: the structure channels say where.

Training pairs (Gen-1 §3.3): structure and content come from the same clip, the content from a random frame
of it, so the model learns to draw the clip's appearance along its structure; at editing time the structure
comes from the input video and the content from the user's reference image.

Condition kinds: "gen1" (edge structure, 1 channel) and "gen1_flow" (optical-flow structure, 2 channels).
"""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from ..data.io import to_uint8
from ..utils import VidiffError
from .cond import Cond
from .structure import CHANNELS, degrade, extract

GEN1_KINDS = {"gen1": "edges", "gen1_flow": "flow"}  # condition kind -> the structure it is trained on
CONTENT_DIM = 64  # width of the content tokens (the backbone's text_dim)
CONTENT_TOKENS = 4


class ContentEncoder(nn.Module):
    """Reference image (B, C, H, W) in [-1, 1] -> content tokens (B, L, D): three strided convolutions, global
    mean- and max-pooling (translation-invariant), and an MLP to L tokens of width D."""

    def __init__(self, in_channels: int, dim: int, tokens: int = CONTENT_TOKENS, width: int = 32):
        super().__init__()
        self.tokens, self.dim = tokens, dim
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, width * 2, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(width * 2, width * 2, 3, stride=2, padding=1), nn.SiLU(),
        )
        self.to_tokens = nn.Sequential(nn.Linear(width * 4, dim * 2), nn.SiLU(), nn.Linear(dim * 2, tokens * dim))

    def forward(self, image: Tensor) -> Tensor:
        if image.dim() != 4:
            raise VidiffError(f"the content image must be (B, C, H, W); got shape {tuple(image.shape)}")
        h = self.features(image)  # (B, 2w, H/4, W/4)
        g = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)  # (B, 4w)
        return self.to_tokens(g).view(image.shape[0], self.tokens, self.dim)  # (B, L, D)


def encode_content(cond: Cond, encoder: nn.Module | None) -> Cond:
    """`cond` with `content` (B, C, H, W) replaced by its tokens in `text` (B, L, D) and their mean in `pooled`;
    unchanged when it has no content. The model's null condition (CFG) then applies to them as to text."""
    if cond.content is None:
        return cond
    if encoder is None:
        raise VidiffError("cond.content given but the model has content_channels=0; train it with --condition gen1")
    if cond.text is not None:
        raise VidiffError("cond.content and cond.text both fill the cross-attention tokens; give one of them")
    tokens = encoder(cond.content.to(next(encoder.parameters()).dtype))  # (B, L, D)
    return dataclasses.replace(cond, content=None, text=tokens, text_mask=None, pooled=tokens.mean(dim=1))


def structure_kind(kinds) -> str | None:
    """The structure ("edges" / "flow") of a Gen-1 condition among `kinds`, or None."""
    found = [GEN1_KINDS[k] for k in kinds if k in GEN1_KINDS]
    return found[0] if found else None


def gen1_overrides(kinds, channels: int) -> dict:
    """Backbone config fields of a Gen-1 model: structure concat channels, content tokens and the encoder."""
    kind = structure_kind(kinds)
    if kind is None:
        return {}
    others = [k for k in kinds if k not in GEN1_KINDS and k != "class"]
    if others:
        raise VidiffError(f"condition {'+'.join(kinds)}: gen1 combines only with class (its structure fills the "
                          f"concat channels and its content the cross-attention tokens); drop {others[0]}")
    if channels != 3:
        raise VidiffError("condition gen1 extracts structure from RGB frames; train it in pixel space "
                          "(without --latent)")
    return {"cond_channels": CHANNELS[kind], "text_dim": CONTENT_DIM, "content_channels": channels}


def structure_of(x0: Tensor, kind: str) -> Tensor:
    """Structure (B, S, F, H, W) in [-1, 1] of videos x0 (B, 3, F, H, W) in [-1, 1], at full strength."""
    frames = to_uint8(x0.detach().float().cpu())  # (B, F, H, W, 3)
    return torch.stack([extract(v, kind) for v in frames]).to(x0.device)  # (B, S, F, H, W)


def gen1_training_cond(kinds, x0: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """(concat, content) of a training batch x0 (B, 3, F, H, W): its structure degraded to strengths
    s ~ U[0, 1] (Gen-1's t_s) and one random frame of each clip as the content (B, 3, H, W)."""
    b, _, frames = x0.shape[:3]
    strength = torch.rand(b, generator=generator)  # (B,)
    concat = degrade(structure_of(x0, structure_kind(kinds)), strength)  # (B, S, F, H, W)
    pick = torch.randint(frames, (b,), generator=generator).to(x0.device)  # (B,)
    content = x0[torch.arange(b, device=x0.device), :, pick]  # (B, 3, H, W)
    return concat.to(x0.dtype), content
