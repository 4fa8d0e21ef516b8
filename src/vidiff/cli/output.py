"""What the commands print and write: the one video writer and the summary-line helpers."""
from __future__ import annotations

from pathlib import Path

import typer

from .options import FORMATS, Formats, parse_formats


def write_videos(videos, out: Path, name: str, formats: Formats, fps: float, scale: int = 1) -> list[Path]:
    """Write uint8 videos and return the paths written (the one writer of every command).

    `videos` is (N, F, H, W, 3) — a batch: OUT/NAME/000.FMT ... (one per video) plus a grid
    OUT/NAME.FMT for mp4/gif, and all of them as OUT/NAME.npy — or (F, H, W, 3) — one video:
    OUT/NAME.FMT for each format. `scale` upscales mp4/gif (nearest neighbour) for viewing; .npy
    files always hold the videos at their own size.
    """
    import numpy as np

    from ..data import io

    arr = np.asarray(videos.numpy() if hasattr(videos, "numpy") else videos)
    out = Path(out)
    written = []
    for fmt in formats:
        path = out / f"{name}.{fmt}"
        if fmt == "npy":
            written.append(io.write_npy(path, arr))
        elif arr.ndim == 4:
            written.append(io.write_video(path, arr, fps=fps, scale=scale))
        else:
            for i, v in enumerate(arr):
                io.write_video(out / name / f"{i:03d}.{fmt}", v, fps=fps, scale=scale)
            written.append(io.write_video(path, io.tile_videos(arr), fps=fps, scale=scale))
    return written


def write_video_file(path: Path, video, fps: float) -> Path:
    """Write one uint8 video (F, H, W, 3) to `path`, whose extension (.mp4, .gif, .npy) is the format."""
    path = Path(path)
    return write_videos(video, path.parent, path.stem, parse_formats(path.suffix.lstrip(".")), fps)[0]


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
