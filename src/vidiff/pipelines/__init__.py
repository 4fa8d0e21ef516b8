"""Pipelines: compose backbone + diffusion core + IO. Only this layer touches files."""
from __future__ import annotations

import json
from pathlib import Path

from ..utils import VidiffError
from .base import DiffusionConfig, VideoFormat, VideoPipeline, count_params, sample_videos
from .extend import extend, interpolate
from .long import TemporalWindows, sample_long

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "weights"


def bundled_models() -> list[str]:
    """Names of the video models shipped inside the package (the motion model and the renderer of
    `vidiff animate`, weights/motion and weights/renderer, are not video pipelines and are left out)."""
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(p.name for p in BUNDLED_DIR.iterdir()
                  if (p / "config.json").is_file()
                  and not {"motion_model", "renderer"} & set(json.loads((p / "config.json").read_text())))


def resolve_model(name_or_path: str) -> Path:
    """A bundled model name or a checkpoint folder -> the folder holding config.json."""
    p = Path(name_or_path)
    if p.is_dir():
        return p
    if name_or_path in bundled_models():
        return BUNDLED_DIR / name_or_path
    known = ", ".join(bundled_models()) or "(none bundled)"
    raise VidiffError(f"unknown model {name_or_path!r}: not a checkpoint folder; bundled models: {known}")


def load_pipeline(name_or_path: str) -> VideoPipeline:
    """Load a bundled model (e.g. 'shapes-tiny') or a checkpoint folder as a VideoPipeline."""
    folder = resolve_model(name_or_path)
    return VideoPipeline.from_pretrained(folder, name=Path(name_or_path).name)


__all__ = ["DiffusionConfig", "VideoFormat", "VideoPipeline", "bundled_models", "count_params",
           "load_pipeline", "resolve_model", "sample_videos", "TemporalWindows", "sample_long", "extend",
           "interpolate"]
