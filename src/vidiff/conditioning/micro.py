"""Micro-conditions (Stable Video Diffusion, Blattmann et al. 2023b, sec. 3 and 4): per-clip numbers the
backbone embeds like the timestep and adds to its global embedding (`Cond.micro`, (B, K); the model's
`micro_conds` = K). vidiff's kinds, in the order a recipe lists them:

  fps      the clip's frame rate (SVD feeds fps − 1; the constant offset is immaterial to an embedding)
  motion   the motion bucket in [0, 255] from the clip's optical flow (`data.clip_stats.motion_bucket`)
  speed    the object's displacement per frame in pixels of the training frames (the speed control of
           the video-generation textbook's SpeedController; shapes' metadata.jsonl records it)

A checkpoint records the kinds with the range and median of each over its training clips
(`micro_section`); a request outside the range is clamped to it with a notice, a missing value takes the
median. SVD's third added time id, the noise-augmentation strength of the conditioning frame, is
`Cond.noise_aug` (embedded by the backbone's own embedder): `augment_first_frame` noises the known frame.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from ..diffusion.samplers import sample_generators, stacked_randn
from ..utils import VidiffError, notice
from .cond import Cond
from .tasks import AUG_SEED_OFFSET, noise_augment

MICRO_KINDS = ("fps", "motion", "speed")
FLAGS = {"fps": "--fps", "motion": "--motion-bucket", "speed": "--speed"}
FIRST_FRAME_AUG_SAMPLE = 0.02  # sampling: the conditioning frame's noise-augmentation level (SVD's default 0.02)


def parse_micro(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """"fps,motion" -> ("fps", "motion"); "", "none" and None -> (). Unknown or repeated kinds: one line."""
    if text is None:
        return ()
    parts = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p and p.strip()]
    if parts == ["none"]:
        return ()
    bad = [p for p in parts if p not in MICRO_KINDS]
    if bad:
        raise VidiffError(f"unknown micro-condition {bad[0]!r}; use none or any of {', '.join(MICRO_KINDS)} "
                          "joined by ','")
    if len(set(parts)) != len(parts):
        raise VidiffError(f"micro-conditions listed twice in {','.join(parts)!r}; name each once")
    return tuple(parts)


def micro_tensor(kinds: Sequence[str], rows: Sequence[Mapping[str, float]]) -> Tensor:
    """(B, K) float32 micro-conditions from one {kind: value} row per sample."""
    return torch.tensor([[float(row[k]) for k in kinds] for row in rows], dtype=torch.float32)


def micro_section(kinds: Sequence[str], values: Mapping[str, Mapping[str, float]]) -> dict:
    """What a checkpoint records: {"kinds", "range": {kind: [lo, hi]}, "default": {kind: median}} over the
    training clips' values."""
    out = {"kinds": list(kinds), "range": {}, "default": {}}
    for k in kinds:
        col = np.array([float(v[k]) for v in values.values()])
        out["range"][k] = [float(col.min()), float(col.max())]
        out["default"][k] = float(np.median(col))
    return out


def request_micro(section: Mapping | None, num: int, **given: float | None) -> Tensor | None:
    """(num, K) micro-conditions for a request (keywords fps, motion, speed; None = the trained median);
    values outside the trained range are clamped to it with a notice. A value for a model without that
    micro-condition is a one-line error naming the flag."""
    kinds = list((section or {}).get("kinds") or [])
    extra = [k for k, v in given.items() if v is not None and k not in kinds]
    if extra:
        took = ", ".join(FLAGS[k] for k in kinds) or "none"
        raise VidiffError(f"{', '.join(FLAGS.get(k, k) for k in extra)}: this model was not trained with that "
                          f"micro-condition; it takes {took}")
    if not kinds:
        return None
    row = []
    for k in kinds:
        lo, hi = (float(v) for v in section["range"][k])
        value = given.get(k)
        if value is None:
            value = float(section["default"][k])
        elif not lo <= value <= hi:
            clamped = min(max(value, lo), hi)
            notice(f"{FLAGS[k]} {value:g} is outside the range this model was trained on [{lo:g}, {hi:g}]; "
                   f"using {clamped:g}")
            value = clamped
        row.append(float(value))
    return torch.tensor([row], dtype=torch.float32).expand(num, -1).clone()


def augment_first_frame(cond: Cond, level: Tensor, noise: Tensor, channels: int | None = None) -> Cond:
    """`cond` with its known frames in `concat` (B, C + 1 [+ more], F, H, W: C = `channels` frame channels,
    then their mask, then any other condition's channels) noised to `level` (B,) by Gaussian conditioning
    augmentation (SVD's noise augmentation of the conditioning frame; `tasks.noise_augment`), and
    `noise_aug` = level so the backbone knows it. Frames the mask leaves out (and conditions dropped for
    guidance) stay zero; the mask and any further channels are untouched. Without `concat` (no first frame
    given) only `noise_aug` is set."""
    level = level.to(device=noise.device, dtype=torch.float32)
    if cond.concat is None:
        return dataclasses.replace(cond, noise_aug=level)
    c = cond.concat.shape[1] - 1 if channels is None else channels
    known, mask, rest = cond.concat[:, :c], cond.concat[:, c:c + 1], cond.concat[:, c + 1:]  # (B, C|1|·, F, H, W)
    noised = noise_augment(known, level.to(known), noise[:, :c].to(known)) * mask
    return dataclasses.replace(cond, concat=torch.cat([noised, mask, rest], dim=1), noise_aug=level.to(known))


def request_svd_cond(cond: Cond | None, conditioning: Mapping, num: int, *, channels: int, seed: int = 0,
                     fps: float | None = None, motion: float | None = None, speed: float | None = None,
                     noise_aug: float | None = None) -> Cond | None:
    """A request's Cond completed for a model trained with micro-conditions and/or first-frame noise
    augmentation (a checkpoint's "conditioning" section): the micro-conditions (`request_micro`) and the first
    frame noised to `noise_aug` (default FIRST_FRAME_AUG_SAMPLE, clamped to the trained range with a notice),
    the noise of video i drawn from seed + i + AUG_SEED_OFFSET. Flags the model does not take: one line."""
    micro = request_micro(conditioning.get("micro"), num, fps=fps, motion=motion, speed=speed)
    top = float(conditioning.get("cond_noise_aug") or 0.0)
    if noise_aug is not None and not top:
        raise VidiffError("--noise-aug: this model was not trained with noise augmentation of the first frame "
                          "(vidiff train --cond-noise-aug)")
    if micro is None and not top:
        return cond
    cond = cond if cond is not None else Cond()
    if micro is not None:
        cond = dataclasses.replace(cond, micro=micro)
    if top:
        level = FIRST_FRAME_AUG_SAMPLE if noise_aug is None else float(noise_aug)
        if not 0 <= level < top:
            clamped = min(max(level, 0.0), top * 0.999)
            notice(f"--noise-aug {level:g} is outside the range this model was trained on [0, {top:g}); "
                   f"using {clamped:g}")
            level = clamped
        ref = cond.concat if cond.concat is not None else torch.zeros(num, channels, 1, 1, 1)
        noise = stacked_randn(torch.empty_like(ref), sample_generators(seed + AUG_SEED_OFFSET, num))
        cond = augment_first_frame(cond, torch.full((num,), level), noise, channels)
    return cond
