"""Paired per-frame metrics on videos: PSNR and SSIM (Wang et al. 2004, eq. 13, 11×11 Gaussian σ=1.5)."""
from __future__ import annotations

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


def ssim(a, b, window: int = 11, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """Per-frame SSIM (B, F): mean over valid window positions and RGB channels (Wang et al. 2004)."""
    a, b = _pair(a, b)
    bsz, c, f, h, w = a.shape
    if min(h, w) < window:
        raise VidiffError(f"frames of {h}x{w} are smaller than the {window}x{window} SSIM window")
    x = a.double().add(1).mul(127.5).permute(0, 2, 1, 3, 4).reshape(-1, 1, h, w)  # (B*F*C, 1, H, W), 0..255
    y = b.double().add(1).mul(127.5).permute(0, 2, 1, 3, 4).reshape(-1, 1, h, w)
    g = gaussian_window(window, sigma)

    def blur(z: Tensor) -> Tensor:  # separable valid filtering
        z = F.conv2d(z, g.view(1, 1, 1, -1))
        return F.conv2d(z, g.view(1, 1, -1, 1))

    c1, c2 = (k1 * 255) ** 2, (k2 * 255) ** 2
    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.mean(dim=(1, 2, 3)).reshape(bsz, f, c).mean(-1).float()  # (B, F)
