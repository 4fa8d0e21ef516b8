"""The sections a diffusion checkpoint records besides its network: how it was trained
(`DiffusionConfig`: schedule, parameterization, noise prior) and what it makes (`VideoFormat`).

Both are network-agnostic, so training, sampling and pipelines share them without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .noise import FrameNoise
from .schedule import get_schedule


@dataclass(frozen=True)
class DiffusionConfig:
    """How a backbone was trained: the noise schedule and what the network predicts."""

    schedule: str = "cosine"
    schedule_kwargs: dict = field(default_factory=dict)
    parameterization: str = "v"
    noise: str = "iid"  # the noise prior, correlated across frames or not (diffusion/noise.py)
    noise_alpha: float = 1.0

    def build_schedule(self):
        """The `Schedule` named by `schedule` with `schedule_kwargs` (e.g. {shift: 4})."""
        return get_schedule(self.schedule, **self.schedule_kwargs)

    def build_noise(self) -> FrameNoise:
        """The `FrameNoise` prior the model was trained with (iid unless the recipe chose PYoCo noise)."""
        return FrameNoise(self.noise, self.noise_alpha)


@dataclass(frozen=True)
class VideoFormat:
    """The video a model produces: channels, frames, size and playback rate."""

    channels: int = 3
    frames: int = 16
    size: int = 32
    fps: float = 8.0
