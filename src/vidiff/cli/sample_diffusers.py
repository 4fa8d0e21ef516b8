"""`vidiff sample --model FOLDER` on a user's diffusers folder: Stable Diffusion (text to image, `--prompt`) or
Stable Video Diffusion (image to video, `--image`, with SVD's micro-conditions), through
`pipelines.stable_diffusion.StableDiffusion` and `pipelines.image_to_video.ImageToVideo`.

Options left at their defaults take the pipeline's own (one sample; SD: DDIM, 50 steps, guidance 6.5, the UNet's sample
size; SVD: Euler, 25 steps, 576×1024, guidance rising from scale 1 on the first frame to 3 on the last).
"""
from __future__ import annotations

import time
from pathlib import Path

import typer

from ..utils import VidiffError
from .output import check_outputs, echo_written, write_videos

SD_DEFAULTS = {"sampler": "ddim", "steps": 50, "guidance": 6.5}
SVD_DEFAULTS = {"sampler": "euler", "steps": 25, "min_guidance": 1.0, "max_guidance": 3.0, "fps": 7.0,
                "motion_bucket": 127.0, "noise_aug": 0.02}
SVD_ONLY = ("image", "fps", "motion_bucket", "noise_aug", "min_guidance", "max_guidance", "decode_chunk")
SVD_SIZE = (576, 1024)  # (H, W) Stable Video Diffusion was trained at, diffusers' default
NOT_HERE = ("class_id", "autoguidance", "window", "overlap", "tile", "snr", "corrector_steps", "corrector_range",
            "speed")


def flag(name: str) -> str:
    return "--class" if name == "class_id" else "--" + name.replace("_", "-")


def given_options(params: dict, ctx=None) -> dict:
    """The options set on the command line (`ctx`, the command's context, knows which were left at their
    defaults); without a context every option that is not None counts as given."""
    if ctx is None:
        return {k: v for k, v in params.items() if v is not None}
    given = {}
    for k, v in params.items():
        source = ctx.get_parameter_source(k) if k in ctx.params else None
        if source is not None and source.name != "DEFAULT":
            given[k] = v
    return given


def sample_diffusers(folder: str, params: dict, ctx=None) -> None:
    """Sample a diffusers folder with the `vidiff sample` options `params` (its keyword arguments; `ctx` its
    context, to tell the options given from those left at their defaults)."""
    from ..models.diffusers_io import STABLE_DIFFUSION, read_layout

    given = given_options(params, ctx)
    layout = read_layout(folder)  # a missing component or an unsupported class: one line naming both
    svd = layout.kind != STABLE_DIFFUSION
    unused = [k for k in NOT_HERE if given.get(k) is not None]
    unused += [k for k in (("prompt", "guidance", "guidance_rescale") if svd else SVD_ONLY)
               if given.get(k) is not None]
    if unused:
        what = "Stable Video Diffusion (image to video)" if svd else "Stable Diffusion (text to image)"
        raise VidiffError(f"{', '.join(flag(k) for k in unused)} does not apply to {folder}, a diffusers {what} "
                          "folder")
    opts = {**(SVD_DEFAULTS if svd else SD_DEFAULTS), **given}
    if svd and params.get("image") is None:
        raise VidiffError(f"{folder} is a Stable Video Diffusion folder: give the first frame with --image FILE")
    if svd and not Path(params["image"]).is_file():
        raise VidiffError(f"image {params['image']} not found; give a PNG/JPEG file for --image")
    if not svd and not params.get("prompt"):
        raise VidiffError(f"{folder} is a Stable Diffusion folder: give a text prompt with --prompt \"...\"")
    if svd and opts.get("fps") is not None and not opts["fps"] >= 1:
        raise VidiffError(f"--fps must be >= 1 (Stable Video Diffusion sees fps - 1); got {opts['fps']:g}")

    from ..pipelines.image_to_video import ImageToVideo
    from ..pipelines.stable_diffusion import StableDiffusion

    pipe = ImageToVideo.from_pretrained(layout.folder) if svd else StableDiffusion.from_pretrained(layout.folder)
    num, seed, steps, sampler = given.get("num", 1), params["seed"], opts["steps"], opts["sampler"]
    if svd:
        frames = params.get("frames") or pipe.frames
        height, width = params.get("height") or SVD_SIZE[0], params.get("width") or SVD_SIZE[1]
        fps = opts["fps"]
    else:
        frames = params.get("frames") or 1
        height = params.get("height") or pipe.sample_size
        width = params.get("width") or pipe.sample_size
        pipe.check_size(height, width)
        fps = 8.0
    out, name, formats = params["out"], params["name"], params["format"]
    check_outputs(out, name, formats, params["overwrite"], params["scale"], (frames, height, width))
    t0 = time.perf_counter()
    if svd:
        videos = pipe(params["image"], num, frames=frames, height=height, width=width, fps=fps,
                      motion_bucket=opts["motion_bucket"], noise_aug=opts["noise_aug"],
                      guidance_first=opts["min_guidance"] - 1, guidance_last=opts["max_guidance"] - 1,
                      steps=steps, sampler=sampler, seed=seed, decode_chunk=params.get("decode_chunk"))
        summary = (f"motion bucket {min(max(opts['motion_bucket'], 0), 255):g}, fps {fps:g}, noise aug "
                   f"{opts['noise_aug']:g}, guidance scale {opts['min_guidance']:g} to {opts['max_guidance']:g}")
    else:
        videos = pipe(params["prompt"], num, guidance=opts["guidance"], steps=steps, sampler=sampler, seed=seed,
                      height=height, width=width, frames=frames)
        summary = f"guidance {opts['guidance']:g}"
    dt = time.perf_counter() - t0
    written = write_videos(videos, Path(out), name, formats, fps, params["scale"], params["overwrite"])
    typer.echo(f"generated {num} video(s) {tuple(videos.shape[1:])} with {Path(folder).name} in {dt:.1f}s "
               f"({sampler}, {steps} steps, seed {seed}, {summary})")
    echo_written(written)
