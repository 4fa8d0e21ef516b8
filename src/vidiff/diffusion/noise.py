"""Video noise priors: Gaussian noise correlated across frames (PYoCo, Ge et al. 2023, §3.2).

Each pixel's noise over the F frames is drawn from N(0, Σ) instead of N(0, I), with unit variance
per frame so the forward process z_t = α_t x + σ_t ε keeps its marginals:

  "iid"          Σ = I                                            (the usual prior)
  "mixed"        Σ = (I + α² 11ᵀ) / (1 + α²)                      (eq. 4: a shared ε plus one per frame)
  "progressive"  Σ_ij = ρ^|i−j|,  ρ = α / √(1 + α²)               (eq. 5: each frame's ε from the last's)

`FrameNoise(kind, alpha)(eps)` turns i.i.d. noise (B, C, F, H, W) into the prior's noise by the
Cholesky factor L of Σ along the frame axis (L Lᵀ = Σ). For "progressive" L ε is exactly the
recursion ε'_0 = ε_0, ε'_i = ρ ε'_{i−1} + √(1 − ρ²) ε_i. Transforming one i.i.d. draw keeps
every random stream in the library unchanged: iid models draw bit-identical noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..utils import VidiffError

NOISE_KINDS = ("iid", "mixed", "progressive")


def randn(shape, generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Standard normal noise of `shape` drawn from `generator` (on its device), moved to like's device/dtype."""
    if generator is None:
        return torch.randn(shape, device=like.device, dtype=like.dtype)
    return torch.randn(shape, generator=generator, device=generator.device).to(like.device, like.dtype)


def rand(shape, generator: torch.Generator | None, like: Tensor) -> Tensor:
    """U[0, 1) draws of `shape` from `generator`, moved to like's device (float32 at least)."""
    dtype = like.dtype if like.dtype in (torch.float32, torch.float64) else torch.float32
    if generator is None:
        return torch.rand(shape, device=like.device, dtype=dtype)
    return torch.rand(shape, generator=generator, device=generator.device).to(like.device, dtype)


@dataclass(frozen=True)
class FrameNoise:
    """A frame-correlated noise prior (PYoCo eqs. 4–5); `alpha` sets the correlation strength."""

    kind: str = "iid"
    alpha: float = 1.0

    def __post_init__(self):
        if self.kind not in NOISE_KINDS:
            raise VidiffError(f"unknown noise prior {self.kind!r}; choose one of {', '.join(NOISE_KINDS)}")
        if not (self.alpha >= 0 and self.alpha < float("inf")):
            raise VidiffError(f"noise_alpha must be a finite number >= 0; got {self.alpha!r}")

    @property
    def is_iid(self) -> bool:
        return self.kind == "iid" or self.alpha == 0

    def covariance(self, frames: int, dtype=torch.float64) -> Tensor:
        """Σ (F, F): the covariance of one pixel's noise across frames (eq. 4 or 5)."""
        a2 = self.alpha ** 2
        idx = torch.arange(frames, dtype=dtype)
        if self.kind == "mixed":
            return (torch.eye(frames, dtype=dtype) + a2) / (1 + a2)
        if self.kind == "progressive":
            rho = self.alpha / (1 + a2) ** 0.5
            return rho ** (idx[:, None] - idx[None, :]).abs()
        return torch.eye(frames, dtype=dtype)

    def cholesky(self, frames: int, dtype=torch.float64) -> Tensor:
        """Lower-triangular L with L Lᵀ = Σ (F, F)."""
        return torch.linalg.cholesky(self.covariance(frames, dtype))

    def __call__(self, eps: Tensor) -> Tensor:
        """Correlate i.i.d. noise (B, C, F, H, W) across frames; iid priors return `eps` itself."""
        if self.is_iid:
            return eps
        if eps.dim() != 5:
            raise VidiffError(f"a frame noise prior needs video noise (B, C, F, H, W); got shape {tuple(eps.shape)}")
        L = self.cholesky(eps.shape[2]).to(eps.device, eps.dtype)  # (F, F)
        return torch.einsum("fg,bcghw->bcfhw", L, eps)
