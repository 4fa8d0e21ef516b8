"""Text2Video-Zero (Khachatryan et al. 2023): a video from a text-to-image model, without training.

    pipe = TextToVideoZero.from_pretrained("runs/t2i")          # a vidiff image model, or an SD folder
    video = pipe("a red circle", frames=8, motion=(2, 0))     # uint8 (N, F, H, W, 3)

Two changes to plain per-frame sampling:
  * motion dynamics in the latents (Algorithm 1): the first frame's x_T is denoised with DDIM to
    x_{T1} and on to x_{T0}; x_{T0} is translated by δᵏ = k·λ·δ for frame k = 0 … F − 1
    (`warp_translate`, grid_sample, nearest) and re-noised to x_{T1} with the forward process
    (`renoise`, q(x_{T1} | x_{T0})); frame 0 keeps its own x_{T1}. All frames are then denoised from
    T1 together. T1 and T0 are the grid points `t1` and `t0` steps before the end of the
    `steps`-step DDIM grid (0 ≤ t0 ≤ t1 ≤ steps − 1; Δt = t1 − t0 steps, 0 = no re-noising); the
    paper's 44 and 47 of 50 steps are the defaults, scaled to other step counts. t1 = steps − 1
    re-noises to T itself, as Algorithm 1 writes it.
  * cross-frame attention (§3.3): every frame's self-attention reads frame 0's keys and values
    (`frame_attention.frame_attention(model, "cross_frame")`), which carries frame 0's appearance.
Optional background smoothing (§3.3, eq. 8): with a foreground mask Mᵏ of frame k,
x̄ᵏ = Mᵏ ⊙ xᵏ + (1 − Mᵏ) ⊙ (α Wₖ(x¹) + (1 − α) xᵏ) after every step from T1; the mask is taken from
x̂₀ where the model works on pixels (the shapes data's plain background: pixels far from the
frame's median colour, the checker's rule), otherwise smoothing is off with one notice.

δ = (dx, dy) is given in output pixels per frame (+x right, +y down) and divided by the
autoencoder's spatial factor for latent models; λ is `strength`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..conditioning import Cond, null_like
from ..data.checker import CheckerConfig
from ..data.io import to_uint8
from ..diffusion import ClassifierFreeGuidance, Denoiser, sample_generators, stacked_randn
from ..diffusion.samplers import ddim, timesteps
from ..limits import check_positive
from ..models.diffusers_io import is_diffusers_folder
from ..utils import VidiffError, notice
from . import load_pipeline
from .base import VideoPipeline
from .frame_attention import check_frame_attention, frame_attention
from .stable_diffusion import StableDiffusion, scheduler_grid

__all__ = ["TextToVideoZero", "default_t0_t1", "motion_shifts", "warp_translate", "renoise", "pixel_foreground",
           "smooth_background", "text2video_zero", "check_image_model"]

ALPHA_SMOOTH = 0.6  # the paper's α of background smoothing


def default_t0_t1(steps: int) -> tuple[int, int]:
    """(t0, t1) = the paper's (44, 47) of 50 DDIM steps, scaled to `steps` (t0 < t1 ≤ steps − 1 when steps ≥ 2)."""
    t1 = max(0, min(round(0.94 * steps), steps - 1))
    return max(0, min(round(0.88 * steps), t1 - 1)), t1


def motion_shifts(frames: int, motion: tuple[float, float], strength: float = 1.0) -> Tensor:
    """(F, 2) float64 translations (dx, dy) of frame k = 0 … F − 1: δᵏ = k·λ·δ (Algorithm 1, δᵏ = λ(k − 1)δ
    with frames counted from 1)."""
    k = torch.arange(frames, dtype=torch.float64)[:, None]
    return k * float(strength) * torch.tensor([float(motion[0]), float(motion[1])], dtype=torch.float64)


