"""`vidiff extend` and `vidiff interpolate`: conditional sampling with an unconditional model (VDM sec. 3.1)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

METHOD_HELP = "reconstruction (VDM eq. 7 guidance) | replacement (naive baseline)"


def write_one_video(video, out: Path, name: str, formats: list[str], fps: float, scale: int) -> list[Path]:
    """Write one (C, F, H, W) video in [-1, 1] as OUT/NAME.{mp4,gif,npy} (npy: uint8 (F, H, W, 3))."""
    from ..data import io

    arr = io.to_uint8(video)  # (F, H, W, 3)
    written = []
    for fmt in formats:
        path = out / f"{name}.{fmt}"
        written.append(io.write_npy(path, arr) if fmt == "npy" else io.write_video(path, arr, fps=fps, scale=scale))
    return written


def _check_method(method: str) -> None:
    from ..utils import VidiffError
    from .extend import METHODS

    if method not in METHODS:
        raise VidiffError(f"unknown --method {method!r}; choose one of {', '.join(METHODS)}")


def register(app: typer.Typer) -> None:
    @app.command("extend")
    def extend_cmd(
        video: Path = typer.Argument(..., help="input video: mp4/gif/npy or a folder of frames"),
        frames: int = typer.Option(..., help="total frames of the output (input frames included)"),
        context: Optional[int] = typer.Option(None, help="known frames each new window starts with "
                                              "(default: half the model's frames)"),
        model: str = typer.Option("shapes-tiny", help="bundled model name or checkpoint folder"),
        steps: int = typer.Option(25, help="denoising steps per window"),
        sampler: str = typer.Option("ddim", help="ddim | ddpm | dpmpp_2m"),
        seed: int = typer.Option(0, help="the same seed gives the same video"),
        method: str = typer.Option("reconstruction", help=METHOD_HELP),
        weight: Optional[float] = typer.Option(None, help="reconstruction guidance weight w_r (default 8)"),
        autoguidance: Optional[float] = typer.Option(None, help="autoguidance weight: guide with the model's "
                                                     "weaker snapshot; default: the model's, 0 = off"),
        out: Path = typer.Option(Path("outputs"), help="output folder"),
        name: Optional[str] = typer.Option(None, help="base name of the files (default: INPUT_extended)"),
        format: str = typer.Option("mp4,gif", "--format", help="mp4, gif, npy (comma-separated)"),
        scale: int = typer.Option(4, help="nearest-neighbour upscaling of mp4/gif for viewing"),
    ):
        """Extend a video autoregressively with an unconditional model (Video Diffusion Models, eq. 7)."""
        import time

        from ..data import io
        from . import load_pipeline
        from .cli import autoguidance_text, parse_formats
        from .extend import DEFAULT_WEIGHT, extend

        fmts = parse_formats(format)
        _check_method(method)
        given = io.read_video(video)
        pipe = load_pipeline(model)
        w = DEFAULT_WEIGHT if weight is None else weight
        t0 = time.perf_counter()
        y = extend(pipe, given, frames, context=context, guidance_weight=w, steps=steps, sampler=sampler,
                   seed=seed, method=method, autoguidance=autoguidance)
        dt = time.perf_counter() - t0
        written = write_one_video(y, out, name or f"{video.stem}_extended", fmts, io.video_fps(video, pipe.video.fps), scale)
        typer.echo(f"extended {video.name} from {len(given)} to {y.shape[1]} frames with {pipe.name} in {dt:.1f}s "
                   f"({method}" + (f", w_r {w:g}" if method == "reconstruction" else "")
                   + f", {sampler}, {steps} steps, seed {seed}{autoguidance_text(pipe, autoguidance)})")
        for p in written:
            typer.echo(f"wrote {p}")

    @app.command("interpolate")
    def interpolate_cmd(
        video: Path = typer.Argument(..., help="input video: mp4/gif/npy or a folder of frames"),
        factor: int = typer.Option(2, help="output frames per input frame interval ((N-1)*factor+1 frames)"),
        model: str = typer.Option("shapes-tiny", help="bundled model name or checkpoint folder"),
        steps: int = typer.Option(25, help="denoising steps"),
        sampler: str = typer.Option("ddim", help="ddim | ddpm | dpmpp_2m"),
        seed: int = typer.Option(0, help="the same seed gives the same video"),
        method: str = typer.Option("reconstruction", help=METHOD_HELP),
        weight: Optional[float] = typer.Option(None, help="reconstruction guidance weight w_r (default 8)"),
        autoguidance: Optional[float] = typer.Option(None, help="autoguidance weight: guide with the model's "
                                                     "weaker snapshot; default: the model's, 0 = off"),
        out: Path = typer.Option(Path("outputs"), help="output folder"),
        name: Optional[str] = typer.Option(None, help="base name of the files (default: INPUT_interpolated)"),
        format: str = typer.Option("mp4,gif", "--format", help="mp4, gif, npy (comma-separated)"),
        scale: int = typer.Option(4, help="nearest-neighbour upscaling of mp4/gif for viewing"),
    ):
        """Generate the frames between a video's frames with an unconditional model (Video Diffusion Models, eq. 7)."""
        import time

        from ..data import io
        from . import load_pipeline
        from .cli import autoguidance_text, parse_formats
        from .extend import DEFAULT_WEIGHT, interpolate

        fmts = parse_formats(format)
        _check_method(method)
        given = io.read_video(video)
        pipe = load_pipeline(model)
        w = DEFAULT_WEIGHT if weight is None else weight
        t0 = time.perf_counter()
        y = interpolate(pipe, given, factor, guidance_weight=w, steps=steps, sampler=sampler, seed=seed,
                        method=method, autoguidance=autoguidance)
        dt = time.perf_counter() - t0
        fps = io.video_fps(video, pipe.video.fps) * factor  # same duration, `factor` times the frame rate
        written = write_one_video(y, out, name or f"{video.stem}_interpolated", fmts, fps, scale)
        typer.echo(f"interpolated {video.name} from {len(given)} to {y.shape[1]} frames (x{factor}, {fps:g} fps) "
                   f"with {pipe.name} in {dt:.1f}s ({method}" + (f", w_r {w:g}" if method == "reconstruction" else "")
                   + f", {sampler}, {steps} steps, seed {seed}{autoguidance_text(pipe, autoguidance)})")
        for p in written:
            typer.echo(f"wrote {p}")
