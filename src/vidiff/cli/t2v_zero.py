"""`vidiff t2v-zero`: a video from an image model without training (Text2Video-Zero,
`pipelines.t2v_zero`), on a vidiff image model (temporal none) or a diffusers Stable Diffusion folder."""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import DEFAULT_FORMATS, Format, Name, Num, Out, Overwrite, Prompt, Scale, Seed, Steps
from .output import check_outputs, echo_written, write_videos


def parse_motion(value: str) -> tuple[float, float]:
    """'DX,DY' -> (dx, dy), two finite numbers; anything else is a one-line error."""
    from ..utils import VidiffError

    parts = [p.strip() for p in str(value).split(",")]
    try:
        dx, dy = (float(p) for p in parts)
    except ValueError:
        raise VidiffError(f"--motion {value!r}: give two numbers DX,DY (pixels per frame, +x right, +y down), "
                          "e.g. 2,0") from None
    if not (math.isfinite(dx) and math.isfinite(dy)):
        raise VidiffError(f"--motion {value!r}: DX and DY must be finite numbers")
    return dx, dy


def t2v_zero(
    model: Annotated[str, typer.Option(help="image model: a vidiff checkpoint trained with --frames 1 "
                                            "(temporal none) or a diffusers Stable Diffusion folder")],
    prompt: Prompt = None,
    frames: Annotated[int, typer.Option(min=1, help="frames per video (at least 2)")] = 8,
    motion: Annotated[str, typer.Option(metavar="DX,DY", help="global translation δ per frame in pixels "
                                        "(+x right, +y down); frame k moves by k·strength·δ")] = "2,0",
    strength: Annotated[float, typer.Option(help="λ, the motion's strength")] = 1.0,
    t0: Annotated[Optional[int], typer.Option(min=0, help="steps before the end where the first frame is "
                                              "warped (default: 44 of 50, scaled)")] = None,
    t1: Annotated[Optional[int], typer.Option(min=0, help="steps before the end the warped frames are "
                                              "re-noised to (default: 47 of 50, scaled; steps-1 = x_T)")] = None,
    steps: Steps = 50,
    guidance: Annotated[Optional[float], typer.Option(help="classifier-free guidance weight w "
                                                      "(default: 6.5 for Stable Diffusion, 0 otherwise)")] = None,
    cross_frame: Annotated[bool, typer.Option("--cross-frame/--no-cross-frame",
                                              help="every frame's self-attention reads frame 0's keys/values")] = True,
    smooth_background: Annotated[bool, typer.Option(
        "--smooth-background", help="blend the background towards the warped first frame (pixel models)")] = False,
    size: Annotated[Optional[int], typer.Option(min=1, help="frame size (default: the model's)")] = None,
    num: Num = 1,
    seed: Seed = 0,
    out: Out = Path("outputs"),
    name: Name = "t2v_zero",
    format: Format = DEFAULT_FORMATS,
    scale: Scale = 1,
    overwrite: Overwrite = False,
    fps: Annotated[float, typer.Option(help="frame rate of the files written")] = 8.0,
):
    """Text2Video-Zero: motion in the latents of the first frame and cross-frame attention, no training."""
    dx, dy = parse_motion(motion)
    from ..utils import VidiffError

    if frames < 2:
        raise VidiffError(f"--frames must be at least 2 for a video; got {frames}")
    from ..pipelines.t2v_zero import TextToVideoZero

    t2v = TextToVideoZero.from_pretrained(model)
    side = t2v.default_size if size is None else size
    check_outputs(out, name, format, overwrite, scale, (frames, side, side))
    start = time.perf_counter()
    videos = t2v(prompt, num, frames=frames, motion=(dx, dy), strength=strength, t0=t0, t1=t1, steps=steps,
                 guidance=guidance, seed=seed, size=size, cross_frame=cross_frame,
                 smooth_background=smooth_background)
    dt = time.perf_counter() - start
    written = write_videos(videos, out, name, format, fps, scale, overwrite)
    typer.echo(f"generated {num} video(s) {tuple(videos.shape[1:])} with {Path(model).name} in {dt:.1f}s "
               f"(Text2Video-Zero, δ = ({dx:g}, {dy:g}) px/frame × {strength:g}, {steps} DDIM steps, seed {seed})")
    echo_written(written)


def register(app: typer.Typer) -> None:
    app.command("t2v-zero")(t2v_zero)
