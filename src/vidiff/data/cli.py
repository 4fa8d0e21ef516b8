"""`vidiff data ...`: synthetic datasets and the shapes quality checker."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..utils import VidiffError


def _load_for_check(path: Path, limit: int | None):
    """(videos, expected metadata or None, number skipped) from a .npy (N, F, H, W, 3) / (F, H, W, 3),
    a video file, or a folder of videos (with metadata.jsonl for attribute accuracies)."""
    import numpy as np

    from .io import list_videos, read_video
    from .synth import read_metadata

    if path.is_file() and path.suffix.lower() == ".npy":
        arr = np.load(path, allow_pickle=False)
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
    import os
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

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


def register(app: typer.Typer) -> None:
    """Add the `data` command group to the vidiff CLI."""
    data_app = typer.Typer(no_args_is_help=True, help="Datasets: synthetic generators and the shapes quality checker.")
    synth_app = typer.Typer(no_args_is_help=True, help="Generate synthetic video datasets.")
    data_app.add_typer(synth_app, name="synth")

    @synth_app.command("shapes")
    def shapes(
        out_dir: Path = typer.Argument(..., help="Folder to write the videos and metadata.jsonl into."),
        num: int = typer.Option(2000, help="Number of videos."),
        frames: int = typer.Option(16, help="Frames per video."),
        size: int = typer.Option(32, help="Height and width in pixels."),
        seed: int = typer.Option(0, help="Seed: video i is a pure function of (seed, i)."),
        format: str = typer.Option("mp4", "--format", help="mp4 (H.264), gif or npy."),
        colours: str = typer.Option("red,green,blue,yellow", help="Comma-separated palette names "
                                    "(red, green, blue, yellow, magenta, cyan)."),
        fps: float = typer.Option(8.0, help="Frames per second of the written files."),
        caption_variants: int = typer.Option(8, help="Rephrased captions per video stored as \"captions\" in "
                                             "metadata.jsonl (train with `captions: random` to use them)."),
    ) -> None:
        """Moving shapes: one object (circle/square/triangle) per video, bouncing off the walls, with captions."""
        import time

        from .synth import ShapesConfig, generate_shapes

        cfg = ShapesConfig(frames=frames, size=size, colours=tuple(c.strip() for c in colours.split(",") if c.strip()),
                           caption_variants=caption_variants)
        t0 = time.perf_counter()
        generate_shapes(out_dir, num, seed=seed, fmt=format, cfg=cfg, fps=fps)
        typer.echo(f"wrote {num} videos and metadata.jsonl to {out_dir} in {time.perf_counter() - t0:.1f} s")

    @data_app.command("check")
    def check(
        path: Path = typer.Argument(..., help="Folder of videos, a video file, or an .npy (N, F, H, W, 3) uint8."),
        limit: Optional[int] = typer.Option(None, help="Check at most this many videos."),
        json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the summary as JSON here."),
    ) -> None:
        """Shapes quality checker: pass rate per criterion (one object, constant colour/size, smooth motion).

        With metadata.jsonl in the folder it also reports colour, shape and direction accuracy.
        """
        import json

        from rich.console import Console
        from rich.table import Table

        from ..utils import atomic_write_text
        from .checker import CRITERIA, check_batch

        if not path.exists():
            raise VidiffError(f"path not found: {path}")
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

    @data_app.command("curate")
    def curate_cmd(
        src: Path = typer.Argument(..., help="Folder of raw videos (or one video)."),
        out_dir: Path = typer.Argument(..., help="Folder for the clips and metadata.jsonl."),
        frames: int = typer.Option(16, help="Frames per clip."),
        cut_threshold: float = typer.Option(0.4, help="Histogram distance (0..1) that marks a shot cut."),
        min_motion: float = typer.Option(0.002, help="Drop clips whose mean frame difference is below this."),
        max_motion: float = typer.Option(0.25, help="Drop clips whose mean frame difference is above this."),
        fps: float = typer.Option(8.0, help="Frames per second of the written clips."),
    ) -> None:
        """Cut raw videos into clips that stay inside one shot and move enough (scene-cut + motion filter)."""
        from .curate import curate

        stats = curate(src, out_dir, frames, cut_threshold, min_motion, max_motion, fps)
        typer.echo(f"{stats['clips']} clip(s) from {stats['videos']} video(s) written to {out_dir} "
                   f"({stats['cuts']} cut(s), {stats['rejected_motion']} clip(s) rejected for motion, "
                   f"{stats['unreadable']} unreadable)")

    app.add_typer(data_app, name="data")
