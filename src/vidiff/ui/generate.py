"""The "Generate" tab as plain functions: the models on offer, the inputs each one takes, and one run
that writes an MP4 and a GIF."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..conditioning.tasks import parse_condition
from ..data import io
from ..diffusion import SAMPLERS
from ..pipelines import VideoPipeline, bundled_models, load_pipeline, resolve_model
from ..utils import VidiffError

GENERATE_KINDS = {"class", "text", "first_frame"}  # conditions a user can give here (not the SR stages')
MAX_STEPS = 200
MAX_NUM = 4


@dataclass(frozen=True)
class ModelInputs:
    """What a model accepts, so the page shows only the controls it uses."""

    prompt: bool
    class_id: bool
    image: bool
    num_classes: int
    autoguidance: float | None  # the checkpoint's default weight; None: it ships no guide
    frames: int
    size: int
    fps: float

    @property
    def guidance(self) -> bool:
        """Classifier-free guidance needs a condition to guide towards."""
        return self.prompt or self.class_id or self.image


def generation_conditions(folder: Path) -> tuple[str, ...] | None:
    """The model's conditions if the Generate tab can drive it; None for anything else (SR stages,
    folders that are not video checkpoints)."""
    try:
        cfg = json.loads((folder / "config.json").read_text())
        kinds = parse_condition(cfg.get("conditioning", {}).get("condition"))
    except (OSError, ValueError, VidiffError):
        return None
    if not {"model", "diffusion", "video"} <= set(cfg) or not set(kinds) <= GENERATE_KINDS:
        return None
    return kinds


def model_choices(runs_dir: str | Path | None = "runs") -> dict[str, Path]:
    """Models the Generate tab offers, label -> checkpoint folder: the bundled ones by name, then each
    checkpoint folder under `runs_dir` (up to two levels deep) as "runs/NAME"."""
    choices: dict[str, Path] = {}
    for name in bundled_models():
        folder = resolve_model(name)
        if generation_conditions(folder) is not None:
            choices[name] = folder
    if runs_dir is not None and Path(runs_dir).is_dir():
        root = Path(runs_dir)
        for cfg in sorted([*root.glob("*/config.json"), *root.glob("*/*/config.json")]):
            if generation_conditions(cfg.parent) is not None:
                choices[f"{root.name}/{cfg.parent.relative_to(root).as_posix()}"] = cfg.parent
    return choices


@lru_cache(maxsize=4)
def load(folder: str | Path) -> VideoPipeline:
    """The pipeline of a checkpoint folder found by the app (never a path typed in the page), kept loaded."""
    return load_pipeline(str(folder))


def pipeline_for(label: str, choices: dict[str, Path]) -> VideoPipeline:
    """The pipeline behind a dropdown label; only labels of `choices` are accepted (no path from the page)."""
    if label not in choices:
        raise VidiffError(f"unknown model {label!r}; pick one of the list ({', '.join(choices) or 'none found'})")
    return load(choices[label])


def model_inputs(pipe: VideoPipeline) -> ModelInputs:
    kinds = set(pipe.condition)
    return ModelInputs(prompt="text" in kinds, class_id="class" in kinds, image="first_frame" in kinds,
                       num_classes=int(getattr(pipe.model.config, "num_classes", 0) or 0),
                       autoguidance=pipe.autoguidance if pipe.guide is not None else None,
                       frames=pipe.video.frames, size=pipe.video.size, fps=pipe.video.fps)


def view_scale(size: int) -> int:
    """Nearest-neighbour upscaling so a tiny model's video is at least ~256 pixels on the page."""
    return int(min(8, max(1, 256 // max(1, size))))


@dataclass(frozen=True)
class GenerateResult:
    mp4: Path
    gif: Path
    videos: np.ndarray  # uint8 (N, F, H, W, 3), before upscaling
    summary: str


def generate(pipe: VideoPipeline, out_dir: str | Path, *, prompt: str | None = None, class_id: int | None = None,
             image: np.ndarray | None = None, sampler: str = "ddim", steps: int = 25, seed: int = 0,
             guidance: float = 0.0, autoguidance: float | None = None, num: int = 1,
             progress: bool = True) -> GenerateResult:
    """Sample `num` videos with the inputs the model takes (others must be None) and write them tiled as
    OUT_DIR/video.mp4 and OUT_DIR/video.gif. `image` is a uint8 (H, W, 3) first frame."""
    want = model_inputs(pipe)
    if sampler not in SAMPLERS:
        raise VidiffError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if not 1 <= int(steps) <= MAX_STEPS:
        raise VidiffError(f"steps must be between 1 and {MAX_STEPS}; got {steps}")
    if not 1 <= int(num) <= MAX_NUM:
        raise VidiffError(f"videos must be between 1 and {MAX_NUM}; got {num}")
    prompt = (prompt or "").strip() or None
    if want.prompt and prompt is None:
        raise VidiffError(f"{pipe.name} is a text-to-video model; type a prompt first")
    if want.image and image is None:
        raise VidiffError(f"{pipe.name} animates a first frame; upload an image first")
    if want.class_id and class_id is None:
        raise VidiffError(f"{pipe.name} is class-conditioned; choose a class first")
    if want.class_id and not 0 <= int(class_id) < max(1, want.num_classes):
        raise VidiffError(f"class must be between 0 and {want.num_classes - 1}; got {class_id}")
    t0 = time.perf_counter()
    videos = pipe(num=int(num), steps=int(steps), sampler=sampler, seed=int(seed), progress=progress,
                  prompt=prompt if want.prompt else None,
                  class_id=int(class_id) if want.class_id else None,
                  image=image if want.image else None,
                  guidance=float(guidance) if want.guidance else 0.0,
                  autoguidance=None if want.autoguidance is None else autoguidance).numpy()
    dt = time.perf_counter() - t0
    grid = io.tile_videos(videos) if len(videos) > 1 else videos[0]
    out_dir = Path(out_dir)
    scale = view_scale(max(grid.shape[1:3]))
    mp4 = io.write_mp4(out_dir / "video.mp4", grid, fps=pipe.video.fps, scale=scale)
    gif = io.write_gif(out_dir / "video.gif", grid, fps=pipe.video.fps, scale=scale)
    f, h, w = videos.shape[1:4]
    summary = (f"{len(videos)} video(s) of {f} frames at {w}x{h} with {pipe.name} in {dt:.1f} s "
               f"({sampler}, {int(steps)} steps, seed {int(seed)})")
    return GenerateResult(mp4, gif, videos, summary)
