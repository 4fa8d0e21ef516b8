"""Pipelines: compose backbone + diffusion core + IO. Only this layer touches files."""
from __future__ import annotations

from pathlib import Path

from ..bundled import bundled_models, find_model
from .base import DiffusionConfig, VideoFormat, VideoPipeline, count_params, sample_videos
from ..models.diffusers_io import STABLE_DIFFUSION, is_diffusers_folder, read_layout
from .extend import extend, interpolate
from .image_to_video import ImageToVideo
from .latent import LatentVideoPipeline, is_latent_checkpoint
from .long import TemporalWindows, sample_long
from .stable_diffusion import StableDiffusion


def resolve_model(name_or_path: str) -> Path:
    """A checkpoint folder, or a model name on the search path (`vidiff.bundled`) -> the folder holding
    config.json; an unknown name is a one-line error listing the folders searched."""
    p = Path(name_or_path)
    if p.is_dir():
        return p
    return find_model(name_or_path)


def load_pipeline(name_or_path: str, **latent_options) -> VideoPipeline:
    """Load a bundled model (e.g. 'shapes-tiny') or a checkpoint folder as a VideoPipeline; a latent model
    (config.json with a 'latent' section) as a `LatentVideoPipeline` with its autoencoder, to which
    `latent_options` (decode_chunk, tile) go; a user's diffusers folder (`model_index.json`) as
    `StableDiffusion` or `ImageToVideo` (`load_diffusers_pipeline`)."""
    if is_diffusers_folder(name_or_path):
        return load_diffusers_pipeline(name_or_path)
    folder = resolve_model(name_or_path)
    if is_latent_checkpoint(folder):
        return LatentVideoPipeline.from_pretrained(folder, name=Path(name_or_path).name, **latent_options)
    return VideoPipeline.from_pretrained(folder, name=Path(name_or_path).name)


def load_diffusers_pipeline(folder: str | Path) -> StableDiffusion | ImageToVideo:
    """A user's diffusers folder by its layout: Stable Diffusion 1.x/2.x -> `StableDiffusion`, Stable Video
    Diffusion -> `ImageToVideo`; a missing component or an unsupported class is a one-line error."""
    layout = read_layout(folder)
    cls = StableDiffusion if layout.kind == STABLE_DIFFUSION else ImageToVideo
    return cls.from_pretrained(folder, name=Path(folder).name)


__all__ = ["DiffusionConfig", "ImageToVideo", "LatentVideoPipeline", "StableDiffusion", "VideoFormat", "VideoPipeline",
           "bundled_models", "count_params", "load_diffusers_pipeline", "load_pipeline", "resolve_model",
           "sample_videos", "TemporalWindows", "sample_long", "extend", "interpolate"]
