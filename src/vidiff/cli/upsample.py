"""`vidiff upsample` and `vidiff cascade`: temporal / spatial super-resolution stages (Imagen Video)."""
from __future__ import annotations

import time as clock
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..utils import VidiffError
from .options import (DEFAULT_FORMATS, DEFAULT_SAMPLER, DEFAULT_STEPS, ClassId, Format, Guidance, Name, Num, OptName,
                      Out, Overwrite, Prompt, Sampler, Scale, Seed, Steps, fraction)
from .output import check_outputs, echo_written, write_videos

BUNDLED_SSR, BUNDLED_TSR = "shapes-ssr-tiny", "shapes-tsr-tiny"


def default_sr_models(space: int | None, time: int | None) -> tuple[str | None, str | None]:
    """(ssr, tsr) model names when none is given: the bundled shapes SR stages for the factors asked
    for (`--space N` -> shapes-ssr-tiny, `--time N` -> shapes-tsr-tiny), with a notice on stderr."""
    from ..pipelines import bundled_models

    want = {"ssr": space is not None and space > 1, "tsr": time is not None and time > 1}
    names = {"ssr": BUNDLED_SSR, "tsr": BUNDLED_TSR}
    if not any(want.values()):
        raise VidiffError("give a super-resolution model: --ssr-model PATH (space) and/or --tsr-model PATH (time), "
                          "or ask for --space 2 / --time 2 to use the bundled shapes stages")
    missing = [names[k] for k, w in want.items() if w and names[k] not in bundled_models()]
    if missing:
        raise VidiffError(f"no bundled {' or '.join(missing)} in this install: give --ssr-model / --tsr-model "
                          "(a checkpoint trained with `vidiff train --condition ssr` or `--condition tsr`)")
    chosen = {k: names[k] if w else None for k, w in want.items()}
    typer.echo("using the bundled " + " and ".join(n for n in chosen.values() if n)
               + " (trained on synthetic shapes; --ssr-model / --tsr-model choose others)", err=True)
    return chosen["ssr"], chosen["tsr"]


def upsample(
    video: Annotated[Path, typer.Argument(help="input video: mp4/gif/npy or a folder of frames (square frames)")],
    space: Annotated[Optional[int], typer.Option(
        min=1, help="height/width factor, a power of 2 (default: 2 with --ssr-model, else 1)")] = None,
    time: Annotated[Optional[int], typer.Option(
        min=1, help="frame-count factor, a power of 2 (default: 2 with --tsr-model, else 1)")] = None,
    ssr_model: Annotated[Optional[str], typer.Option(
        "--ssr-model", help="spatial SR model (trained with --condition ssr): bundled name or checkpoint folder "
                            "(with neither model given, --space N uses the bundled shapes-ssr-tiny)")] = None,
    tsr_model: Annotated[Optional[str], typer.Option(
        "--tsr-model", help="temporal SR model (trained with --condition tsr): bundled name or checkpoint folder "
                            "(with neither model given, --time N uses the bundled shapes-tsr-tiny)")] = None,
    steps: Steps = DEFAULT_STEPS,
    sampler: Sampler = DEFAULT_SAMPLER,
    seed: Seed = 0,
    noise_aug: Annotated[Optional[float], typer.Option(
        "--noise-aug", callback=fraction,
        help="SSR conditioning noise level in [0, 1) (default 0.1)")] = None,
    out: Out = Path("outputs"),
    name: OptName = None,
    format: Format = DEFAULT_FORMATS,
    scale: Scale = 4,
    overwrite: Overwrite = False,
):
    """Upsample a video in time and/or space with super-resolution diffusion models (Imagen Video)."""
    from ..conditioning.tasks import NOISE_AUG_SAMPLE, SR_FACTOR
    from ..data import io
    from ..pipelines import load_pipeline
    from ..pipelines.cascade import upsample as upsample_video

    if ssr_model is None and tsr_model is None:
        ssr_model, tsr_model = default_sr_models(space, time)
    space = space if space is not None else (SR_FACTOR if ssr_model else 1)
    time = time if time is not None else (SR_FACTOR if tsr_model else 1)
    name = name or f"{video.stem}_upsampled"
    given = io.read_video(video)  # uint8 (F, H, W, 3)
    check_outputs(out, name, format, overwrite, scale,
                  (len(given) * time, given.shape[1] * space, given.shape[2] * space))  # the output's (F, H, W)
    tsr = load_pipeline(tsr_model) if tsr_model else None
    ssr = load_pipeline(ssr_model) if ssr_model else None
    t0 = clock.perf_counter()
    y = upsample_video(tsr, ssr, given, space=space, time=time, steps=steps, sampler=sampler, seed=seed,
                       noise_aug=NOISE_AUG_SAMPLE if noise_aug is None else noise_aug, progress=True)  # (C, F, H, W)
    dt = clock.perf_counter() - t0
    fps = io.video_fps(video, (tsr or ssr).video.fps / time) * time  # same duration
    written = write_videos(io.to_uint8(y), out, name, format, fps, scale, overwrite)
    f0, h0, w0 = given.shape[:3]
    typer.echo(f"upsampled {video.name} from {f0}x{h0}x{w0} to {y.shape[1]}x{y.shape[2]}x{y.shape[3]} "
               f"(frames x height x width) in {dt:.1f}s ({sampler}, {steps} steps, seed {seed})")
    echo_written(written)


def cascade(
    config: Annotated[Path, typer.Option(
        "--config", help="cascade YAML/JSON, or a bundled cascade's name: base, tsr, ssr stages "
                         "({model, steps, sampler} each), optional time, space, sampler, noise_aug")],
    num: Num = 4,
    seed: Seed = 0,
    prompt: Prompt = None,
    class_id: ClassId = None,
    guidance: Guidance = 0.0,
    out: Out = Path("outputs"),
    name: Name = "cascade",
    format: Format = DEFAULT_FORMATS,
    scale: Scale = 2,
    stages: Annotated[bool, typer.Option(
        "--stages/--no-stages", help="also write each stage's videos (NAME_base, NAME_tsr, ...)")] = False,
    overwrite: Overwrite = False,
):
    """Sample with a cascade base -> TSR -> SSR (Imagen Video) described by one config file."""
    from ..pipelines.cascade import CascadePipeline

    check_outputs(out, name, format, overwrite)
    pipe = CascadePipeline.from_config(config)
    t0 = clock.perf_counter()
    videos = pipe(num, seed=seed, prompt=prompt, class_id=class_id, guidance=guidance, progress=True,
                  return_stages=True)
    dt = clock.perf_counter() - t0
    final = list(videos.values())[-1]
    written = write_videos(final, out, name, format, pipe.fps, scale, overwrite)
    if stages:
        for kind, v in list(videos.items())[:-1]:
            fps = pipe.base.video.fps * (v.shape[1] // videos["base"].shape[1])
            written += write_videos(v, out, f"{name}_{kind}", format, fps, scale, overwrite)
    shapes = " -> ".join(f"{k} {tuple(v.shape[1:4])}" for k, v in videos.items())
    typer.echo(f"generated {num} video(s) in {dt:.1f}s: {shapes} (frames, height, width), seed {seed}")
    echo_written(written)


def register(app: typer.Typer) -> None:
    app.command("upsample")(upsample)
    app.command("cascade")(cascade)
