"""Seamless loops, slow motion and magnification from a spectral volume (GID sec. 4.3 and 5).

With the FFT frequency grid the motion texture is exactly ``period``-periodic, so a clip that spans
whole periods loops by construction (``playback_times(loop=True)`` picks such a time step). A
clip whose length L (in source frames, after slow motion) is not a multiple of the period does not;
``loop_loss`` (GID eq. 5) measures the seam between F_0 and F_L and is the loss a gradient-guidance
wrapper minimises during motion sampling.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..utils import VidiffError
from .spectral import motion_texture


def _grad(f: Tensor) -> tuple[Tensor, Tensor]:
    """Forward differences of ``(..., 2, H, W)`` along x and y."""
    return f[..., :, 1:] - f[..., :, :-1], f[..., 1:, :] - f[..., :-1, :]


def loop_loss(sv: Tensor, period: float, end_time: float) -> Tensor:
    """GID eq. 5: ||F_0 − F_L||_1 + ||∇F_0 − ∇F_L||_1 (L1 norms: sums over pixels);
    ``sv (B, K, 4, H, W)`` -> ``(B,)``."""
    if sv.ndim == 4:
        sv = sv.unsqueeze(0)
    f = motion_texture(sv, torch.tensor([0.0, float(end_time)]), period)  # (B, 2, 2, H, W)
    f0, fl = f[:, 0], f[:, 1]
    (gx0, gy0), (gxl, gyl) = _grad(f0), _grad(fl)
    dims = tuple(range(1, f0.ndim))
    return (f0 - fl).abs().sum(dims) + (gx0 - gxl).abs().sum(dims) + (gy0 - gyl).abs().sum(dims)


def loop_guidance_loss(period: float, end_time: float,
                       decode: Callable[[Tensor], Tensor] | None = None) -> Callable[[Tensor], Tensor]:
    """A ``loss_fn(x0_hat) -> (B,)`` for gradient guidance: decode (e.g. VAE + de-normalisation) then eq. 5."""
    def loss_fn(x0: Tensor) -> Tensor:
        return loop_loss(decode(x0) if decode is not None else x0, period, end_time)
    return loss_fn


def playback_times(num_frames: int, period: float, slowmo: float = 1.0, loop: bool = False) -> np.ndarray:
    """Source-frame times of the rendered frames: t_i = i / slowmo, stretched to whole periods if ``loop``.

    With ``loop`` the clip covers n = max(1, round(num_frames / (slowmo · period))) periods, so
    frame ``num_frames`` would equal frame 0 and the video repeats without a seam.
    """
    if num_frames < 1:
        raise VidiffError(f"--frames must be >= 1, got {num_frames}")
    if slowmo <= 0:
        raise VidiffError(f"--slowmo must be positive, got {slowmo}")
    dt = 1.0 / slowmo
    if loop:
        n = max(1, round(num_frames * dt / period))
        dt = n * period / num_frames
    return np.arange(num_frames) * dt


def magnify(sv: Tensor, factor: float) -> Tensor:
    """Motion magnification: scale every amplitude by ``factor`` (phases unchanged)."""
    return sv * factor
