"""Pipelines: compose backbone + diffusion core + IO. Only this layer touches files."""
from __future__ import annotations

from pathlib import Path

from ..bundled import bundled_models, find_model
from .base import DiffusionConfig, VideoFormat, VideoPipeline, count_params, sample_videos
from .extend import extend, interpolate
from .latent import LatentVideoPipeline, is_latent_checkpoint
from .long import TemporalWindows, sample_long


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
    `latent_options` (decode_chunk, tile) go."""
    folder = resolve_model(name_or_path)
    if is_latent_checkpoint(folder):
        return LatentVideoPipeline.from_pretrained(folder, name=Path(name_or_path).name, **latent_options)
    return VideoPipeline.from_pretrained(folder, name=Path(name_or_path).name)


__all__ = ["DiffusionConfig", "LatentVideoPipeline", "VideoFormat", "VideoPipeline", "bundled_models", "count_params",
           "load_pipeline", "resolve_model", "sample_videos", "TemporalWindows", "sample_long", "extend",
           "interpolate"]
