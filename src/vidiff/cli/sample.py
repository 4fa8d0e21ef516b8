"""`vidiff sample` (long videos included) and `vidiff info`."""
from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..utils import VidiffError
from .options import (DEFAULT_FORMATS, DEFAULT_MODEL, DEFAULT_SAMPLER, DEFAULT_STEPS, Autoguidance, ClassId,
                      DecodeChunk, Format, Guidance, Model, Name, Num, Out, Overwrite, Prompt, Sampler, Scale, Seed,
                      Steps, Tile)
from .output import autoguidance_text, check_outputs, echo_written, write_videos


def corrector_options(sampler: str, snr: float | None, steps: int | None, time_range: str | None) -> dict:
    """The `pc` sampler's keywords from --snr / --corrector-steps / --corrector-range ("LO,HI");
    any of them with another sampler is a one-line error."""
    given = {k: v for k, v in (("snr", snr), ("corrector_steps", steps), ("corrector_range", time_range))
             if v is not None}
    if given and sampler != "pc":
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        verb = "applies" if len(given) == 1 else "apply"
        raise VidiffError(f"{flags} {verb} only to --sampler pc (the Langevin corrector); got --sampler {sampler}")
    if time_range is not None:
        try:
            lo, hi = (float(v) for v in time_range.split(","))
        except ValueError:
            raise VidiffError(f"--corrector-range takes two times LO,HI such as 0.2,0.8; got {time_range!r}") from None
        given["corrector_range"] = (lo, hi)
    return given