def warp_translate(x: Tensor, shifts: Tensor) -> Tensor:
    """One frame x (B, C, H, W) → (B, C, F, H, W) where frame k is x translated by shifts[k] = (dx, dy) pixels:
    out(y, x) = in(y − dy, x − dx) by `grid_sample` with nearest sampling and reflection about the image's
    edges, as the paper's code warps (integer shifts move pixels exactly; fractional ones are rounded)."""
    b, c, h, w = x.shape
    frames = shifts.shape[0]
    ys = torch.arange(h, dtype=torch.float64)[None, :, None] - shifts[:, 1, None, None]  # (F, H, 1)
    xs = torch.arange(w, dtype=torch.float64)[None, None, :] - shifts[:, 0, None, None]  # (F, 1, W)
    gx = ((2 * xs + 1) / w - 1).expand(frames, h, w)  # pixel centres, align_corners=False
    gy = ((2 * ys + 1) / h - 1).expand(frames, h, w)
    grid = torch.stack([gx, gy], dim=-1).to(x.dtype)  # (F, H, W, 2) in [-1, 1]
    src = x[:, None].expand(b, frames, c, h, w).reshape(b * frames, c, h, w)
    grid = grid[None].expand(b, -1, -1, -1, -1).reshape(b * frames, h, w, 2)
    out = F.grid_sample(src, grid, mode="nearest", padding_mode="reflection", align_corners=False)
    return out.reshape(b, frames, c, h, w).transpose(1, 2)  # (B, C, F, H, W)


def renoise(z: Tensor, schedule, t_from: float, t_to: float, generator=None) -> Tensor:
    """A draw of q(z_{t_to} | z_{t_from}) for t_to ≥ t_from (Kingma et al. 2021, eq. 33's forward part):
    α_{t|s} z + σ_{t|s} ε with α_{t|s} = α_t/α_s, σ²_{t|s} = σ_t² − α²_{t|s} σ_s² (DDPM forward over Δt steps);
    `generator` one per sample, as the samplers'."""
    a_s, s_s = schedule.alpha_sigma(torch.tensor(float(t_from), dtype=torch.float64))
    a_t, s_t = schedule.alpha_sigma(torch.tensor(float(t_to), dtype=torch.float64))
    a_ts = a_t / a_s
    s_ts = torch.sqrt(torch.clamp(s_t**2 - a_ts**2 * s_s**2, min=0))
    return a_ts.to(z.dtype) * z + s_ts.to(z.dtype) * stacked_randn(z, generator)


def pixel_foreground(x0: Tensor, threshold: float = CheckerConfig().fg_threshold / 127.5) -> Tensor:
    """(B, 1, F, H, W) foreground mask of pixel videos x0 (B, 3, F, H, W) in [-1, 1]: pixels whose largest
    channel difference from the frame's median colour exceeds `threshold` (the shapes checker's rule),
    dilated by one pixel."""
    median = x0.flatten(3).median(dim=-1).values[..., None, None]  # (B, C, F, 1, 1)
    fg = ((x0 - median).abs().amax(dim=1, keepdim=True) > threshold).to(x0.dtype)  # (B, 1, F, H, W)
    return F.max_pool3d(fg, (1, 3, 3), stride=1, padding=(0, 1, 1))


def smooth_background(z: Tensor, mask: Tensor, shifts: Tensor, alpha: float = ALPHA_SMOOTH) -> Tensor:
    """Eq. 8: x̄ᵏ = Mᵏ ⊙ xᵏ + (1 − Mᵏ) ⊙ (α Wₖ(x¹) + (1 − α) xᵏ) for k ≥ 1 (frame 0 unchanged);
    z (B, C, F, H, W), mask (B, 1, F, H, W) in [0, 1], shifts (F, 2) the frames' translations."""
    warped = warp_translate(z[:, :, 0], shifts)  # (B, C, F, H, W)
    smoothed = mask * z + (1 - mask) * (alpha * warped + (1 - alpha) * z)
    return torch.cat([z[:, :, :1], smoothed[:, :, 1:]], dim=2)


