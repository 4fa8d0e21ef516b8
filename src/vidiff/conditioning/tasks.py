"""What a model is conditioned on, and how a training batch or a user's request becomes a `Cond`.

`condition` strings name the kinds, joined by "+": "class", "text", "first_frame" (e.g.
"text+first_frame"). Training drops conditions at rate `cond_drop` (classifier-free guidance,
Ho & Salimans 2022 §3.2): class and text together through `Cond.drop` (the model swaps in the null
class / its learned null text), the first frame independently by zeroing its concat channels.
First-frame conditioning concatenates the known frames (zeros elsewhere) and a 0/1 frame mask to
x_t, as in VDM's and SVD's conditioning by concatenation. "trajectory" appends the clip's object track as
heat-map and flow channels (conditioning.trajectory) after any first-frame channels, dropped independently.

Super-resolution stages of a cascade (Imagen Video, Ho et al. 2022) are conditioned by
concatenation too: "tsr" (temporal SR) sees the low-fps video at every `SR_FACTOR`-th frame (zeros
elsewhere) plus the frame mask; "ssr" (spatial SR) sees the bilinearly upsampled low-res video with
Gaussian noise-conditioning augmentation (Cascaded Diffusion Models, Ho et al. 2021;
Imagen Video): training noises it to a random level s ~ U[0, NOISE_AUG_MAX), sampling to the fixed
NOISE_AUG_SAMPLE, and the level reaches the network as `Cond.noise_aug`. Condition dropout does not
touch the SR inputs (classifier-free guidance is not used for SR stages).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..diffusion.noise import rand, randn
from ..utils import VidiffError
from .cond import Cond
from .content import GEN1_KINDS, gen1_overrides, gen1_training_cond
from .image_embed import with_frame_embedding
from .trajectory import CHANNELS as TRAJECTORY_CHANNELS
from .trajectory import trajectory_concat

KINDS = ("class", "text", "first_frame", "tsr", "ssr", "trajectory", *GEN1_KINDS)
CONCAT_KINDS = ("first_frame", "tsr", "ssr", *GEN1_KINDS)  # conditions that fill Cond.concat: at most one per model
SR_KINDS = ("tsr", "ssr")
SR_FACTOR = 2  # each super-resolution stage doubles the frame count (tsr) or the height and width (ssr)
NOISE_AUG_MAX = 0.5  # training: ssr conditioning noised to s ~ U[0, NOISE_AUG_MAX) (σ up to sin(π/4) ≈ 0.71)
NOISE_AUG_SAMPLE = 0.1  # sampling: the fixed small level (σ = sin(0.05π) ≈ 0.16)
AUG_SEED_OFFSET = 1 << 40  # request side: augmentation noise of video i comes from seed + i + this offset


def parse_condition(condition: str | None) -> tuple[str, ...]:
    """"text+first_frame" -> ("text", "first_frame"); "none", "" and None -> ()."""
    if condition is None or condition.strip() in ("", "none"):
        return ()
    kinds = tuple(k.strip() for k in condition.split("+"))
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise VidiffError(f"unknown condition {bad[0]!r}; use none or any of {', '.join(KINDS)} joined by '+'")
    concat = [k for k in kinds if k in CONCAT_KINDS]
    if len(concat) > 1:
        raise VidiffError(f"conditions {' and '.join(concat)} both fill the concat channels; use at most one of "
                          f"{', '.join(CONCAT_KINDS)}")
    if "trajectory" in kinds and any(k in SR_KINDS for k in kinds):
        raise VidiffError("condition 'trajectory' cannot be combined with a super-resolution stage (tsr, ssr)")
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
    if "first_frame" in kinds or "tsr" in kinds:
        out["cond_channels"] = channels + 1  # known frames + their mask
    if "ssr" in kinds:
        out["cond_channels"] = channels  # the upsampled low-res video
    if "trajectory" in kinds:  # heat-map + flow channels after any first-frame channels (conditioning.trajectory)
        out["cond_channels"] = out.get("cond_channels", 0) + TRAJECTORY_CHANNELS
    out.update(gen1_overrides(kinds, channels))  # Gen-1: structure channels, content encoder and tokens
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


def resize_video(x: Tensor, size: tuple[int, int]) -> Tensor:
    """x (B, C, F, H, W) -> (B, C, F, h, w), frame by frame: bilinear, antialiased when shrinking."""
    b, c, frames, h, w = x.shape
    if (h, w) == tuple(size):
        return x
    shrink = size[0] < h or size[1] < w
    y = F.interpolate(x.transpose(1, 2).reshape(b * frames, c, h, w), size=tuple(size), mode="bilinear",
                      antialias=shrink, align_corners=False)  # (B·F, C, h, w)
    return y.reshape(b, frames, c, *size).transpose(1, 2)  # (B, C, F, h, w)


def noise_augment(x: Tensor, level: Tensor, noise: Tensor) -> Tensor:
    """Gaussian conditioning augmentation (Cascaded Diffusion Models, Ho et al. 2021): cos(πs/2) x + sin(πs/2) ε, the
    unclipped cosine schedule at s = `level` (B,), so s = 0 leaves x exactly unchanged."""
    phi = (level.to(x.dtype) * (math.pi / 2)).reshape(-1, *([1] * (x.dim() - 1)))  # (B, 1, 1, 1, 1)
    return torch.cos(phi) * x + torch.sin(phi) * noise


def tsr_concat(low: Tensor, factor: int = SR_FACTOR, frames: int | None = None) -> Tensor:
    """Low-fps video (B, C, K, H, W) at frames 0, factor, 2·factor, … of an F-frame video (F = K·factor by
    default), zeros elsewhere, plus the frame mask: (B, C + 1, F, H, W)."""
    frames = low.shape[2] * factor if frames is None else frames
    return known_frames_concat(low, frames, positions=range(0, frames, factor))


def ssr_concat(low: Tensor, size: tuple[int, int], level: Tensor, noise: Tensor) -> Tensor:
    """Low-res video (B, C, F, h, w) upsampled bilinearly to `size` and noise-augmented to `level` (B,)."""
    return noise_augment(resize_video(low, size), level, noise)  # (B, C, F, H, W)


def _check_factor(factor: int, *dims: int, what: str) -> None:
    if not isinstance(factor, int) or factor < 2:
        raise VidiffError(f"the super-resolution factor must be an integer >= 2; got {factor!r}")
    if any(d % factor for d in dims):
        raise VidiffError(f"{what} {'x'.join(map(str, dims))} is not divisible by the factor {factor}; "
                          f"use clips whose {what} is a multiple of {factor}")


def training_cond(kinds: Sequence[str], *, x0: Tensor, class_ids: Tensor | None = None,
                  captions: Sequence[str] | None = None, text_encoder=None, drop_prob: float = 0.1,
                  generator: torch.Generator | None = None, sr_factor: int = SR_FACTOR,
                  noise_aug_max: float = NOISE_AUG_MAX, image_embed: bool = False) -> Cond | None:
    """The Cond of a training batch x0 (B, C, F, H, W), with condition dropout at `drop_prob` (not
    applied to tsr/ssr); tsr keeps every `sr_factor`-th frame, ssr downsamples by `sr_factor` and
    upsamples back, noised to s ~ U[0, noise_aug_max) (Imagen Video); `image_embed` adds the first frame's
    embedding, dropped with the frame (conditioning.image_embed)."""
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
    if "class" in kinds or "text" in kinds or any(k in GEN1_KINDS for k in kinds):
        cond.drop = torch.rand(b, generator=generator) < drop_prob  # (B,)
    if "first_frame" in kinds:
        keep = (torch.rand(b, generator=generator) >= drop_prob).to(x0.dtype)  # (B,)
        cond.concat = known_frames_concat(x0[:, :, :1], x0.shape[2]) * keep[:, None, None, None, None]
        if image_embed:
            cond = with_frame_embedding(cond, x0[:, :, 0], b, dropped=keep == 0)
    if "trajectory" in kinds:  # the clip's own object track, dropped independently (zeros)
        keep = (torch.rand(b, generator=generator) >= drop_prob).to(x0.dtype)  # (B,)
        traj = trajectory_concat(x0) * keep[:, None, None, None, None]  # (B, TRAJECTORY_CHANNELS, F, H, W)
        cond.concat = traj if cond.concat is None else torch.cat([cond.concat, traj], 1)
    if "tsr" in kinds:
        frames = x0.shape[2]
        _check_factor(sr_factor, frames, what="the frame count")
        cond.concat = tsr_concat(x0[:, :, ::sr_factor], sr_factor, frames)  # (B, C + 1, F, H, W)
    if "ssr" in kinds:
        h, w = x0.shape[-2:]
        _check_factor(sr_factor, h, w, what="the frame size")
        low = resize_video(x0, (h // sr_factor, w // sr_factor))  # (B, C, F, H/k, W/k)
        cond.noise_aug = rand((b,), generator, x0) * noise_aug_max  # (B,) levels s
        cond.concat = ssr_concat(low, (h, w), cond.noise_aug, randn(x0.shape, generator, x0))  # (B, C, F, H, W)
    if any(k in GEN1_KINDS for k in kinds):  # Gen-1: structure of the clip, content from one of its frames
        cond.concat, cond.content = gen1_training_cond(kinds, x0, generator)
    return cond.to(x0.device)


def request_cond(kinds: Sequence[str], num: int, *, frames: int, prompt: str | None = None,
                 class_id: int | None = None, image: Tensor | None = None, text_encoder=None,
                 num_classes: int = 0, trajectory: Tensor | None = None, image_embed: bool = False) -> Cond | None:
    """The Cond for sampling `num` videos from a prompt / class id / first frame (C, H, W) in [-1, 1] /
    encoded trajectory (TRAJECTORY_CHANNELS, F, H, W); a condition the model does not take, or one it
    needs but did not get, is a one-line error. `image_embed`: the model also embeds the first frame
    (without one, its null embedding)."""
    sr = [k for k in kinds if k in SR_KINDS]
    if sr:
        what = "temporal" if sr[0] == "tsr" else "spatial"
        flag = "--time 2 --tsr-model" if sr[0] == "tsr" else "--space 2 --ssr-model"
        raise VidiffError(f"this model is a {what} super-resolution stage (condition {sr[0]!r}): it needs a "
                          f"low-res input video; use `vidiff upsample VIDEO {flag} MODEL` or `vidiff cascade`")
    if any(k in GEN1_KINDS for k in kinds):
        raise VidiffError("this model is a Gen-1 editing model: it needs an input video and a reference image; use "
                          "`vidiff edit VIDEO --content IMAGE --model MODEL --out OUT.mp4`")
    given = {"text": prompt is not None, "class": class_id is not None, "first_frame": image is not None,
             "trajectory": trajectory is not None}
    flags = {"text": "--prompt", "class": "--class", "first_frame": "--image", "trajectory": "--trajectory"}
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
        if image_embed:
            cond = with_frame_embedding(cond, None if image is None else image[None], num)
    if "trajectory" in kinds and (trajectory is not None or cond.concat is not None):  # a missing part is zeros
        ref = trajectory if trajectory is not None else cond.concat
        traj = (trajectory[None].expand(num, -1, -1, -1, -1) if trajectory is not None
                else ref.new_zeros(num, TRAJECTORY_CHANNELS, *ref.shape[-3:]))
        if "first_frame" in kinds and cond.concat is None:
            cond.concat = traj.new_zeros(num, 3 + 1, *traj.shape[-3:])  # no first frame: RGB + mask dropped
        cond.concat = traj if cond.concat is None else torch.cat([cond.concat, traj], 1)
    return cond


def sr_request_cond(kind: str, low: Tensor, *, factor: int = SR_FACTOR, noise_aug: float = NOISE_AUG_SAMPLE,
                    seed: int = 0) -> Cond:
    """The Cond that asks a super-resolution stage to upsample `low` (B, C, F, H, W) in [-1, 1] by
    `factor`: "tsr" -> F·factor frames, "ssr" -> (H·factor, W·factor), its concat noised to the fixed
    level `noise_aug` with noise of video i drawn from seed + i (+ AUG_SEED_OFFSET)."""
    if kind not in SR_KINDS:
        raise VidiffError(f"unknown super-resolution kind {kind!r}; use one of {', '.join(SR_KINDS)}")
    if low.dim() != 5:
        raise VidiffError(f"expected a low-res video (B, C, F, H, W); got shape {tuple(low.shape)}")
    _check_factor(factor, what="factor")
    if kind == "tsr":
        return Cond(concat=tsr_concat(low, factor))  # (B, C + 1, F·k, H, W)
    if not 0 <= noise_aug < 1:
        raise VidiffError(f"the noise-augmentation level must lie in [0, 1); got {noise_aug}")
    b, _, _, h, w = low.shape
    size = (h * factor, w * factor)
    noise = torch.stack([torch.randn((low.shape[1], low.shape[2], *size),
                                     generator=torch.Generator().manual_seed(seed + i + AUG_SEED_OFFSET))
                         for i in range(b)]).to(low)  # (B, C, F, H·k, W·k)
    level = torch.full((b,), float(noise_aug), device=low.device)  # (B,)
    return Cond(concat=ssr_concat(low, size, level, noise), noise_aug=level)