def sample(
    ctx: typer.Context,
    model: Model = DEFAULT_MODEL,
    num: Num = 8,
    frames: Annotated[Optional[int], typer.Option(min=1, help="frames per video (default: the model's)")] = None,
    steps: Steps = DEFAULT_STEPS,
    sampler: Sampler = DEFAULT_SAMPLER,
    snr: Annotated[Optional[float], typer.Option(
        help="pc: the corrector's signal-to-noise ratio r (default 0.16)")] = None,
    corrector_steps: Annotated[Optional[int], typer.Option(
        min=0, help="pc: Langevin steps after each step (default 1)")] = None,
    corrector_range: Annotated[Optional[str], typer.Option(
        help="pc: correct only at times t in LO,HI (default 0,1)")] = None,
    seed: Seed = 0,
    out: Out = Path("outputs"),
    name: Name = "samples",
    format: Format = DEFAULT_FORMATS,
    scale: Scale = 4,
    prompt: Prompt = None,
    class_id: ClassId = None,
    image: Annotated[Optional[Path], typer.Option(help="first frame, PNG/JPEG (first-frame models)")] = None,
    guidance: Guidance = 0.0,
    guidance_rescale: Annotated[float, typer.Option(help="CFG rescale phi in [0, 1] (Lin et al. 2024)")] = 0.0,
    autoguidance: Autoguidance = None,
    window: Annotated[Optional[int], typer.Option(
        min=1, help="temporal window for long videos (default: the model's length when --frames exceeds it; "
                    "MultiDiffusion)")] = None,
    overlap: Annotated[Optional[int], typer.Option(
        min=0, help="frames shared by neighbouring windows (default: half)")] = None,
    overwrite: Overwrite = False,
    decode_chunk: DecodeChunk = None,
    tile: Tile = None,
    height: Annotated[Optional[int], typer.Option(min=1, help="diffusers folders: frame height")] = None,
    width: Annotated[Optional[int], typer.Option(min=1, help="diffusers folders: frame width")] = None,
    fps: Annotated[Optional[float], typer.Option(help="Stable Video Diffusion (and vidiff models trained with "
                                                 "--micro fps): frame rate it is conditioned on (default 7; vidiff: "
                                                 "the training median)")] = None,
    motion_bucket: Annotated[Optional[float], typer.Option(
        help="Stable Video Diffusion (and vidiff --micro motion): motion bucket in [0, 255], more is more motion "
             "(default 127; vidiff: the training median, clamped to the trained range)")] = None,
    speed: Annotated[Optional[float], typer.Option(
        help="vidiff models trained with --micro speed: the object's displacement per frame in pixels "
             "(default: the training median, clamped to the trained range)")] = None,
    noise_aug: Annotated[Optional[float], typer.Option(
        min=0, help="Stable Video Diffusion (and vidiff --cond-noise-aug): noise added to the first frame "
                    "(default 0.02)")] = None,
    min_guidance: Annotated[Optional[float], typer.Option(
        help="Stable Video Diffusion: guidance scale on the first frame, 1 = none (default 1)")] = None,
    max_guidance: Annotated[Optional[float], typer.Option(
        help="Stable Video Diffusion: guidance scale on the last frame (default 3)")] = None,
    trajectory: Annotated[Optional[Path], typer.Option(
        help="trajectory JSON, per-frame points or keypoints of each object (docs/control.md); for models "
             "trained with --condition trajectory")] = None,
    drag: Annotated[Optional[str], typer.Option(
        metavar="X0,Y0:X1,Y1", help="move what is under X0,Y0 of --image to X1,Y1 over the clip (trajectory "
                                    "models; pixels)")] = None,
    physics: Annotated[Optional[str], typer.Option(
        help="physics-aware guidance: smooth (the object keeps its velocity between wall bounces)")] = None,
    physics_weight: Annotated[Optional[float], typer.Option(
        min=0, help="weight of --physics guidance (default 1; 0 samples as without it)")] = None,
):
    """Generate videos with a trained model, or with a Stable Diffusion / Stable Video Diffusion diffusers folder."""
    from ..models.diffusers_io import is_diffusers_folder

    if is_diffusers_folder(model):  # a user's SD / SVD weights (cli/sample_diffusers.py)
        from .sample_diffusers import sample_diffusers

        if any(v is not None for v in (trajectory, drag, physics, physics_weight)):
            raise VidiffError("--trajectory, --drag and --physics apply to vidiff checkpoints, not diffusers folders")
        return sample_diffusers(model, dict(locals()), ctx)
    diffusers_only = dict(height=height, width=width, min_guidance=min_guidance, max_guidance=max_guidance)
    svd_only = [k for k, v in diffusers_only.items() if v is not None]
    if svd_only:
        raise VidiffError(f"{', '.join('--' + k.replace('_', '-') for k in svd_only)} apply to diffusers Stable "
                          "Diffusion / Stable Video Diffusion folders; this model is a vidiff checkpoint")
    from ..pipelines import LatentVideoPipeline, load_pipeline

    extra = corrector_options(sampler, snr, corrector_steps, corrector_range)
    decoding = {k: v for k, v in (("decode_chunk", decode_chunk), ("tile", tile)) if v is not None}
    pipe = load_pipeline(model, **decoding)
    if decoding and not isinstance(pipe, LatentVideoPipeline):
        raise VidiffError("--decode-chunk and --tile apply to latent models only; this model samples pixels")
    check_outputs(out, name, format, overwrite, scale, (frames or pipe.video.frames, pipe.video.size, pipe.video.size))
    from ..pipelines.control import control_request  # trajectory / drag / physics: pipelines/control.py

    control = control_request(pipe, num=num, frames=frames, trajectory=trajectory, drag=drag, image=image,
                              physics=physics, physics_weight=physics_weight, prompt=prompt, class_id=class_id,
                              long=window is not None or (frames is not None and frames > pipe.video.frames))
    svd = svd_request(pipe, ctx, sampler=sampler, base=control.get("cond"), num=num, frames=frames, seed=seed,
                      prompt=prompt, class_id=class_id, image=image, fps=fps, motion=motion_bucket, speed=speed,
                      noise_aug=noise_aug)
    svd_cond = None
    if svd is not None:
        sampler, svd_cond = svd
        if svd_cond is not None:
            control["cond"] = svd_cond  # micro-conditions and the noised first frame (cond of a trajectory too)
    t0 = time.perf_counter()
    if window is not None or (frames is not None and frames > pipe.video.frames):
        from ..data.io import to_uint8
        from ..pipelines.long import sample_long

        if svd_cond is not None and (svd_cond.micro is not None or svd_cond.noise_aug is not None):
            raise VidiffError("long videos (--window, --frames > the model's length) are not supported for models "
                              "trained with micro-conditions or first-frame noise augmentation")
        if image is not None:
            raise VidiffError("--image with a long video (--frames > the model's length) is not supported; "
                              "generate the first window with --image, then `vidiff extend` it")
        long = pipe.sample_long if isinstance(pipe, LatentVideoPipeline) else partial(sample_long, pipe)
        videos = to_uint8(long(num, frames=frames or pipe.video.frames, window=window, overlap=overlap,
                               steps=steps, sampler=sampler, seed=seed, prompt=prompt, class_id=class_id,
                               guidance=guidance, guidance_rescale=guidance_rescale, autoguidance=autoguidance,
                               **extra))
    else:
        videos = pipe(num=num, frames=frames, steps=steps, sampler=sampler, seed=seed, progress=True,
                      prompt=prompt, class_id=class_id, image=image, guidance=guidance, **control,
                      guidance_rescale=guidance_rescale, autoguidance=autoguidance, **extra)
    ag_text = autoguidance_text(pipe, autoguidance)
    dt = time.perf_counter() - t0
    written = write_videos(videos, out, name, format, pipe.video.fps, scale, overwrite)
    typer.echo(f"generated {num} video(s) {tuple(videos.shape[1:])} with {pipe.name} "
               f"in {dt:.1f}s ({sampler}, {steps} steps, seed {seed}"
               + "".join(f", {k} {v}" for k, v in extra.items())
               + (f", guidance {guidance:g}" if guidance else "")
               + (f", physics {physics}" if physics else "")
               + ag_text + ")")
    echo_written(written)


