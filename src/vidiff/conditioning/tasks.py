"""What a model is conditioned on, and how a training batch or a user's request becomes a `Cond`.

`condition` strings name the kinds, joined by "+": "class", "text", "first_frame" (e.g.
"text+first_frame"). Training drops conditions at rate `cond_drop` (classifier-free guidance,
Ho & Salimans 2022 §3.2): class and text together through `Cond.drop` (the model swaps in the null
class / its learned null text), the first frame independently by zeroing its concat channels.
First-frame conditioning concatenates the known frames (zeros elsewhere) and a 0/1 frame mask to
x_t, as in VDM's and SVD's conditioning by concatenation.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ..utils import VidiffError
from .cond import Cond

KINDS = ("class", "text", "first_frame")


def parse_condition(condition: str | None) -> tuple[str, ...]:
    """"text+first_frame" -> ("text", "first_frame"); "none", "" and None -> ()."""
    if condition is None or condition.strip() in ("", "none"):
        return ()
    kinds = tuple(k.strip() for k in condition.split("+"))
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise VidiffError(f"unknown condition {bad[0]!r}; use none or any of {', '.join(KINDS)} joined by '+'")
    return kinds


def model_overrides(kinds: Sequence[str], num_classes: int = 0, channels: int = 3) -> dict:
    """Backbone config fields a condition needs: num_classes, text_dim, cond_channels."""
    from .text import TEXT_DIM

    out = {}
    if "class" in kinds:
        if num_classes < 1:
            raise VidiffError("condition 'class' needs class ids: the data's metadata.jsonl has no 'class_id'")
        out["num_classes"] = num_classes
    if "text" in kinds:
        out["text_dim"] = TEXT_DIM
    if "first_frame" in kinds:
        out["cond_channels"] = channels + 1
    return out


def known_frames_concat(known: Tensor, frames: int, positions: Sequence[int] | None = None) -> Tensor:
    """known (B, C, K, H, W) placed at `positions` (default 0..K-1) of an F-frame video, zeros
    elsewhere, plus a mask channel: (B, C + 1, F, H, W)."""
    b, c, k, h, w = known.shape
    positions = list(range(k)) if positions is None else list(positions)
    if len(positions) != k or max(positions) >= frames:
        raise VidiffError(f"{k} known frame(s) at positions {positions} do not fit a {frames}-frame video")
    out = known.new_zeros(b, c + 1, frames, h, w)
    out[:, :c, positions] = known
    out[:, c, positions] = 1.0
    return out


def training_cond(kinds: Sequence[str], *, x0: Tensor, class_ids: Tensor | None = None,
                  captions: Sequence[str] | None = None, text_encoder=None, drop_prob: float = 0.1,
                  generator: torch.Generator | None = None) -> Cond | None:
    """The Cond of a training batch x0 (B, C, F, H, W), with condition dropout at `drop_prob`."""
    if not kinds:
        return None
    b = x0.shape[0]
    cond = Cond()
    if "class" in kinds:
        if class_ids is None or (class_ids < 0).any():
            raise VidiffError("condition 'class' needs a class_id for every video in metadata.jsonl")
        cond.class_ids = class_ids.long()
    if "text" in kinds:
        if captions is None or any(not c for c in captions):
            raise VidiffError("condition 'text' needs a caption for every video in metadata.jsonl")
        emb = text_encoder.encode(list(captions))
        cond.text, cond.text_mask, cond.pooled = emb.tokens, emb.mask, emb.pooled
    if "class" in kinds or "text" in kinds:
        cond.drop = torch.rand(b, generator=generator) < drop_prob  # (B,)
    if "first_frame" in kinds:
        keep = (torch.rand(b, generator=generator) >= drop_prob).to(x0.dtype)  # (B,)
        cond.concat = known_frames_concat(x0[:, :, :1], x0.shape[2]) * keep[:, None, None, None, None]
    return cond.to(x0.device)


def request_cond(kinds: Sequence[str], num: int, *, frames: int, prompt: str | None = None,
                 class_id: int | None = None, image: Tensor | None = None, text_encoder=None,
                 num_classes: int = 0) -> Cond | None:
    """The Cond for sampling `num` videos from a prompt / class id / first frame (C, H, W) in [-1, 1];
    a condition the model does not take, or one it needs but did not get, is a one-line error."""
    given = {"text": prompt is not None, "class": class_id is not None, "first_frame": image is not None}
    flags = {"text": "--prompt", "class": "--class", "first_frame": "--image"}
    for kind, on in given.items():
        if on and kind not in kinds:
            took = ", ".join(flags[k] for k in kinds) or "no condition (it is unconditional)"
            raise VidiffError(f"this model was not trained with {kind} conditioning, so {flags[kind]} cannot be "
                              f"used; it takes {took}")
    if not kinds:
        return None
    cond = Cond()
    if "class" in kinds:
        if class_id is not None and not 0 <= class_id < num_classes:
            raise VidiffError(f"--class must be in 0..{num_classes - 1}; got {class_id}")
        cid = num_classes if class_id is None else class_id  # no class: the null class
        cond.class_ids = torch.full((num,), cid, dtype=torch.long)
    if "text" in kinds:
        emb = text_encoder.encode([prompt or ""] * num)
        cond.text, cond.text_mask, cond.pooled = emb.tokens, emb.mask, emb.pooled
        cond.drop = torch.full((num,), prompt is None)  # no prompt: the learned null text
    if "first_frame" in kinds:
        if image is None:
            cond.concat = None
        else:
            cond.concat = known_frames_concat(image[None, :, None].expand(num, -1, 1, -1, -1), frames)
    return cond
