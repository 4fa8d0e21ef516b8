"""Cascaded video generation in the style of Imagen Video (Ho et al. 2022): base → TSR → SSR.

A base model makes a short, small, low-fps video; a temporal super-resolution (TSR) model fills in the
frames between its frames (conditioned on them by concatenation, with a frame mask); a spatial
super-resolution (SSR) model doubles height and width (conditioned on the bilinearly upsampled video,
noised to a fixed small level: Gaussian noise-conditioning augmentation, Ho et al. 2021). Each SR
stage is an ordinary checkpoint trained with `vidiff train --condition tsr|ssr`; factors are powers of
`SR_FACTOR` (2) and a factor 4 runs the stage twice. The U-Net is convolutional, so an SSR model trained
at 16→32 also takes 32→64 when its backbone accepts the size (`check_size`); otherwise the error says so.

    y = upsample(tsr_pipe, ssr_pipe, video, space=2, time=2, steps=25, seed=0)  # (B, C, 2F, 2H, 2W)
    videos = CascadePipeline.from_config("cascade.yaml")(num=4, seed=0)       # uint8 (N, F, H, W, 3)

A TSR model trained with `--latent VAE` interpolates in its latent space (`pipelines.keyframes`, Video LDM):
all its passes run on latents and the result is decoded once; after a latent base of the same autoencoder
the keyframe latents go to it as sampled, never decoded in between. SSR stages are pixel models.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
from torch import Tensor

from ..bundled import available, find_cascade
from ..conditioning.tasks import NOISE_AUG_SAMPLE, SR_FACTOR, sr_request_cond
from ..limits import check_sampling
from ..utils import VidiffError
from .base import VideoPipeline
from .keyframes import interpolate_video, keyframes_then_interpolate
from .latent import LatentVideoPipeline

__all__ = ["StageConfig", "CascadeConfig", "CascadePipeline", "bundled_cascades", "resolve_cascade", "upsample",
           "upsample_stages"]

STAGE_FLAGS = {"tsr": ("time", "--tsr-model", "temporal"), "ssr": ("space", "--ssr-model", "spatial")}


@dataclass(frozen=True)
class StageConfig:
    """One stage of a cascade: a bundled model name or checkpoint folder, its sampling steps and sampler
    (None: the cascade's)."""

    model: str
    steps: int = 25
    sampler: Optional[str] = None


@dataclass(frozen=True)
class CascadeConfig:
    """A cascade recipe (YAML/JSON with these keys): the base stage, optional TSR and SSR stages, the
    total temporal / spatial factors (default: 2 for each stage given, else 1), the sampler and the
    SSR noise-augmentation level used at sampling."""

    base: StageConfig
    tsr: Optional[StageConfig] = None
    ssr: Optional[StageConfig] = None
    time: Optional[int] = None
    space: Optional[int] = None
    sampler: str = "ddim"
    noise_aug: float = NOISE_AUG_SAMPLE

    def __post_init__(self):
        from ..diffusion.samplers import SAMPLERS

        for where, name in [("sampler", self.sampler)] + [(f"{k}.sampler", getattr(self, k).sampler)
                                                           for k in ("base", "tsr", "ssr") if getattr(self, k)]:
            if name is not None and name not in SAMPLERS:
                raise VidiffError(f"cascade config: unknown {where} {name!r}; "
                                  f"choose one of {', '.join(sorted(SAMPLERS))}")

    @classmethod
    def load(cls, path: str | Path) -> "CascadeConfig":
        """Read a cascade YAML/JSON, or a bundled cascade by name (`bundled_cascades`); a stage may be
        given as a bare model name; model paths relative to the file's folder are found there."""
        from ..config import config_from_dict, load_yaml_or_json

        path = resolve_cascade(path)
        data = load_yaml_or_json(path)
        if "base" not in data:
            raise VidiffError(f"cascade config {path} has no 'base' stage; "
                              f"add e.g. base: {{model: shapes-tiny, steps: 25}}")
        for key in ("base", "tsr", "ssr"):
            stage = data.get(key)
            if isinstance(stage, str):
                stage = data[key] = {"model": stage}
            if isinstance(stage, dict) and isinstance(stage.get("model"), str):
                local = path.parent / stage["model"]
                if not Path(stage["model"]).is_absolute() and local.is_dir():
                    stage["model"] = str(local)
        return config_from_dict(cls, data, where="cascade config")

    @property
    def factors(self) -> tuple[int, int]:
        """(time, space): the given factors, else SR_FACTOR for each stage present and 1 otherwise."""
        time = self.time if self.time is not None else (SR_FACTOR if self.tsr else 1)
        space = self.space if self.space is not None else (SR_FACTOR if self.ssr else 1)
        return time, space


def bundled_cascades() -> list[str]:
    """Names of the cascade configs (NAME.yaml) on the model search path (`vidiff.bundled`)."""
    return list(available("cascade"))


def resolve_cascade(name_or_path: str | Path) -> Path:
    """A cascade config file, or the name of one on the model search path -> its path; neither is a
    one-line error listing the folders searched."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    return find_cascade(str(name_or_path))


# --- upsampling ----------------------------------------------------------------------------------

def _passes(factor: int, kind: str, pipe: VideoPipeline | None) -> int:
    """How many SR_FACTOR× passes a factor takes; a missing or wrong model is a one-line error."""
    what, flag, adj = STAGE_FLAGS[kind]
    if not isinstance(factor, (int, np.integer)) or isinstance(factor, bool) or factor < 1:
        raise VidiffError(f"--{what} must be a positive integer; got {factor!r}")
    n, f = 0, int(factor)
    while f > 1 and f % SR_FACTOR == 0:
        f, n = f // SR_FACTOR, n + 1
    if f != 1:
        raise VidiffError(f"--{what} must be 1 or a power of {SR_FACTOR} (each {kind.upper()} pass multiplies "
                          f"by {SR_FACTOR}); got {factor}")
    if n and pipe is None:
        raise VidiffError(f"--{what} {factor} needs a {adj} super-resolution model: pass {flag} PATH "
                          f"(or --{what} 1)")
    if pipe is not None:
        kinds = pipe.condition
        if kind not in kinds:
            took = "+".join(kinds) or "none"
            raise VidiffError(f"{pipe.name} is not a {adj} super-resolution model (it was trained with condition "
                              f"{took!r}); give a model trained with `vidiff train --condition {kind}` to {flag}")
        if len(kinds) > 1:
            raise VidiffError(f"{pipe.name} is also conditioned on {'+'.join(k for k in kinds if k != kind)}; "
                              f"cascade stages must be conditioned on the low-res video only")
        if kind == "ssr" and isinstance(pipe, LatentVideoPipeline):
            raise VidiffError(f"{pipe.name} is a latent model; spatial super-resolution stages run on pixels: "
                              f"give {flag} a model trained without --latent")
    return n


def _check_size(pipe: VideoPipeline, kind: str, frames: int, size: int, given: str) -> None:
    if hasattr(pipe.model, "check_size"):
        try:
            pipe.model.check_size(frames, size, size)
        except VidiffError as e:
            raise VidiffError(f"the {kind.upper()} model {pipe.name} cannot turn {given} into {frames} frames of "
                              f"{size}x{size}: {e}") from None


def _load_video(video) -> Tensor:
    """A square input video as (B, C, F, H, W) in [-1, 1] (see `extend.prepare_video`; never resized)."""
    from ..data.io import read_video
    from .extend import prepare_video

    if isinstance(video, (str, Path)):
        video = read_video(video)  # uint8 (F, H, W, 3)
    if isinstance(video, np.ndarray) or (torch.is_tensor(video) and video.dtype == torch.uint8):
        h, w = np.shape(video)[-3:-1]  # (..., H, W, 3)
    elif torch.is_tensor(video):
        h, w = video.shape[-2:]  # (..., C, F, H, W)
    else:
        raise VidiffError(f"cannot use {type(video).__name__} as a video; give a path, a uint8 array or a tensor")
    if h != w:
        raise VidiffError(f"upsampling needs square frames; the input is {w}x{h}: crop it to a square first")
    return prepare_video(video, int(h), what="input video")  # (B, C, F, H, W)


def _stage(pipe: VideoPipeline, kind: str, x: Tensor, *, steps: int, sampler: str, seed: int,
           noise_aug: float, batch_size: int, progress: bool) -> Tensor:
    """One SR_FACTOR× pass of a TSR or SSR model over x (B, C, F, H, W) in [-1, 1]."""
    from ..data.io import from_uint8

    B, C, Fr, H, W = x.shape
    if C != pipe.video.channels:
        raise VidiffError(f"the {kind.upper()} model {pipe.name} makes {pipe.video.channels}-channel videos; "
                          f"the input has {C} channels")
    frames, size = (Fr * SR_FACTOR, H) if kind == "tsr" else (Fr, H * SR_FACTOR)
    if kind == "tsr" and Fr < 2:
        raise VidiffError(f"temporal upsampling needs a video of at least 2 frames; the input has {Fr}")
    _check_size(pipe, kind, frames, size, f"{Fr} frames of {H}x{W}")
    cond = sr_request_cond(kind, x, factor=SR_FACTOR, noise_aug=noise_aug, seed=seed)
    y = pipe(B, cond=cond, frames=frames, size=size, steps=steps, sampler=sampler, seed=seed,
             batch_size=batch_size, progress=progress)  # uint8 (B, F', H', W', C)
    y = from_uint8(y).to(x)  # (B, C, F', H', W')
    if kind == "tsr":
        y[:, :, ::SR_FACTOR] = x  # the given frames exactly, as in `interpolate`
    return y


def upsample_stages(tsr: VideoPipeline | str | None, ssr: VideoPipeline | str | None, video, *, space: int = 2,
                    time: int = 2, steps: int = 25, tsr_steps: int | None = None, ssr_steps: int | None = None,
                    sampler: str = "ddim", seed: int = 0, noise_aug: float = NOISE_AUG_SAMPLE, batch_size: int = 8,
                    progress: bool = False, tsr_sampler: str | None = None,
                    ssr_sampler: str | None = None) -> Iterator[tuple[str, Tensor]]:
    """Yield ("tsr" | "ssr", x (B, C, F, H, W)) after each pass of `upsample` (time first, at low res);
    `tsr_sampler` / `ssr_sampler` override `sampler` for one stage."""
    from .extend import as_pipeline

    tsr = as_pipeline(tsr) if tsr is not None else None
    ssr = as_pipeline(ssr) if ssr is not None else None
    n_time, n_space = _passes(time, "tsr", tsr), _passes(space, "ssr", ssr)
    if not n_time and not n_space:
        raise VidiffError("nothing to upsample: ask for --space 2 and/or --time 2")
    x = _load_video(video)  # (B, C, F, H, W)
    B, _, F0, H0, _ = x.shape
    last = ssr if n_space else tsr  # the last pass is the largest: refuse before the first if it cannot fit
    c, f, h, w = last.sample_shape(F0 * time, H0 * space)  # what it samples: latents for a latent TSR
    check_sampling(getattr(last.model, "config", None), num=B, batch=batch_size, frames=f, height=h, width=w,
                   channels=c, steps=(ssr_steps if n_space else tsr_steps) or steps,
                   what="upsampling to" if c == x.shape[1] else "upsampling (in latents) to")
    opts = dict(seed=seed, noise_aug=noise_aug, batch_size=batch_size, progress=progress)
    if n_time and isinstance(tsr, LatentVideoPipeline):  # every pass in its latent space, decoded once
        x = interpolate_video(tsr, x, n_time, steps=tsr_steps or steps, sampler=tsr_sampler or sampler, seed=seed,
                              batch_size=batch_size, progress=progress)  # (B, C, F·time, H, W)
        yield "tsr", x
        n_time = 0
    for _ in range(n_time):
        x = _stage(tsr, "tsr", x, steps=tsr_steps or steps, sampler=tsr_sampler or sampler, **opts)  # (B, C, 2F, H, W)
        yield "tsr", x
    for _ in range(n_space):
        x = _stage(ssr, "ssr", x, steps=ssr_steps or steps, sampler=ssr_sampler or sampler, **opts)  # (B, C, F, 2H, 2W)
        yield "ssr", x


def upsample(tsr: VideoPipeline | str | None, ssr: VideoPipeline | str | None, video, *, space: int = 2,
             time: int = 2, steps: int = 25, tsr_steps: int | None = None, ssr_steps: int | None = None,
             sampler: str = "ddim", seed: int = 0, noise_aug: float = NOISE_AUG_SAMPLE, batch_size: int = 8,
             progress: bool = False) -> Tensor:
    """Upsample `video` `time`× in frames with the TSR model and `space`× in height and width with the SSR
    model (Imagen Video): (B, C, F·time, H·space, W·space) in [-1, 1], unbatched if the input was.

    `video`: a path, uint8 (F, H, W, 3) / (B, F, H, W, 3), or float (C, F, H, W) / (B, C, F, H, W) in
    [-1, 1], with square frames. The given frames stay at every time-th output frame; SSR conditioning
    is noised to `noise_aug`; video i's noise depends only on seed + i."""
    from .extend import is_batched_video

    x = None
    for _, x in upsample_stages(tsr, ssr, video, space=space, time=time, steps=steps, tsr_steps=tsr_steps,
                                ssr_steps=ssr_steps, sampler=sampler, seed=seed, noise_aug=noise_aug,
                                batch_size=batch_size, progress=progress):
        pass
    return x if is_batched_video(video) else x[0]


# --- the cascade ---------------------------------------------------------------------------------

class CascadePipeline:
    """base → TSR → SSR sampling from one `CascadeConfig` (Imagen Video)."""

    def __init__(self, base: VideoPipeline, tsr: VideoPipeline | None = None, ssr: VideoPipeline | None = None,
                 config: CascadeConfig | None = None):
        self.base, self.tsr, self.ssr = base, tsr, ssr
        self.config = config or CascadeConfig(StageConfig(base.name), tsr=StageConfig(tsr.name) if tsr else None,
                                              ssr=StageConfig(ssr.name) if ssr else None)
        _passes(self.config.factors[0], "tsr", tsr)  # fail at load time, not after the base stage
        _passes(self.config.factors[1], "ssr", ssr)

    @classmethod
    def from_config(cls, config: CascadeConfig | str | Path) -> "CascadePipeline":
        """Load the stages named by a CascadeConfig or a cascade YAML/JSON file."""
        from . import load_pipeline

        cfg = config if isinstance(config, CascadeConfig) else CascadeConfig.load(config)
        return cls(load_pipeline(cfg.base.model), load_pipeline(cfg.tsr.model) if cfg.tsr else None,
                   load_pipeline(cfg.ssr.model) if cfg.ssr else None, cfg)

    @property
    def fps(self) -> float:
        """Playback rate of the output: the base's times the temporal factor."""
        return self.base.video.fps * self.config.factors[0]

    def __call__(self, num: int = 1, *, seed: int = 0, prompt: str | None = None, class_id: int | None = None,
                 image=None, guidance: float = 0.0, batch_size: int = 8, progress: bool = False,
                 return_stages: bool = False) -> Tensor | dict[str, Tensor]:
        """Generate `num` videos as uint8 (N, F, H, W, 3); `prompt` / `class_id` / `image` / `guidance` go
        to the base model. `return_stages`: {"base": …, "tsr": …, "ssr": …} after each stage (a latent TSR's
        keyframes are then decoded for "base" too; otherwise the one decode is the interpolated video's)."""
        from ..data.io import from_uint8, to_uint8

        cfg = self.config
        time, space = cfg.factors
        base_options = dict(steps=cfg.base.steps, sampler=cfg.base.sampler or cfg.sampler, seed=seed, prompt=prompt,
                            class_id=class_id, image=image, guidance=guidance, batch_size=batch_size,
                            progress=progress)
        if time > 1 and isinstance(self.tsr, LatentVideoPipeline):  # Video LDM: keyframes -> latent interpolation
            out = keyframes_then_interpolate(self.base, self.tsr, num, passes=_passes(time, "tsr", self.tsr),
                                             tsr_steps=cfg.tsr.steps, tsr_sampler=cfg.tsr.sampler or cfg.sampler,
                                             **base_options)
            stages = {"base": torch.from_numpy(to_uint8(self.base.to_pixels(out.keyframes)))} if return_stages else {}
            stages["tsr"] = torch.from_numpy(to_uint8(out.video))  # (N, F·time, H, W, 3)
            low, time = out.video, 1
        else:
            stages = {"base": self.base(num, **base_options)}  # uint8 (N, F, H, W, 3)
            low = from_uint8(stages["base"])
        if time > 1 or space > 1:
            for kind, x in upsample_stages(self.tsr, self.ssr, low, space=space, time=time,
                                           tsr_steps=cfg.tsr.steps if cfg.tsr else None,
                                           ssr_steps=cfg.ssr.steps if cfg.ssr else None, sampler=cfg.sampler,
                                           tsr_sampler=cfg.tsr.sampler if cfg.tsr else None,
                                           ssr_sampler=cfg.ssr.sampler if cfg.ssr else None,
                                           seed=seed, noise_aug=cfg.noise_aug, batch_size=batch_size,
                                           progress=progress):
                stages[kind] = torch.from_numpy(to_uint8(x))  # (N, F', H', W', 3)
        return stages if return_stages else list(stages.values())[-1]
