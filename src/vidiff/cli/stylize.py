"""`vidiff stylize`: a video in the colour statistics of a style image (AdaIN), with a temporal-consistency term."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from .output import check_video_path, write_video_file


def stylize(
    clip: Annotated[Path, typer.Argument(help="the video: mp4/gif/npy or a folder of frames")],
    style: Annotated[Path, typer.Option(help="the style image (PNG/JPEG) whose statistics the video takes")],
    out: Annotated[Path, typer.Option(callback=check_video_path,
                                      help="the stylised video (.mp4, .gif or .npy)")] = Path("stylized.mp4"),
    per_frame: Annotated[bool, typer.Option("--per-frame", help="each frame's own statistics and no temporal "
                                                                "term (the flickering baseline)")] = False,
    smooth: Annotated[float, typer.Option(help="frames over which the content statistics are smoothed "
                                               "(Gaussian std; inf: the whole clip's)")] = float("inf"),
    blend: Annotated[float, typer.Option(help="weight of the previous output warped along the optical flow, "
                                              "in [0, 1)")] = 0.5,
    compare: Annotated[bool, typer.Option("--compare", help="also stylise per frame and print both videos' "
                                                            "flicker and warp error")] = False,
    fps: Annotated[float, typer.Option(help="frame rate of the file written")] = 8.0,
):
    """Stylise a video with AdaIN on its colour statistics: temporally smoothed statistics and flow-warped
    blending by default, or --per-frame."""
    from ..data.io import check_output, read_image, read_video
    from ..metrics.temporal import flicker, warp_error
    from ..pipelines import stylize as styl

    check_output(out, "--out", kind="file")
    image = read_image(style)
    video = read_video(clip)
    start = time.perf_counter()
    result = styl.per_frame(video, image) if per_frame else styl.stylize(video, image, smooth=smooth, blend=blend)
    seconds = time.perf_counter() - start
    path = write_video_file(out, result, fps)
    mode = "per frame" if per_frame else f"temporal (smooth {smooth:g} frames, blend {blend:g})"
    typer.echo(f"stylised {clip.name} ({len(video)} frames) with {style.name} in {seconds:.1f}s, {mode}")
    if compare and len(video) > 1:
        other = styl.stylize(video, image, smooth=smooth, blend=blend) if per_frame else styl.per_frame(video, image)
        rows = (("per frame", other if not per_frame else result), ("temporal", result if not per_frame else other))
        for name, v in rows:
            typer.echo(f"  {name:9s}  flicker {flicker(v[None])[0]:.4f}  warp error {warp_error(v[None])[0]:.4f}")
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("stylize")(stylize)