@torch.no_grad()
def text2video_zero(model, denoiser: Callable, noise: Tensor, schedule, grid: Tensor, *, frames: int,
                    shifts: Tensor, t0: int, t1: int, cond=None, generator=None, cross_frame: bool = True,
                    foreground: Callable[[Tensor], Tensor] | None = None, alpha: float = ALPHA_SMOOTH,
                    clip=None) -> Tensor:
    """Algorithm 1 + cross-frame attention on latents: first-frame noise (B, C, 1, h, w) → (B, C, F, h, w).

    `denoiser` (guided or not) wraps `model` (whose attention is switched); `grid` the descending DDIM
    time grid of n = len(grid) − 1 steps; `shifts` (F, 2) the latent translations of the frames;
    `foreground` x̂₀ → (B, 1, F, h, w) masks turns background smoothing on."""
    n = len(grid) - 1
    if not (isinstance(t0, int) and isinstance(t1, int) and 0 <= t0 <= t1 <= n - 1):
        raise VidiffError(f"--t0 and --t1 must satisfy 0 <= t0 <= t1 <= steps - 1 = {n - 1}; got t0={t0}, t1={t1}")
    if frames < 2:
        raise VidiffError(f"--frames must be at least 2 for a video; got {frames}")
    if noise.dim() != 5 or noise.shape[2] != 1:
        raise VidiffError(f"the first frame's noise must be (B, C, 1, h, w); got {tuple(noise.shape)}")
    i1, i0 = n - t1 - 1, n - t0 - 1  # grid indices of T1 ≥ T0
    kw = dict(cond=cond, clip=clip)
    z_t1 = ddim(denoiser, noise, schedule, i1, spacing=grid[:i1 + 1], **kw) if i1 > 0 else noise  # x¹_{T1}
    z_t0 = ddim(denoiser, z_t1, schedule, i0 - i1, spacing=grid[i1:i0 + 1], **kw) if i0 > i1 else z_t1  # x¹_{T0}
    rest = warp_translate(z_t0[:, :, 0], shifts[1:])  # (B, C, F − 1, h, w): Wₖ(x¹_{T0})
    if i0 > i1:
        rest = renoise(rest, schedule, float(grid[i0]), float(grid[i1]), generator)  # xᵏ_{T1}
    z = torch.cat([z_t1, rest], dim=2)  # (B, C, F, h, w)
    with frame_attention(model, "cross_frame" if cross_frame else None, frames):
        if foreground is None:
            return ddim(denoiser, z, schedule, n - i1, spacing=grid[i1:], **kw)
        for i in range(i1, n):
            seen = {}
            z = ddim(denoiser, z, schedule, 1, spacing=grid[i:i + 2], callback=seen.update, **kw)
            if i < n - 1:
                z = smooth_background(z, foreground(seen["x0"]), shifts, alpha)
    return z


def check_image_model(model, name: str, method: str) -> None:
    """Refuse a vidiff backbone that is not an image model applied per frame (temporal none, per-frame
    spatial self-attention) for `method`, in one line naming what to use instead."""
    cfg = getattr(model, "config", None)
    temporal = getattr(cfg, "temporal", None)
    if temporal != "none":
        raise VidiffError(f"{name} is a video model (temporal={temporal!r}); sample it with `vidiff sample --model "
                          f"{name}`. {method} takes an image model (a checkpoint trained with `vidiff train "
                          "--frames 1`, temporal none) or a diffusers Stable Diffusion folder")
    if getattr(cfg, "spatial_attention", "frame") != "frame":
        raise VidiffError(f"{name} attends jointly over frames (spatial_attention={cfg.spatial_attention!r}); "
                          f"{method} needs per-frame spatial attention")
    check_frame_attention(model, method)


