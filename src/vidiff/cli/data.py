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


app = typer.Typer(no_args_is_help=True,
                  help="Datasets: synthetic generators, the shapes quality checker and curation into shards.")
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
    background: Annotated[str, typer.Option(help="black, or texture: a smooth random texture that shows the "
                                                 "camera moving.")] = "black",
    camera_pan: Annotated[str, typer.Option(help="Camera pan speed per frame as a fraction of --size, one value "
                                                 "or a range MIN,MAX drawn per video (needs --background texture; "
                                                 "metadata.jsonl records each frame's affine).")] = "0",
    camera_rotation: Annotated[float, typer.Option(min=0, help="Max camera roll per frame, degrees.")] = 0.0,
    camera_zoom: Annotated[float, typer.Option(min=0, help="Max camera |log zoom| per frame.")] = 0.0,
    camera_shake: Annotated[float, typer.Option(min=0, help="Per-frame pan jitter (std) as a fraction of "
                                                            "--size.")] = 0.0,
) -> None:
    """Moving shapes: one object (circle/square/triangle) per video, bouncing off the walls, with captions."""
    from ..data.synth import ShapesConfig, generate_shapes

    try:
        pan = [float(v) for v in camera_pan.split(",")]
    except ValueError:
        raise VidiffError(f"--camera-pan {camera_pan!r} is not a number or MIN,MAX; e.g. --camera-pan 0.02,0.05")
    if len(pan) not in (1, 2):
        raise VidiffError(f"--camera-pan takes one value or MIN,MAX, got {camera_pan!r}")
    cfg = ShapesConfig(frames=frames, size=size, colours=tuple(c.strip() for c in colours.split(",") if c.strip()),
                       caption_variants=caption_variants, background=background,
                       camera_speed=(pan[0], pan[-1]), camera_rotation=camera_rotation, camera_zoom=camera_zoom,
                       camera_shake=camera_shake)
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
    src: Annotated[Path, typer.Argument(help="Folder of raw videos (or one video); metadata.jsonl captions are kept.")],
    out: Annotated[Path, typer.Option("--out", help="Dataset folder: WebDataset shards, manifest.json, report/.")],
    workers: Annotated[int, typer.Option(min=1, help="Parallel workers (Ray tasks or processes).")] = 1,
    ray: Annotated[Optional[str], typer.Option("--ray", help="Ray cluster address (host:6379 or ray://host:10001); "
                                                            "default: Ray in local mode.")] = None,
    engine: Annotated[str, typer.Option(help="auto (Ray when installed), ray or process.")] = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted curation in --out.")] = False,
    min_frames: Annotated[int, typer.Option(min=2, help="Shortest clip in frames.")] = 16,
    max_frames: Annotated[int, typer.Option(min=2, help="Longer shots are cut into clips of this many frames.")] = 64,
    detector: Annotated[str, typer.Option(help="PySceneDetect detector: content (HSV and edge change) or "
                                               "adaptive (that change relative to its neighbours').")] = "content",
    cut_threshold: Annotated[Optional[float],
                             typer.Option(help="Detector threshold (content 27, adaptive 3.0).")] = None,
    ocr: Annotated[bool, typer.Option("--ocr/--no-ocr", help="Measure on-screen text with tesseract.")] = True,
    shard_size: Annotated[int, typer.Option(min=1, help="Clips per shard.")] = 256,
    min_motion: Annotated[Optional[float],
                          typer.Option(help="Drop clips with less optical flow (px/frame at 256 px).")] = 0.05,
    max_motion: Annotated[Optional[float],
                          typer.Option(help="Drop clips with more optical flow (px/frame at 256 px).")] = 24.0,
    max_camera: Annotated[Optional[float],
                          typer.Option(help="Drop clips whose camera moves more (px/frame at 256 px; "
                                            "e.g. 0.5 for still-camera footage).")] = None,
    caption_query: Annotated[Optional[str], typer.Option(help="Keep captioned clips similar to this text.")] = None,
    min_caption_similarity: Annotated[Optional[float],
                                      typer.Option(help="MiniLM cosine bound for --caption-query.")] = None,
) -> None:
    """Stable Video Diffusion's curation: shot cuts, clips, motion / blur / darkness / aspect / text / caption
    filters and near-duplicate removal, written as WebDataset shards with every clip's scores in manifest.json."""
    from dataclasses import replace

    from ..data.curate import CurateConfig, Filters, curate as curate_videos

    if detector not in ("adaptive", "content"):
        raise typer.BadParameter(f"{detector!r}: use content or adaptive", param_hint="--detector")
    cfg = CurateConfig(min_frames=min_frames, max_frames=max_frames, detector=detector,
                       cut_threshold=cut_threshold, ocr=ocr)
    filters = replace(Filters(), min_motion=min_motion, max_motion=max_motion, max_camera=max_camera,
                      caption_query=caption_query, min_caption_similarity=min_caption_similarity)
    t0 = time.perf_counter()
    counts = curate_videos(src, out, cfg, filters, workers=workers, engine=engine, ray_address=ray,
                           resume=resume, shard_size=shard_size)
    _print_counts(counts, out, time.perf_counter() - t0)


