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

from ..utils import VidiffError, notice
from .cond import Cond
from .tasks import noise_augment

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


def augment_first_frame(cond: Cond, level: Tensor, noise: Tensor) -> Cond:
    """`cond` with its known frames in `concat` (B, C + 1, F, H, W; the last channel their mask) noised to
    `level` (B,) by Gaussian conditioning augmentation (SVD's noise augmentation of the conditioning frame;
    `tasks.noise_augment`), and `noise_aug` = level so the backbone knows it. Frames the mask leaves out
    (and conditions dropped for guidance) stay zero; the mask channel is untouched."""
    if cond.concat is None:
        raise VidiffError("noise augmentation of the first frame needs a first-frame condition (cond.concat)")
    c = cond.concat.shape[1] - 1
    known, mask = cond.concat[:, :c], cond.concat[:, c:]  # (B, C, F, H, W), (B, 1, F, H, W)
    level = level.to(device=known.device, dtype=known.dtype)
    noised = noise_augment(known, level, noise[:, :c].to(known)) * mask
    return dataclasses.replace(cond, concat=torch.cat([noised, mask], dim=1), noise_aug=level)
