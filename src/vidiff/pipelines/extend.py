"""Extension and interpolation with an unconditional model (Ho et al. 2022, Video Diffusion Models, sec. 3.1).

A window of the model's length is sampled with some frames known (xᵃ) and the rest generated (xᵇ):

* "reconstruction" — VDM eq. 7: x̃ᵇ = x̂ᵇ − (w_r α_t / 2) ∇_{zᵇ} ‖xᵃ − x̂ᵃ(z_t)‖², and x̃ᵃ = xᵃ
  (`vidiff.diffusion.ReconstructionGuidance`). The gradient tells the generated frames how to change so
  that the model's own reconstruction of the known frames agrees with the data.
* "replacement" — the naive baseline of VDM sec. 3.1 (Song et al. 2021): x̂ᵃ := xᵃ and nothing else.
  With x̂ᵃ = xᵃ every sampler keeps zᵃ_t on a forward-noised copy α_t xᵃ + σ_t ε of the data, so this is
  "replace the known frames of z_t by noised data"; it equals `ReconstructionGuidance(weight=0)`
  without the wasted backward pass (tested).

`extend` is autoregressive: each new window starts with the last `context` frames so far (known) and
generates `window − context` new ones. `interpolate` places the given frames at every `factor`-th
position of a window and generates the frames between them; windows share their end frames and are
independent given them, so they run in batches.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..conditioning import Cond
from ..conditioning.image_embed import frame_embedding_cond
from ..diffusion import Denoiser, ReconstructionGuidance, SelfConditioning, expand_mask, sample, sample_generators
from ..diffusion.param import Prediction, broadcast, time_vector
from ..limits import check_memory, check_positive, estimate_training_bytes, eta_notice, sampling_seconds
from ..utils import VidiffError
from .base import initial_noise, is_self_conditioned
from .latent import LatentVideoPipeline

__all__ = ["METHODS", "DEFAULT_WEIGHT", "Replacement", "prepare_video", "fill_frames", "extend", "extend_frames",
           "interpolate", "interpolate_frames", "interpolation_windows"]

METHODS = ("reconstruction", "replacement")
DEFAULT_WEIGHT = 8.0  # w_r of VDM eq. 7 (VDM: w_r > 1 works best); shapes-tiny smoke run best near 8-16, see docs


class Replacement:
    """The replacement method (VDM sec. 3.1; Song et al. 2021): x̂ᵃ := xᵃ on the known part, x̂ᵇ
    untouched, ε̂ and v̂ re-derived from x̃₀; no gradient. `mask` as in `expand_mask`."""

    def __init__(self, denoiser: Callable, x_known: Tensor, mask: Tensor):
        self.denoiser, self.x_known, self.mask = denoiser, x_known, mask

    def __call__(self, z: Tensor, t, schedule, cond: Any = None) -> Prediction:
        if self.x_known.shape != z.shape:
            raise VidiffError(f"x_known shape {tuple(self.x_known.shape)} must equal the sample shape {tuple(z.shape)}")
        pred = self.denoiser(z, t, schedule, cond)
        alpha, sigma = schedule.alpha_sigma(time_vector(t, z))
        x0 = torch.where(expand_mask(self.mask, z), self.x_known.to(pred.x0), pred.x0)
        return Prediction.from_output("x0", x0, z, broadcast(alpha, z), broadcast(sigma, z))


# --- input videos ------------------------------------------------------------------------------------

def prepare_video(video, size: int, channels: int = 3, what: str = "video") -> Tensor:
    """A video as (B, C, F, size, size) float in [-1, 1] from a path, uint8 (F, H, W, 3) / (B, F, H, W, 3)
    array, or float (C, F, H, W) / (B, C, F, H, W) tensor in [-1, 1]; other sizes are centre-cropped to
    square and resized (bilinear, antialiased) with a notice on stderr."""
    from ..data.io import from_uint8, read_video

    if channels != 3:
        raise VidiffError(f"this model makes {channels}-channel videos; extend/interpolate need an RGB "
                          "pixel-space model (3 channels)")
    if isinstance(video, (str, Path)):
        video = read_video(video)
    if isinstance(video, np.ndarray) or (torch.is_tensor(video) and video.dtype == torch.uint8):
        arr = np.asarray(video)
        if arr.ndim not in (4, 5) or arr.shape[-1] != 3:
            raise VidiffError(f"expected uint8 frames (F, H, W, 3); got shape {arr.shape}")
        x = from_uint8(arr if arr.ndim == 5 else arr[None])  # (B, 3, F, H, W)
    elif torch.is_tensor(video):
        x = video.float() if video.dim() == 5 else video.float()[None]
        if x.dim() != 5 or x.shape[1] != 3:
            raise VidiffError(f"expected a video tensor (C, F, H, W) or (B, C, F, H, W) with C = 3; "
                              f"got shape {tuple(video.shape)}")
    else:
        raise VidiffError(f"cannot use {type(video).__name__} as a video; give a path, a uint8 array or a tensor")
    B, C, Fr, h, w = x.shape
    if Fr < 1 or h < 1 or w < 1:
        raise VidiffError(f"the {what} is empty (shape {tuple(x.shape)})")
    if (h, w) != (size, size):
        print(f"note: resizing the {w}x{h} {what} to the model's {size}x{size}", file=sys.stderr)
        s = min(h, w)
        x = x[..., (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        x = x.permute(0, 2, 1, 3, 4).reshape(B * Fr, C, s, s)  # frames as images
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        x = x.reshape(B, Fr, C, size, size).permute(0, 2, 1, 3, 4)  # (B, C, F, size, size)
    return x.clamp(-1, 1).contiguous()


def as_pipeline(pipeline):
    """A VideoPipeline, or one loaded from a bundled model name / checkpoint folder."""
    from . import load_pipeline
    from .base import VideoPipeline

    pipe = load_pipeline(pipeline) if isinstance(pipeline, (str, Path)) else pipeline
    if not isinstance(pipe, VideoPipeline):
        raise VidiffError(f"expected a VideoPipeline or a model name; got {type(pipeline).__name__}")
    return pipe


# --- one window with known frames --------------------------------------------------------------------

def fill_frames(pipeline, x_known: Tensor, mask: Tensor, *, steps: int = 25, sampler: str = "ddim",
                noise: Tensor | None = None, seed: int = 0, method: str = "reconstruction",
                guidance_weight: float = DEFAULT_WEIGHT, cond: Cond | None = None,
                generator: torch.Generator | list[torch.Generator] | None = None, autoguidance: float | None = None,
                clamp: bool = True, **sampler_kwargs) -> Tensor:
    """Sample x (B, C, F, H, W) with the frames where `mask` (B, F) is True held to `x_known` — VDM
    sec. 3.1 conditional sampling by reconstruction guidance (eq. 7) or replacement; in [-1, 1].
    `autoguidance`: the weight of the checkpoint's guide model inside the reconstruction guidance
    (None: the checkpoint's default, 0: off). `generator`: the sampler's fresh noise, one generator or one per
    sample (default: sample i's own, seeded with `seed + i`, which also draws its initial noise). `clamp=False`
    returns the samples as drawn (latents)."""
    pipe = as_pipeline(pipeline)
    if method not in METHODS:
        raise VidiffError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    if generator is None:  # sample i's initial and fresh noise from seed + i alone
        generator = sample_generators(seed, x_known.shape[0])
    noise = initial_noise(pipe.diffusion, tuple(x_known.shape), seed, noise,
                          generators=generator if isinstance(generator, list) else None)  # the model's prior out
    sampler_kwargs.setdefault("noise_prior", pipe.diffusion.build_noise())
    den = pipe.autoguided(Denoiser(pipe.model, parameterization=pipe.diffusion.parameterization), autoguidance)
    # a model that embeds its first frame, given no frame: its null embedding (as its concat reads zeros)
    cond = frame_embedding_cond(cond, pipe.condition, getattr(pipe.model, "config", None), x_known.shape[0])
    if method == "reconstruction":
        den = ReconstructionGuidance(den, x_known, mask, weight=guidance_weight, replace=True)
    else:
        den = Replacement(den, x_known, mask)
    if is_self_conditioned(pipe.model):  # outermost, as in sample_videos: the guided x̂₀ is fed back
        den = SelfConditioning(den)
    model = pipe.model
    was_training = model.training
    model.eval()
    try:
        x = sample(den, noise.to(x_known), pipe.diffusion.build_schedule(), steps, sampler=sampler, cond=cond,
                   generator=generator, **sampler_kwargs)
    finally:
        model.train(was_training)
    return x.clamp(-1, 1) if clamp else x


def check_window_work(pipe, videos: int, n_windows: int, window: int, frames_out: int, height: int, width: int,
                      steps: int, method: str, what: str, batch: int = 1) -> None:
    """Refuse window-by-window work whose output or one guided window would not fit in memory, and give
    an ETA notice for long work — before the first window (reconstruction guidance backpropagates
    through the backbone, so a window costs about a training step)."""
    cfg = getattr(pipe.model, "config", None)
    per_window = estimate_training_bytes(cfg, videos * batch, window, height, width)
    if method != "reconstruction":
        per_window //= 5  # no backward pass: about a sampling step's memory
    out = 3 * videos * pipe.video.channels * frames_out * height * width * 4  # windows, their concatenation, uint8
    check_memory(per_window + out, f"{what} to {frames_out} frames of {height}x{width}", "ask for fewer --frames")
    eta_notice(sampling_seconds(cfg, videos * n_windows, steps, window, height, width,
                                evals_per_step=3 if method == "reconstruction" else 1),
               f"{what} to {frames_out} frames ({n_windows} windows of {steps} steps)")


# --- extension ---------------------------------------------------------------------------------------

def extend(pipeline, video, frames_total: int, *, context: int | None = None, window: int | None = None,
           guidance_weight: float = DEFAULT_WEIGHT, steps: int = 25, sampler: str = "ddim", seed: int = 0,
           method: str = "reconstruction", cond: Cond | None = None, callback: Callable | None = None,
           autoguidance: float | None = None) -> Tensor:
    """Extend `video` to `frames_total` frames autoregressively (VDM sec. 3.1): each window of `window`
    (default: the model's) frames holds the last `context` (default window // 2) frames so far as known
    frames at its start and generates the rest. Returns (B, C, frames_total, H, W) in [-1, 1] (no batch
    dimension if `video` had none); the given frames come first, resized to the model's size.
    `callback(dict(window=j, total=n, frames=F_so_far))` runs after each window; `autoguidance` as in
    `fill_frames`. A latent model encodes the video, extends its latents and decodes them
    (`LatentVideoPipeline.extend`)."""
    pipe = as_pipeline(pipeline)
    options = dict(context=context, window=window, guidance_weight=guidance_weight, steps=steps, sampler=sampler,
                   seed=seed, method=method, cond=cond, callback=callback, autoguidance=autoguidance)
    if isinstance(pipe, LatentVideoPipeline):
        return pipe.extend(video, frames_total, **options)
    pipe.autoguidance_spec(autoguidance)  # no guide -> one-line error before any work
    check_positive(frames_total, "--frames")
    check_positive(steps, "--steps")
    x = prepare_video(video, pipe.video.size, pipe.video.channels)  # (B, C, F0, H, W)
    y = extend_frames(pipe, x, frames_total, **options)
    return y if is_batched_video(video) else y[0]


def extend_frames(pipe, x: Tensor, frames_total: int, *, context: int | None = None, window: int | None = None,
                  guidance_weight: float = DEFAULT_WEIGHT, steps: int = 25, sampler: str = "ddim", seed: int = 0,
                  method: str = "reconstruction", cond: Cond | None = None, callback: Callable | None = None,
                  autoguidance: float | None = None, clamp: bool = True) -> Tensor:
    """`extend` on a prepared batch x (B, C, F0, H, W) of what `pipe`'s backbone samples (pixels, or the
    latents of a latent model's `latent_view`); `clamp=False` keeps the new frames as sampled (latents)."""
    B, C, F0, H, W = x.shape
    window = window or pipe.video.frames
    context = window // 2 if context is None else context
    if not 1 <= context < window:
        raise VidiffError(f"--context must be between 1 and {window - 1} (the window is {window} frames); "
                          f"got {context}")
    if F0 < context:
        raise VidiffError(f"the video has {F0} frame(s), fewer than the {context} context frames extension needs; "
                          f"give a longer video or a smaller --context")
    if frames_total <= F0:
        raise VidiffError(f"the video already has {F0} frames; ask for more with --frames (got {frames_total})")
    if hasattr(pipe.model, "check_size"):
        pipe.model.check_size(window, H, W)
    gens = sample_generators(seed, B)  # sample b's window and sampler noise: seed + b only
    mask = torch.zeros(B, window, dtype=torch.bool)
    mask[:, :context] = True  # (B, window): known frames at the start
    n_windows = -(-(frames_total - F0) // (window - context))
    check_window_work(pipe, B, n_windows, window, frames_total, H, W, steps, method, "extending")
    out = [x]
    have = x[:, :, -context:]
    for j in range(n_windows):
        x_known = torch.zeros(B, C, window, H, W)
        x_known[:, :, :context] = have
        noise = torch.stack([torch.randn((C, window, H, W), generator=g) for g in gens])
        xw = fill_frames(pipe, x_known, mask, steps=steps, sampler=sampler, noise=noise, method=method,
                         guidance_weight=guidance_weight, cond=cond, generator=gens, autoguidance=autoguidance,
                         clamp=clamp)
        new = xw[:, :, context:]  # (B, C, window − context, H, W)
        out.append(new)
        have = torch.cat([have, new], dim=2)[:, :, -context:]
        if callback is not None:
            callback(dict(window=j, total=n_windows, frames=F0 + (j + 1) * (window - context)))
    return torch.cat(out, dim=2)[:, :, :frames_total]


# --- interpolation -----------------------------------------------------------------------------------

def interpolation_windows(given: int, factor: int, window: int) -> list[int]:
    """Index of the first given frame of each window. A window of `window` frames holds
    k = ⌊(window − 1) / factor⌋ + 1 given frames at positions 0, factor, …, (k − 1)·factor; consecutive
    windows share one given frame and the last is aligned to the end."""
    if factor < 2:
        raise VidiffError(f"--factor must be at least 2; got {factor}")
    if factor > window - 1:
        raise VidiffError(f"--factor {factor} is too large for a {window}-frame window: "
                          f"use at most {window - 1}")
    if given < 2:
        raise VidiffError(f"interpolation needs at least 2 frames; the video has {given}")
    k = (window - 1) // factor + 1
    if given <= k:
        return [0]
    starts = list(range(0, given - k, k - 1))
    return starts + [given - k]


def interpolate(pipeline, video, factor: int = 2, *, window: int | None = None,
                guidance_weight: float = DEFAULT_WEIGHT, steps: int = 25, sampler: str = "ddim", seed: int = 0,
                method: str = "reconstruction", batch_size: int = 4, cond: Cond | None = None,
                autoguidance: float | None = None) -> Tensor:
    """Temporal interpolation (VDM sec. 3.1): the N given frames land at every `factor`-th frame of the
    output and the frames between them are generated, (N − 1)·factor + 1 frames in all, as
    (B, C, F_out, H, W) in [-1, 1] (no batch dimension if `video` had none). Windows are independent
    given their end frames and run `batch_size` at a time; frames generated past a window's last given
    frame are discarded, and where the end-aligned last window overlaps the previous one the earlier
    window's frames are kept. `autoguidance` as in `fill_frames`. A latent model encodes the frames,
    interpolates their latents and decodes them (`LatentVideoPipeline.interpolate`)."""
    pipe = as_pipeline(pipeline)
    options = dict(window=window, guidance_weight=guidance_weight, steps=steps, sampler=sampler, seed=seed,
                   method=method, batch_size=batch_size, cond=cond, autoguidance=autoguidance)
    if isinstance(pipe, LatentVideoPipeline):
        return pipe.interpolate(video, factor, **options)
    pipe.autoguidance_spec(autoguidance)  # no guide -> one-line error before any work
    x = prepare_video(video, pipe.video.size, pipe.video.channels)  # (B, C, N, H, W)
    y = interpolate_frames(pipe, x, factor, **options)
    return y if is_batched_video(video) else y[0]


def interpolate_frames(pipe, x: Tensor, factor: int = 2, *, window: int | None = None,
                       guidance_weight: float = DEFAULT_WEIGHT, steps: int = 25, sampler: str = "ddim", seed: int = 0,
                       method: str = "reconstruction", batch_size: int = 4, cond: Cond | None = None,
                       autoguidance: float | None = None, clamp: bool = True) -> Tensor:
    """`interpolate` on a prepared batch x (B, C, N, H, W) of what `pipe`'s backbone samples (pixels, or the
    latents of a latent model's `latent_view`); `clamp=False` keeps the generated frames as sampled (latents)."""
    B, C, N, H, W = x.shape
    window = window or pipe.video.frames
    starts = interpolation_windows(N, factor, window)
    k = min(N, (window - 1) // factor + 1)  # given frames per window
    if hasattr(pipe.model, "check_size"):
        pipe.model.check_size(window, H, W)
    F_out = (N - 1) * factor + 1
    check_positive(steps, "--steps")
    check_window_work(pipe, B, len(starts), window, F_out, H, W, steps, method, "interpolating", batch_size)
    span = (k - 1) * factor + 1  # output frames one window covers, first to last given frame
    y = torch.zeros(B, C, F_out, H, W)
    filled = torch.zeros(B, F_out, dtype=torch.bool)
    known_pos = torch.arange(k) * factor  # positions of the given frames in a window
    pairs = [(b, a) for b in range(B) for a in starts]  # sample-major (sample, first given frame)
    gens = sample_generators(seed, B)  # sample b's noise: seed + b only
    noise = {(b, a): torch.randn((C, window, H, W), generator=gens[b]) for b, a in pairs}
    # each window's sampler noise from its own generator, seeded from its sample's: the same whatever batch_size
    window_gens = {p: torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=gens[p[0]])))
                   for p in pairs}
    for c0 in range(0, len(pairs), batch_size):
        chunk = pairs[c0:c0 + batch_size]
        x_known = torch.zeros(len(chunk), C, window, H, W)
        mask = torch.zeros(len(chunk), window, dtype=torch.bool)  # (n, window)
        for i, (b, a) in enumerate(chunk):
            x_known[i, :, known_pos] = x[b, :, a:a + k]
            mask[i, known_pos] = True
        c = cond.map(lambda v: v[torch.tensor([b for b, _ in chunk])]) if cond is not None else None
        xw = fill_frames(pipe, x_known, mask, steps=steps, sampler=sampler, method=method,
                         noise=torch.stack([noise[p] for p in chunk]), guidance_weight=guidance_weight,
                         cond=c, generator=[window_gens[p] for p in chunk],
                         autoguidance=autoguidance, clamp=clamp)  # (n, C, window, H, W)
        for i, (b, a) in enumerate(chunk):
            pos = torch.arange(a * factor, a * factor + span)
            new = ~filled[b, pos]  # keep the earlier window's frames where windows overlap
            y[b, :, pos[new]] = xw[i, :, :span][:, new]
            filled[b, pos] = True
    y[:, :, ::factor] = x  # the given frames exactly
    return y


def is_batched_video(video) -> bool:
    """True for a batch of videos ((B, F, H, W, 3) uint8 or (B, C, F, H, W) float), False for one video."""
    if isinstance(video, (str, Path)):
        return False
    if isinstance(video, np.ndarray) or (torch.is_tensor(video) and video.dtype == torch.uint8):
        return np.ndim(video) == 5
    return torch.is_tensor(video) and video.dim() == 5