class TextToVideoZero:
    """Text2Video-Zero on a vidiff image model (`VideoPipeline`, pixels or latents) or a Stable Diffusion
    folder (`StableDiffusion`); `__call__` returns uint8 (N, F, H, W, 3)."""

    def __init__(self, pipe: VideoPipeline | StableDiffusion, name: str = ""):
        self.pipe, self.name = pipe, name or getattr(pipe, "name", "")
        self.diffusers = isinstance(pipe, StableDiffusion)
        if not self.diffusers:
            check_image_model(pipe.model, self.name, "Text2Video-Zero")

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path) -> "TextToVideoZero":
        """A diffusers Stable Diffusion folder, or a vidiff image checkpoint (folder or model name)."""
        if is_diffusers_folder(name_or_path):
            return cls(StableDiffusion.from_pretrained(name_or_path), Path(name_or_path).name)
        return cls(load_pipeline(str(name_or_path)), Path(str(name_or_path)).name)

    @property
    def model(self):
        return self.pipe.unet if self.diffusers else self.pipe.model

    @property
    def default_size(self) -> int:
        return self.pipe.sample_size if self.diffusers else self.pipe.video.size

    def __call__(self, prompt: str | None = None, num: int = 1, *, frames: int = 8,
                 motion: tuple[float, float] = (0.0, 0.0), strength: float = 1.0, t0: int | None = None,
                 t1: int | None = None, steps: int = 50, guidance: float | None = None, seed: int = 0,
                 size: int | None = None, cross_frame: bool = True, smooth_background: bool = False,
                 negative_prompt: str = "", output: str = "uint8"):
        """`num` videos of `frames` frames for `prompt`; `guidance` the CFG weight w (None: 6.5 for Stable
        Diffusion, 0 for vidiff models); `output="float"`: (N, 3, F, H, W) in [-1, 1]."""
        for value, what in ((num, "--num"), (frames, "--frames"), (steps, "--steps")):
            check_positive(value, what)
        if frames < 2:
            raise VidiffError(f"--frames must be at least 2 for a video; got {frames}")
        if len(motion) != 2 or not all(torch.isfinite(torch.tensor([float(m) for m in motion]))):
            raise VidiffError(f"--motion must be two finite numbers DX,DY; got {motion!r}")
        d0, d1 = default_t0_t1(steps)
        if t0 is None:
            t0 = d0 if t1 is None else min(d0, t1)
        if t1 is None:
            t1 = max(d1, t0)
        size = self.default_size if size is None else size
        run = self._diffusers_run if self.diffusers else self._vidiff_run
        return run(prompt, num, frames=frames, motion=motion, strength=strength, t0=t0, t1=t1, steps=steps,
                   guidance=guidance, seed=seed, size=size, cross_frame=cross_frame,
                   smooth=smooth_background, negative_prompt=negative_prompt, output=output)

    def _finish(self, x: Tensor, output: str):
        return x if output == "float" else to_uint8(x)

    def _vidiff_run(self, prompt, num, *, frames, motion, strength, t0, t1, steps, guidance, seed, size,
                    cross_frame, smooth, negative_prompt, output):
        pipe = self.pipe
        c, _, h, w = pipe.sample_shape(1, size)
        pipe.model.check_size(frames, h, w)
        factor = size / h
        cond = pipe.make_cond(num, frames, size, prompt=prompt)  # a prompt for a model without text: one line
        schedule = pipe.diffusion.build_schedule()
        grid = timesteps(schedule, steps, "uniform")
        gens = sample_generators(seed, num)
        noise = stacked_randn(torch.empty(num, c, 1, h, w), gens)
        den = Denoiser(pipe.model, pipe.diffusion.parameterization)
        w_cfg = 0.0 if guidance is None else float(guidance)
        if w_cfg and cond is not None and prompt is not None:
            den = ClassifierFreeGuidance(den, w=w_cfg, null_cond=null_like(cond))
        foreground = None
        if smooth:
            if c == 3 and factor == 1:
                foreground = pixel_foreground
            else:
                notice("background smoothing needs a foreground mask, available for pixel models only; it is off")
        shifts = motion_shifts(frames, motion, strength) / factor
        z = text2video_zero(pipe.model, den, noise, schedule, grid, frames=frames, shifts=shifts, t0=t0, t1=t1,
                            cond=cond, generator=gens, cross_frame=cross_frame, foreground=foreground)
        return self._finish(pipe.to_pixels(z), output)

    def _diffusers_run(self, prompt, num, *, frames, motion, strength, t0, t1, steps, guidance, seed, size,
                       cross_frame, smooth, negative_prompt, output):
        pipe = self.pipe
        if not prompt:
            raise VidiffError(f"{self.name} is a Stable Diffusion folder: give a text prompt with --prompt \"...\"")
        pipe.check_size(size, size)
        guidance = 6.5 if guidance is None else float(guidance)
        if smooth:
            notice("background smoothing needs a foreground mask, which a Stable Diffusion folder does not give; "
                   "it is off")
        f = pipe.vae.spatial_factor
        grid = scheduler_grid(pipe.scheduler_config, steps)
        text = pipe.encode_prompt([prompt] * num)
        cond = Cond(text=text)
        den = Denoiser(pipe.unet, pipe.parameterization)
        if guidance:
            null = Cond(text=pipe.encode_prompt([negative_prompt] * num))
            den = ClassifierFreeGuidance(den, w=guidance, null_cond=null)
        gens = sample_generators(seed, num)
        noise = stacked_randn(torch.empty(num, pipe.latent_channels, 1, size // f, size // f), gens)
        clip = (pipe.scheduler_config.get("clip_sample_range", 1.0) if pipe.scheduler_config.get("clip_sample")
                else None)
        shifts = motion_shifts(frames, motion, strength) / f
        z = text2video_zero(pipe.unet, den, noise, pipe.schedule, grid, frames=frames, shifts=shifts, t0=t0, t1=t1,
                            cond=cond, generator=gens, cross_frame=cross_frame, clip=clip)
        x = pipe.vae.decode(z / pipe.vae.scaling_factor + pipe.vae.shift_factor).clamp(-1, 1)  # (N, 3, F, H, W)
        return self._finish(x, output)
