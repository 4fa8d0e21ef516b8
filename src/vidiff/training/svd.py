"""The Stable-Video-Diffusion-style additions to `vidiff train` (Blattmann et al. 2023b): micro-conditions
measured per training video (fps, motion bucket, speed; `conditioning.micro`, `data.clip_stats`) and noise
augmentation of the conditioning first frame; with `--schedule edm` the EDM training law
(`diffusion.loss.lognormal_times`, `edm_weight`) completes the recipe:

    vidiff train --data DIR --condition first_frame --schedule edm --micro fps,motion --cond-noise-aug 0.1 ...
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from ..conditioning.cond import Cond
from ..conditioning.micro import FIRST_FRAME_AUG_SAMPLE, augment_first_frame, micro_section, micro_tensor, parse_micro
from ..data.clip_stats import dataset_micro_values
from ..diffusion.noise import rand, randn
from ..utils import VidiffError

MICRO_CACHE = "micro_values.json"  # in the run folder: the per-video values, reused on resume
PREVIEW_AUG_SEED = 12345  # previews: the first frame's augmentation noise, fixed so previews compare over steps


def check_svd_recipe(micro: str, cond_noise_aug: float, kinds: Sequence[str], *, images: str | None = None) -> None:
    """One-line errors for micro-conditions or first-frame noise augmentation a recipe cannot train."""
    parse_micro(micro)
    if not 0.0 <= cond_noise_aug < 1.0:
        raise VidiffError(f"--cond-noise-aug is the largest noise level of the first frame, in [0, 1); got "
                          f"{cond_noise_aug}")
    if cond_noise_aug > 0 and "first_frame" not in kinds:
        raise VidiffError("--cond-noise-aug noises the conditioning first frame: give --condition first_frame")
    if parse_micro(micro) and images:
        raise VidiffError("--micro cannot be combined with --images (image stacks have no fps or motion)")


class SVDConditioning:
    """Adds a recipe's micro-conditions and first-frame noise augmentation to the Cond of training batches
    and previews. `values` maps a video's relative path to its {kind: value}."""

    def __init__(self, kinds: Sequence[str], values: dict[str, dict], cond_noise_aug: float = 0.0):
        self.kinds, self.values, self.cond_noise_aug = tuple(kinds), values, float(cond_noise_aug)

    @classmethod
    def for_recipe(cls, micro: str, cond_noise_aug: float, dataset, *, size: int, stride: int, fps: float,
                   out: str | Path) -> "SVDConditioning | None":
        """None when the recipe uses neither; else the values measured (or read from OUT/micro_values.json)."""
        kinds = parse_micro(micro)
        if not kinds and not cond_noise_aug:
            return None
        values = (dataset_micro_values(dataset, kinds, size=size, stride=stride, fps=fps,
                                       cache=Path(out) / MICRO_CACHE) if kinds else {})
        return cls(kinds, values, cond_noise_aug)

    def section(self) -> dict:
        """The checkpoint's conditioning entries: "micro" (kinds, trained range, median) and "cond_noise_aug"."""
        out = {"cond_noise_aug": self.cond_noise_aug}
        if self.kinds:
            out["micro"] = micro_section(self.kinds, self.values)
        return out

    def micro(self, paths: Sequence[str]) -> Tensor:
        """(B, K) micro-conditions of the batch's videos."""
        missing = [p for p in paths if p not in self.values]
        if missing:
            raise VidiffError(f"no micro-condition values for {missing[0]}; delete {MICRO_CACHE} in the run folder")
        return micro_tensor(self.kinds, [self.values[p] for p in paths])

    def apply(self, cond: Cond | None, x0: Tensor, paths: Sequence[str], generator: torch.Generator | None,
              level: float | None = None) -> Cond:
        """`cond` with micro-conditions and the first frame noised: to `level` when given (previews), else
        to s ~ U[0, cond_noise_aug) per sample drawn from `generator` (training)."""
        cond = cond if cond is not None else Cond()
        if self.cond_noise_aug > 0:
            b = x0.shape[0]
            s = torch.full((b,), level, device=x0.device) if level is not None else \
                rand((b,), generator, x0) * self.cond_noise_aug
            cond = augment_first_frame(cond, s, randn(cond.concat.shape, generator, cond.concat), x0.shape[1])
        if self.kinds:
            cond.micro = self.micro(paths).to(x0.device)
        return cond

    def preview(self, cond: Cond | None, x0: Tensor, paths: Sequence[str]) -> Cond:
        """The preview Cond: the videos' own micro-conditions and the sampling noise level of the first frame."""
        g = torch.Generator().manual_seed(PREVIEW_AUG_SEED)
        return self.apply(cond, x0, paths, g, level=min(FIRST_FRAME_AUG_SAMPLE, self.cond_noise_aug))