def svd_request(pipe, ctx, *, sampler: str, base=None, num: int, frames: int | None, seed: int, fps, motion, speed,
                noise_aug, **request) -> tuple[str, object] | None:
    """For a vidiff checkpoint trained with EDM, micro-conditions or first-frame noise augmentation: the sampler
    (Heun on EDM's grid unless --sampler is given) and the request's Cond with its micro-conditions (clamped to
    the trained range with a notice) and noised first frame, completing `base` when another control built the
    Cond; None for any other model."""
    from ..conditioning.micro import request_svd_cond

    conditioning = pipe.config.get("conditioning") or {}
    edm = pipe.diffusion.schedule == "edm"
    if not edm and not conditioning.get("micro") and not conditioning.get("cond_noise_aug"):
        if any(v is not None for v in (fps, motion, speed, noise_aug)):
            request_svd_cond(None, conditioning, num, channels=3, fps=fps, motion=motion, speed=speed,
                             noise_aug=noise_aug)  # a one-line error naming the flags
        return None
    source = ctx.get_parameter_source("sampler") if ctx is not None else None
    sampler = "heun" if edm and (source is None or source.name == "DEFAULT") else sampler
    if not conditioning.get("micro") and not conditioning.get("cond_noise_aug"):
        return sampler, None  # EDM alone: the pipeline builds the Cond as for any model
    f = frames or pipe.video.frames
    cond = base if base is not None else pipe.make_cond(num, f, pipe.video.size, **request)
    c = pipe.sample_shape(f, pipe.video.size)[0]
    return sampler, request_svd_cond(cond, conditioning, num, channels=c, seed=seed, fps=fps, motion=motion,
                                     speed=speed, noise_aug=noise_aug)


def info(path: Annotated[str, typer.Argument(help="checkpoint folder or bundled model name")]):
    """A checkpoint's config, parameter count and training summary."""
    from ..checkpoint import WEIGHTS_NAME, load_state_dict, read_config
    from ..pipelines import resolve_model
    from ..pipelines.base import check_checkpoint_config

    folder = resolve_model(path)
    cfg = read_config(folder)
    check_checkpoint_config(cfg, folder)
    n = sum(t.numel() for t in load_state_dict(folder / WEIGHTS_NAME).values())
    typer.echo(f"checkpoint: {folder}")
    typer.echo(f"parameters: {n:,}")
    for section in ("model", "diffusion", "video", "latent", "summary", "autoguidance", "train"):
        if section in cfg:
            typer.echo(f"{section}: {json.dumps(cfg[section], sort_keys=True)}")


def register(app: typer.Typer) -> None:
    app.command("sample")(sample)
    app.command("info")(info)
