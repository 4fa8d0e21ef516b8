"""What the commands print and write: the one video writer and the summary-line helpers."""
from __future__ import annotations

from pathlib import Path

import typer

from .options import FORMATS, Formats


def check_outputs(out: Path, name: str, formats: Formats, overwrite: bool = False, scale: int = 1,
                  shape: tuple[int, int, int] | None = None) -> None:
    """Before any work: OUT must be a writable folder, the run's name free (or `overwrite`), and `scale`
    small enough for one video of `shape` (F, H, W) to be upscaled in memory."""
    from ..data import io

    io.check_run(out, name, formats, overwrite)
    if shape is not None and any(f != "npy" for f in formats):
        io.check_scale(scale, shape)


def write_videos(videos, out: Path, name: str, formats: Formats, fps: float, scale: int = 1,
                 overwrite: bool = False) -> list[Path]:
    """Write uint8 videos as one run and return the paths written (the one writer of every command).

    `videos` is (N, F, H, W, 3) — a batch: OUT/NAME/000.FMT ... (one per video) plus a grid
    OUT/NAME.FMT for mp4/gif, and all of them as OUT/NAME.npy — or (F, H, W, 3) — one video:
    OUT/NAME.FMT for each format. `scale` upscales mp4/gif (nearest neighbour) for viewing; .npy
    files always hold the videos at their own size. The files appear together or not at all, and an
    earlier run's name is refused unless `overwrite` (`vidiff.data.io.write_run`).
    """
    from ..data import io

    return io.write_run(out, name, videos, list(formats), fps=fps, scale=scale, overwrite=overwrite)


def write_video_file(path: Path, video, fps: float) -> Path:
    """Write one uint8 video (F, H, W, 3) to `path`, whose extension (.mp4, .gif, .npy) is the format."""
    from ..data import io

    return io.write_video(path, video, fps=fps)


def check_video_path(path: Path) -> Path:
    """Callback of an output video option: refuse, while parsing, an extension that is not a format we write."""
    if path.suffix.lstrip(".").lower() not in FORMATS:
        raise typer.BadParameter(f"{path}: the file name must end in .mp4, .gif or .npy")
    return path


def autoguidance_text(pipe, w: float | None) -> str:
    """", autoguidance W" for a summary line (with the noisier steps' weight if the default has one);
    empty when guidance is off."""
    ag = pipe.autoguidance_spec(w)
    if ag is None:
        return ""
    return f", autoguidance {ag['w']:g}" + (
        f" ({ag['w_high_noise']:g} where log-SNR < {ag.get('logsnr_split', 0.0):g})" if "w_high_noise" in ag else "")


def echo_written(paths: list[Path]) -> None:
    """One `wrote PATH` line per file written."""
    for p in paths:
        typer.echo(f"wrote {p}")
