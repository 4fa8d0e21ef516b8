"""The conditioning frame's image embedding of an image-to-video model (Stable Video Diffusion, Blattmann et al.
2023b §4): besides the first frame concatenated to every frame (`tasks.known_frames_concat`), every
cross-attention layer attends to tokens embedding that frame and its pooled vector joins the time embedding.

    vidiff train --data DIR --condition first_frame --image-embed --schedule edm --micro fps,motion ...
    vidiff sample --model RUN --image first.png

SVD embeds the frame with a frozen CLIP image encoder; vidiff trains the `ContentEncoder` of Gen-1
(`conditioning.content`) jointly with the backbone: the model config sets `content_channels` (and `text_dim`
to the tokens' width), the backbone owns the encoder and turns `Cond.content` into `Cond.text` tokens and
`Cond.pooled`. The tokens come from global pooling, so they say what the frame looks like; the concatenated
frame says where.

The embedding is of the frame in the model's own space, the frame the concat carries: the RGB frame for a
pixel model, its latent for a latent model (so a latent cache trains it without pixels and a request encodes
the image once). It is of the clean frame: noise augmentation (`--cond-noise-aug`) touches only the concat.

Classifier-free guidance drops the embedding with the frame: a training sample whose first frame is dropped
(zeros in the concat) is flagged in `Cond.drop`, and the backbone swaps its tokens and pooled vector for the
model's null condition (`models.layers.NullCondition`, as for text and Gen-1 content); the unconditional branch
(`null_like`) and a request without an image are that null. `Cond.drop` nulls class and text too, so an
embedded first frame combines with neither.

Every path that samples such a model completes its Cond here (`frame_embedding_cond`): a request with a frame
embeds it (`with_frame_embedding`, via `tasks.request_cond`), a window sampled with no conditioning frame
(`vidiff extend` / `interpolate` without a Cond, a long video's windows) gets the null embedding, and a long
video's windows that do not hold the frame drop its embedding with it (`drop_unheld_frames`), as training does.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
from torch import Tensor

from ..utils import VidiffError
from .cond import Cond
from .content import CONTENT_DIM


def check_image_embed(image_embed: bool, kinds: Sequence[str]) -> None:
    """One-line errors for `--image-embed` on a condition it cannot embed."""
    if not image_embed:
        return
    if "first_frame" not in kinds:
        raise VidiffError("--image-embed embeds the conditioning first frame: give --condition first_frame")
    shared = [k for k in ("class", "text") if k in kinds]
    if shared:
        raise VidiffError(f"--image-embed cannot be combined with condition {shared[0]!r} (the frame's embedding is "
                          "dropped for guidance through the same null condition); use --condition first_frame "
                          "[+trajectory]")


def image_embed_overrides(channels: int) -> dict:
    """Backbone config fields of a model that embeds its `channels`-channel conditioning frame."""
    return {"text_dim": CONTENT_DIM, "content_channels": channels}


def embeds_first_frame(kinds: Sequence[str], model_config) -> bool:
    """True for a first-frame model whose backbone embeds the frame (it owns a content encoder)."""
    return "first_frame" in kinds and bool(getattr(model_config, "content_channels", 0))


def frame_embedding_cond(cond: Cond | None, kinds: Sequence[str], model_config, num: int) -> Cond | None:
    """`cond` for `num` samples of a model: unchanged (the same object) unless the model embeds its first frame
    and `cond` carries no frame at all (no concat, no content, no tokens); then `cond` with the null embedding,
    the model's null condition, as its concat reads zeros. A concat without the embedding is left to the
    backbone, which refuses it in one line."""
    if not embeds_first_frame(kinds, model_config):
        return cond
    if cond is not None and (cond.content is not None or cond.text is not None or cond.concat is not None):
        return cond
    return with_frame_embedding(dataclasses.replace(cond) if cond is not None else Cond(), None, num)


def drop_unheld_frames(cond: Cond, starts: Sequence[int]) -> Cond:
    """A long video's window Conds (one per window, starting at frame `starts`[i]) with the first frame's
    embedding dropped where the window does not hold that frame (start > 0): its concat has no known frame
    there, and training drops the embedding with the frame. Conds without an embedded frame are unchanged."""
    if cond.content is None:
        return cond
    unheld = torch.tensor([s > 0 for s in starts], device=cond.content.device)  # (n,)
    drop = unheld if cond.drop is None else cond.drop.bool() | unheld
    return dataclasses.replace(cond, drop=drop)


def with_frame_embedding(cond: Cond, frame: Tensor | None, num: int, dropped: Tensor | None = None) -> Cond:
    """`cond` carrying the conditioning frame (1 or `num`, C, H, W) as `content`, flagged in `drop` where
    `dropped` (num,) says the frame was dropped (training) or nowhere (a request). Without a frame: the null
    embedding (zero tokens and pooled vector with `drop` set, which the backbone replaces by its null)."""
    if frame is None:
        cond.text = torch.zeros(num, 1, CONTENT_DIM)  # (num, 1, D): replaced by the null token
        cond.pooled = torch.zeros(num, CONTENT_DIM)  # (num, D)
        cond.drop = torch.ones(num, dtype=torch.bool)
        return cond
    if frame.dim() != 4:
        raise VidiffError(f"the conditioning frame must be (B, C, H, W); got shape {tuple(frame.shape)}")
    cond.content = frame.expand(num, -1, -1, -1)  # (num, C, H, W)
    cond.drop = (dropped.bool() if dropped is not None
                 else torch.zeros(num, dtype=torch.bool, device=frame.device))  # (num,)
    return cond