def _print_counts(counts: dict, out: Path, seconds: float) -> None:
    dropped = ", ".join(f"{k} {counts[k]}" for k in ("static", "too_fast", "camera", "blurry", "dark", "aspect",
                                                      "text", "caption", "duplicate") if counts.get(k))
    typer.echo(f"kept {counts['kept']} of {counts['clips']} clip(s) from {counts['sources'] - counts['unreadable']} "
               f"video(s) ({counts['unreadable']} unreadable) in {counts['shards']} shard(s) in {out} "
               f"({seconds:.1f} s); dropped: {dropped or 'none'}; report: {out / 'report'}")


@app.command("filter")
def filter_(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder written by vidiff data curate.")],
    min_motion: Annotated[Optional[float], typer.Option(help="Optical-flow bounds (px/frame at 256 px).")] = None,
    max_motion: Annotated[Optional[float], typer.Option()] = None,
    max_camera: Annotated[Optional[float], typer.Option(help="Camera-motion bound (px/frame at 256 px).")] = None,
    min_sharpness: Annotated[Optional[float], typer.Option(help="Laplacian-variance bound (blur).")] = None,
    min_brightness: Annotated[Optional[float], typer.Option(help="Mean-luma bound in [0, 1] (darkness).")] = None,
    min_aspect: Annotated[Optional[float], typer.Option(help="Width / height bounds.")] = None,
    max_aspect: Annotated[Optional[float], typer.Option()] = None,
    max_text: Annotated[Optional[float], typer.Option(help="Largest fraction of the frame covered by text.")] = None,
    dedupe_distance: Annotated[Optional[float], typer.Option(help="Perceptual-hash distance (bits of 64) "
                                                                  "under which clips are duplicates.")] = None,
    caption_query: Annotated[Optional[str], typer.Option(help="Keep captioned clips similar to this text.")] = None,
    min_caption_similarity: Annotated[Optional[float], typer.Option()] = None,
) -> None:
    """Re-filter a curated dataset with new thresholds from its stored scores (no video is decoded);
    rewrites the shards, manifest.json and the report. Options left out keep their current values."""
    from ..data.curate import refilter

    t0 = time.perf_counter()
    counts = refilter(dataset, min_motion=min_motion, max_motion=max_motion, max_camera=max_camera,
                      min_sharpness=min_sharpness, min_brightness=min_brightness, min_aspect=min_aspect,
                      max_aspect=max_aspect, max_text=max_text, dedupe_distance=dedupe_distance,
                      caption_query=caption_query, min_caption_similarity=min_caption_similarity)
    _print_counts(counts, dataset, time.perf_counter() - t0)


def register(parent: typer.Typer) -> None:
    """Add the `data` command group."""
    parent.add_typer(app, name="data")
