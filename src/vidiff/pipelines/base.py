"""The sampling pipeline: a trained backbone + its diffusion config -> uint8 videos.

A pipeline is the only layer that touches files: `VideoPipeline.from_pretrained(folder)` reads a
checkpoint folder (model.safetensors + config.json, the layout `vidiff train` writes).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from ..checkpoint import read_config
from ..conditioning import Cond
from ..config import config_from_dict, config_to_dict
from ..utils import VidiffError


@dataclass(frozen=True)
class DiffusionConfig:
    """How a backbone was trained: the noise schedule and what the network predicts."""

    schedule: str = "cosine"
    schedule_kwargs: dict = field(default_factory=dict)
    parameterization: str = "v"

    def build_schedule(self):
        from ..diffusion import get_schedule

        return get_schedule(self.schedule, **self.schedule_kwargs)


@dataclass(frozen=True)
class VideoFormat:
    """The video a model produces: channels, frames, size and playback rate."""

    channels: int = 3
    frames: int = 16
    size: int = 32
    fps: float = 8.0


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def sample_videos(
    model: torch.nn.Module,
    diffusion: DiffusionConfig,
    shape: tuple[int, ...],
    *,
    steps: int = 25,
    sampler: str = "ddim",
    seed: int = 0,
    cond: Cond | None = None,
    denoiser_wrapper: Callable | None = None,
    callback: Callable | None = None,
    **sampler_kwargs,
) -> Tensor:
    """Draw videos of `shape` (B, C, F, H, W) in [-1, 1].

    The initial noise of sample i depends only on `seed + i`, so a video does not change with the
    batch it is drawn in (deterministic samplers); stochastic samplers also draw from `seed`.
    """
    from ..diffusion import Denoiser, sample

    schedule = diffusion.build_schedule()
    noise = torch.stack([torch.randn(shape[1:], generator=torch.Generator().manual_seed(seed + i))
                         for i in range(shape[0])])
    generator = torch.Generator().manual_seed(seed)
    denoiser = Denoiser(model, parameterization=diffusion.parameterization)
    if denoiser_wrapper is not None:
        denoiser = denoiser_wrapper(denoiser)
    was_training = model.training
    model.eval()
    try:
        x0 = sample(denoiser, noise, schedule, steps, sampler=sampler, cond=cond,
                    callback=callback, generator=generator, **sampler_kwargs)
    finally:
        model.train(was_training)
    return x0.clamp(-1, 1)


class VideoPipeline:
    """Unconditional / conditional video generation from a trained checkpoint."""

    def __init__(self, model: torch.nn.Module, diffusion: DiffusionConfig, video: VideoFormat,
                 config: dict | None = None, name: str = ""):
        self.model = model.eval()
        self.diffusion = diffusion
        self.video = video
        self.config = config or {}
        self.name = name

    @classmethod
    def from_pretrained(cls, folder: str | Path, name: str = "") -> "VideoPipeline":
        from ..models import load_model

        folder = Path(folder)
        config = read_config(folder)
        for key in ("model", "diffusion", "video"):
            if key not in config:
                raise VidiffError(f"{folder}/config.json has no '{key}' section; is it a vidiff checkpoint?")
        model = load_model(folder)
        return cls(model, config_from_dict(DiffusionConfig, config["diffusion"]),
                   config_from_dict(VideoFormat, config["video"]), config, name or folder.name)

    def to_config(self) -> dict:
        return {**self.config, "diffusion": config_to_dict(self.diffusion), "video": config_to_dict(self.video)}

    def __call__(self, num: int = 1, *, frames: int | None = None, size: int | None = None,
                 steps: int = 25, sampler: str = "ddim", seed: int = 0, batch_size: int = 8,
                 cond: Cond | None = None, progress: bool = False, **kwargs) -> Tensor:
        """Generate `num` videos as a uint8 tensor (N, F, H, W, 3)."""
        from ..data.io import to_uint8

        frames = frames or self.video.frames
        size = size or self.video.size
        if hasattr(self.model, "check_size"):
            self.model.check_size(frames, size, size)
        if num < 1:
            raise VidiffError("--num must be at least 1")
        outs = []
        bar = _progress(num * steps, progress, f"sampling {num} video(s)")
        for start in range(0, num, batch_size):
            b = min(batch_size, num - start)
            shape = (b, self.video.channels, frames, size, size)
            c = cond.map(lambda v: v[start:start + b]) if cond is not None else None
            x = sample_videos(self.model, self.diffusion, shape, steps=steps, sampler=sampler,
                              seed=seed + start, cond=c,
                              callback=(lambda info, b=b: bar.update(b)) if bar else None, **kwargs)
            outs.append(torch.from_numpy(to_uint8(x)))
        if bar:
            bar.close()
        return torch.cat(outs)


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img·step", leave=False)
