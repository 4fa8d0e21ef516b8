"""`vidiff extend` and `vidiff interpolate`: conditional sampling with an unconditional model
(Video Diffusion Models, sec. 3.1, eq. 7 reconstruction guidance)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import (DEFAULT_FORMATS, DEFAULT_MODEL, DEFAULT_SAMPLER, DEFAULT_STEPS, Autoguidance, Format, Model,
                      OptName, Out, Overwrite, Sampler, Scale, Seed, Steps)
from .output import autoguidance_text, check_outputs, echo_written, write_videos


def check_method(value: str) -> str:
    """Callback of `--method`: one of vidiff.pipelines.extend.METHODS."""
    from ..pipelines.extend import METHODS  # torch: only when a value is checked

    if value not in METHODS:
        raise typer.BadParameter(f"unknown method {value!r}; choose one of {', '.join(METHODS)}")
    return value


InputVideo = Annotated[Path, typer.Argument(help="input video: mp4/gif/npy or a folder of frames")]
Method = Annotated[str, typer.Option(callback=check_method,
                                     help="reconstruction (VDM eq. 7 guidance) | replacement (naive baseline)")]
Weight = Annotated[Optional[float], typer.Option(help="reconstruction guidance weight w_r (default 8)")]


def _method_text(method: str, w: float) -> str:
    return method + (f", w_r {w:g}" if method == "reconstruction" else "")


def extend(
    video: InputVideo,
    frames: Annotated[int, typer.Option(min=1, help="total frames of the output (input frames included)")],
    context: Annotated[Optional[int], typer.Option(
        min=1, help="known frames each new window starts with (default: half the model's frames)")] = None,
    model: Model = DEFAULT_MODEL,
    steps: Steps = DEFAULT_STEPS,
    sampler: Sampler = DEFAULT_SAMPLER,
    seed: Seed = 0,
    method: Method = "reconstruction",
    weight: Weight = None,
    autoguidance: Autoguidance = None,
    out: Out = Path("outputs"),
    name: OptName = None,
    format: Format = DEFAULT_FORMATS,
    scale: Scale = 4,
    overwrite: Overwrite = False,
):
    """Extend a video autoregressively with an unconditional model (Video Diffusion Models, eq. 7)."""
    from ..data import io
    from ..pipelines import load_pipeline
    from ..pipelines.extend import DEFAULT_WEIGHT
    from ..pipelines.extend import extend as extend_video

    name = name or f"{video.stem}_extended"
    given = io.read_video(video)
    pipe = load_pipeline(model)
    check_outputs(out, name, format, overwrite, scale, (frames, pipe.video.size, pipe.video.size))
    w = DEFAULT_WEIGHT if weight is None else weight
    t0 = time.perf_counter()
    y = extend_video(pipe, given, frames, context=context, guidance_weight=w, steps=steps, sampler=sampler,
                     seed=seed, method=method, autoguidance=autoguidance)  # (C, F, H, W)
    dt = time.perf_counter() - t0
    written = write_videos(io.to_uint8(y), out, name, format, io.video_fps(video, pipe.video.fps), scale, overwrite)
    typer.echo(f"extended {video.name} from {len(given)} to {y.shape[1]} frames with {pipe.name} in {dt:.1f}s "
               f"({_method_text(method, w)}, {sampler}, {steps} steps, seed {seed}"
               f"{autoguidance_text(pipe, autoguidance)})")
    echo_written(written)


def interpolate(
    video: InputVideo,
    factor: Annotated[int, typer.Option(
        min=1, help="output frames per input frame interval ((N-1)*factor+1 frames)")] = 2,
    model: Model = DEFAULT_MODEL,
    steps: Steps = DEFAULT_STEPS,
    sampler: Sampler = DEFAULT_SAMPLER,
    seed: Seed = 0,
    method: Method = "reconstruction",
    weight: Weight = None,
    autoguidance: Autoguidance = None,
    out: Out = Path("outputs"),
    name: OptName = None,
    format: Format = DEFAULT_FORMATS,
    scale: Scale = 4,
    overwrite: Overwrite = False,
):
    """Generate the frames between a video's frames with an unconditional model (Video Diffusion Models, eq. 7)."""
    from ..data import io
    from ..pipelines import load_pipeline
    from ..pipelines.extend import DEFAULT_WEIGHT
    from ..pipelines.extend import interpolate as interpolate_video

    name = name or f"{video.stem}_interpolated"
    given = io.read_video(video)
    pipe = load_pipeline(model)
    check_outputs(out, name, format, overwrite, scale,
                  ((len(given) - 1) * factor + 1, pipe.video.size, pipe.video.size))  # the output's (F, H, W)
    w = DEFAULT_WEIGHT if weight is None else weight
    t0 = time.perf_counter()
    y = interpolate_video(pipe, given, factor, guidance_weight=w, steps=steps, sampler=sampler, seed=seed,
                          method=method, autoguidance=autoguidance)  # (C, F, H, W)
    dt = time.perf_counter() - t0
    fps = io.video_fps(video, pipe.video.fps) * factor  # same duration, `factor` times the frame rate
    written = write_videos(io.to_uint8(y), out, name, format, fps, scale, overwrite)
    typer.echo(f"interpolated {video.name} from {len(given)} to {y.shape[1]} frames (x{factor}, {fps:g} fps) "
               f"with {pipe.name} in {dt:.1f}s ({_method_text(method, w)}, {sampler}, {steps} steps, seed {seed}"
               f"{autoguidance_text(pipe, autoguidance)})")
    echo_written(written)


def register(app: typer.Typer) -> None:
    app.command("extend")(extend)
    app.command("interpolate")(interpolate)
