"""Paired per-frame metrics on videos: PSNR and SSIM (Wang et al. 2004, eq. 13, 11×11 Gaussian σ=1.5)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..utils import VidiffError
from .protocol import as_video_tensor


def _pair(a, b) -> tuple[Tensor, Tensor]:
    a, b = as_video_tensor(a), as_video_tensor(b)
    if a.shape != b.shape:
        raise VidiffError(
            f"paired metrics need equal shapes, got {tuple(a.shape)} vs {tuple(b.shape)} (B, C, F, H, W); "
            "give the same number of videos, frames and size"
        )
    return a, b


def psnr(a, b, max_db: float = 100.0) -> Tensor:
    """Per-frame PSNR (B, F) in dB on [-1, 1] videos (data range 2): 10 log10(range² / MSE), capped at max_db."""
    a, b = _pair(a, b)
    mse = (a - b).pow(2).mean(dim=(1, 3, 4))  # (B, F)
    return (10 * torch.log10(4.0 / mse.clamp_min(1e-30))).clamp(max=max_db)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    """Normalized 1-D Gaussian window (size,)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_components(x: Tensor, y: Tensor, window: int = 11, sigma: float = 1.5, k1: float = 0.01,
                    k2: float = 0.03) -> tuple[Tensor, Tensor]:
    """Per-image SSIM and its contrast–structure term cs, (N,) each, for (N, C, H, W) images in [-1, 1]: means over
    the valid Gaussian windows and the channels (Wang et al. 2004, eq. 13). Differentiable, in the inputs' dtype."""
    n, c, h, w = x.shape
    if min(h, w) < window:
        raise VidiffError(f"frames of {h}x{w} are smaller than the {window}x{window} SSIM window")
    x, y = x.reshape(n * c, 1, h, w) + 1, y.reshape(n * c, 1, h, w) + 1  # (N·C, 1, H, W) in [0, 2]
    data_range = 2.0
    g = gaussian_window(window, sigma).to(device=x.device, dtype=x.dtype)

    def blur(z: Tensor) -> Tensor:  # separable valid filtering
        z = F.conv2d(z, g.view(1, 1, 1, -1))
        return F.conv2d(z, g.view(1, 1, -1, 1))

    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    s = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs
    return s.reshape(n, -1).mean(1), cs.reshape(n, -1).mean(1)


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim_frames(x: Tensor, y: Tensor, scales: int | None = None, **kwargs) -> Tensor:
    """Multi-scale SSIM (Wang et al. 2003, eq. 7) of (N, C, H, W) images, (N,): cs at each scale and the SSIM of
    the coarsest, with the paper's exponents renormalised over the scales that still fit an SSIM window
    (`scales=None`: as many as fit, at most 5). Terms are floored at 1e-6 (no NaN from negative cs). Differentiable."""
    window = kwargs.get("window", 11)
    fit = 1 + max(0, int(math.log2(min(x.shape[-2:]) / window)))
    scales = min(fit, len(MS_SSIM_WEIGHTS)) if scales is None else scales
    if scales < 1 or scales > fit:
        raise VidiffError(f"{scales} MS-SSIM scales do not fit frames of {x.shape[-2]}x{x.shape[-1]}; "
                          f"use at most {fit}")
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=x.dtype, device=x.device)
    weights = weights / weights.sum()
    terms = []
    for i in range(scales):
        s, cs = ssim_components(x, y, **kwargs)
        terms.append(s if i == scales - 1 else cs)
        if i < scales - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return torch.stack(terms, 1).clamp_min(1e-6).pow(weights).prod(1)


def ssim(a, b, window: int = 11, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """Per-frame SSIM (B, F): mean over valid window positions and RGB channels (Wang et al. 2004)."""
    a, b = _pair(a, b)
    bsz, c, f, h, w = a.shape
    x = a.double().permute(0, 2, 1, 3, 4).reshape(-1, c, h, w)  # (B·F, C, H, W)
    y = b.double().permute(0, 2, 1, 3, 4).reshape(-1, c, h, w)
    return ssim_components(x, y, window, sigma, k1, k2)[0].reshape(bsz, f).float()  # (B, F)
