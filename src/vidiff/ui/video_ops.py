"""The "Extend / interpolate / upsample" tab as plain functions over an uploaded video (uint8 (F, H, W, 3)):
reconstruction-guided extension and interpolation with an unconditional model (VDM sec. 3.1) and the
super-resolution stages of Imagen Video."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..conditioning.tasks import NOISE_AUG_SAMPLE, SR_FACTOR, parse_condition
from ..data import io
from ..pipelines import VideoPipeline, bundled_models, extend, interpolate, resolve_model
from ..pipelines.cascade import upsample
from ..pipelines.extend import prepare_video
from ..utils import VidiffError
from .generate import MAX_STEPS, generation_conditions, model_choices, view_scale

OPERATIONS = ("extend", "interpolate", "upsample time x2", "upsample space x2")
MAX_OUTPUT_FRAMES = 128


@dataclass(frozen=True)
class OpResult:
    mp4: Path
    frames: np.ndarray  # uint8 (F, H, W, 3), before upscaling
    fps: float
    summary: str


def unconditional_choices(runs_dir: str | Path | None = "runs") -> dict[str, Path]:
    """Models that extend and interpolate: the unconditional ones among `generate.model_choices`."""
    return {k: v for k, v in model_choices(runs_dir).items() if generation_conditions(v) == ()}


def sr_choices() -> dict[str, Path]:
    """The bundled super-resolution stages by kind: {"tsr": folder, "ssr": folder} (those present)."""
    out: dict[str, Path] = {}
    for name in bundled_models():
        folder = resolve_model(name)
        kinds = parse_condition(json.loads((folder / "config.json").read_text()).get("conditioning",
                {}).get("condition"))
        if len(kinds) == 1 and kinds[0] in ("tsr", "ssr"):
            out.setdefault(kinds[0], folder)
    return out


def run_operation(operation: str, video: np.ndarray, fps: float, pipe: VideoPipeline, out_dir: str | Path, *,
                  frames: int = 32, factor: int = 2, steps: int = 25, seed: int = 0, sampler: str = "ddim") -> OpResult:
    """Run one of OPERATIONS on uint8 `video` (F, H, W, 3) with `pipe` (the unconditional model for extend
    and interpolate, the TSR / SSR stage for the upsamplers) and write out_dir/video.mp4."""
    if operation not in OPERATIONS:
        raise VidiffError(f"unknown operation {operation!r}; choose one of {', '.join(OPERATIONS)}")
    if not 1 <= int(steps) <= MAX_STEPS:
        raise VidiffError(f"steps must be between 1 and {MAX_STEPS}; got {steps}")
    t0 = time.perf_counter()
    if operation == "extend":
        if not len(video) < int(frames) <= MAX_OUTPUT_FRAMES:
            raise VidiffError(f"total frames must be more than the video's {len(video)} and at most "
                              f"{MAX_OUTPUT_FRAMES}; got {frames}")
        y = extend(pipe, video, int(frames), steps=int(steps), sampler=sampler, seed=int(seed))  # (C, F, H, W)
        out_fps = fps
    elif operation == "interpolate":
        if not 2 <= int(factor) <= 8 or (len(video) - 1) * int(factor) + 1 > MAX_OUTPUT_FRAMES:
            raise VidiffError(f"the factor must be 2..8 with at most {MAX_OUTPUT_FRAMES} output frames; got {factor}")
        y = interpolate(pipe, video, int(factor), steps=int(steps), sampler=sampler, seed=int(seed))
        out_fps = fps * int(factor)  # same duration
    else:
        kind = "tsr" if "time" in operation else "ssr"
        size = pipe.video.size if kind == "tsr" else pipe.video.size // SR_FACTOR  # the stage's input size
        n_in = pipe.video.frames // SR_FACTOR if kind == "tsr" else pipe.video.frames
        x = prepare_video(video[:n_in], size, what="video")[0]  # (C, F, size, size): square, the stage's size
        stages = {"tsr": pipe, "ssr": None} if kind == "tsr" else {"tsr": None, "ssr": pipe}
        y = upsample(stages["tsr"], stages["ssr"], x, space=SR_FACTOR if kind == "ssr" else 1,
                     time=SR_FACTOR if kind == "tsr" else 1, steps=int(steps), sampler=sampler, seed=int(seed),
                     noise_aug=NOISE_AUG_SAMPLE)  # (C, F', H', W')
        out_fps = fps * (SR_FACTOR if kind == "tsr" else 1)
    dt = time.perf_counter() - t0
    arr = io.to_uint8(y)  # (F, H, W, 3)
    out_dir = Path(out_dir)
    mp4 = io.write_mp4(out_dir / "video.mp4", arr, fps=out_fps, scale=view_scale(max(arr.shape[1:3])))
    f, h, w = arr.shape[:3]
    summary = (f"{operation}: {len(video)} frames at {video.shape[2]}x{video.shape[1]} -> {f} frames at {w}x{h}, "
               f"{out_fps:g} fps, with {pipe.name} in {dt:.1f} s ({sampler}, {int(steps)} steps, seed {int(seed)})")
    return OpResult(mp4, arr, out_fps, summary)
