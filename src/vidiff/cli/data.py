"""`vidiff data ...`: synthetic datasets, the shapes quality checker and clip curation."""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from ..utils import VidiffError, atomic_write_text
from .options import positive

def _load_for_check(path: Path, limit: int | None):
    """(videos, expected metadata or None, number skipped) from a .npy (N, F, H, W, 3) / (F, H, W, 3),
    a video file, or a folder of videos (with metadata.jsonl for attribute accuracies)."""
    from ..data.io import list_videos, load_npy, read_video
    from ..data.synth import read_metadata

    if path.is_file() and path.suffix.lower() == ".npy":
        arr = load_npy(path)
        if arr.ndim == 4:
            arr = arr[None]
        if arr.ndim != 5 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
            raise VidiffError(f"{path}: expected uint8 videos (N, F, H, W, 3), got {arr.dtype} {arr.shape}")
        return list(arr[:limit]), None, 0
    sources = list_videos(path)[:limit]
    if not sources:
        raise VidiffError(f"no videos found in {path}; give a folder of videos or an .npy of shape (N, F, H, W, 3)")
    meta = read_metadata(path) if path.is_dir() else {}
    videos, expected, skipped = [], [], 0

    def read(p: Path):
        try:  # ffmpeg decodes in subprocesses: threads overlap them
            return read_video(p)
        except VidiffError:
            return None

    with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
        for p, v in tqdm(zip(sources, pool.map(read, sources)), total=len(sources), desc="reading",
                         unit="video", disable=len(sources) < 8):
            if v is None:
                skipped += 1
                continue
            videos.append(v)
            expected.append(meta.get(p.relative_to(path).as_posix() if path.is_dir() else p.name, {}))
    if not videos:
        raise VidiffError(f"none of the {len(sources)} video(s) in {path} could be read")
    return videos, (expected if any(expected) else None), skipped


app = typer.Typer(no_args_is_help=True, help="Datasets: synthetic generators and the shapes quality checker.")
synth_app = typer.Typer(no_args_is_help=True, help="Generate synthetic video datasets.")
app.add_typer(synth_app, name="synth")


@synth_app.command("shapes")
def shapes(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the videos and metadata.jsonl into.")],
    num: Annotated[int, typer.Option(min=1, help="Number of videos.")] = 2000,
    frames: Annotated[int, typer.Option(min=1, help="Frames per video.")] = 16,
    size: Annotated[int, typer.Option(min=1, help="Height and width in pixels.")] = 32,
    seed: Annotated[int, typer.Option(help="Seed: video i is a pure function of (seed, i).")] = 0,
    format: Annotated[str, typer.Option("--format", help="mp4 (H.264), gif or npy.")] = "mp4",
    colours: Annotated[str, typer.Option(help="Comma-separated palette names "
                                              "(red, green, blue, yellow, magenta, cyan).")] = "red,green,blue,yellow",
    fps: Annotated[float, typer.Option(callback=positive, help="Frames per second of the written files.")] = 8.0,
    caption_variants: Annotated[int, typer.Option(
        min=0, help="Rephrased captions per video stored as \"captions\" in metadata.jsonl "
                    "(train with `captions: random` to use them).")] = 8,
) -> None:
    """Moving shapes: one object (circle/square/triangle) per video, bouncing off the walls, with captions."""
    from ..data.synth import ShapesConfig, generate_shapes

    cfg = ShapesConfig(frames=frames, size=size, colours=tuple(c.strip() for c in colours.split(",") if c.strip()),
                       caption_variants=caption_variants)
    t0 = time.perf_counter()
    generate_shapes(out_dir, num, seed=seed, fmt=format, cfg=cfg, fps=fps)
    typer.echo(f"wrote {num} videos and metadata.jsonl to {out_dir} in {time.perf_counter() - t0:.1f} s")


@app.command("check")
def check(
    path: Annotated[Path, typer.Argument(help="Folder of videos, a video file, or an .npy (N, F, H, W, 3) uint8.")],
    limit: Annotated[Optional[int], typer.Option(min=1, help="Check at most this many videos.")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the summary as JSON here.")] = None,
) -> None:
    """Shapes quality checker: pass rate per criterion (one object, constant colour/size, smooth motion).

    With metadata.jsonl in the folder it also reports colour, shape and direction accuracy.
    """
    from ..data.checker import CRITERIA, check_batch

    if not path.exists():
        raise VidiffError(f"path not found: {path}")
    if json_out is not None:
        from ..data.io import check_output

        check_output(json_out, "--json")
    videos, expected, skipped = _load_for_check(path, limit)
    summary = check_batch(videos, expected)
    summary.pop("results")
    summary["skipped_unreadable"] = skipped
    table = Table(title=f"shapes checker: {summary['num']} video(s) in {path}")
    table.add_column("criterion")
    table.add_column("pass rate", justify="right")
    for c in CRITERIA + ("ok",):
        table.add_row("overall (all criteria)" if c == "ok" else c, f"{100 * summary[c]:.1f}%")
    for k in ("colour_acc", "shape_acc", "direction_acc", "all_attrs_acc"):
        if k in summary:
            table.add_row(k.replace("_acc", " accuracy").replace("all_attrs", "all attributes"),
                          f"{100 * summary[k]:.1f}%")
    Console().print(table)
    if skipped:
        typer.echo(f"skipped {skipped} unreadable video(s)")
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(summary, indent=2) + "\n")
        typer.echo(f"wrote {json_out}")


@app.command("curate")
def curate(
    src: Annotated[Path, typer.Argument(help="Folder of raw videos (or one video).")],
    out_dir: Annotated[Path, typer.Argument(help="Folder for the clips and metadata.jsonl.")],
    frames: Annotated[int, typer.Option(min=1, help="Frames per clip.")] = 16,
    cut_threshold: Annotated[float, typer.Option(help="Histogram distance (0..1) that marks a shot cut.")] = 0.4,
    min_motion: Annotated[float, typer.Option(help="Drop clips whose mean frame difference is below this.")] = 0.002,
    max_motion: Annotated[float, typer.Option(help="Drop clips whose mean frame difference is above this.")] = 0.25,
    fps: Annotated[float, typer.Option(callback=positive, help="Frames per second of the written clips.")] = 8.0,
) -> None:
    """Cut raw videos into clips that stay inside one shot and move enough (scene-cut + motion filter)."""
    from ..data.curate import curate as curate_videos

    stats = curate_videos(src, out_dir, frames, cut_threshold, min_motion, max_motion, fps)
    typer.echo(f"{stats['clips']} clip(s) from {stats['videos']} video(s) written to {out_dir} "
               f"({stats['cuts']} cut(s), {stats['rejected_motion']} clip(s) rejected for motion, "
               f"{stats['unreadable']} unreadable)")


def register(parent: typer.Typer) -> None:
    """Add the `data` command group."""
    parent.add_typer(app, name="data")
