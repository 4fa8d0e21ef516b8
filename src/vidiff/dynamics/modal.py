"""Interactive dynamics with an image-space modal basis (Davis et al. 2015; GID sec. 5).

Each chosen frequency f of a spectral volume is a mode shape S_f(p) (complex, x and y). Its modal
coordinate q_f (complex) is a decoupled damped mass-spring oscillator with unit modal mass

    q̈_f + 2 ξ_f ω_f q̇_f + ω_f² q_f = u_f(t),      ω_f = 2π f · source_fps / period   (rad/s)

stepped with the *exact exponential integrator*: (q, q̇) ← exp(A_f Δt) (q, q̇), the 2×2
matrix exponential precomputed once per mode (exact for any Δt and any ξ, no drift, no stability
limit). A poke (x, y, dx, dy) is an impulse u_f = δ(t) · g ω_f S_f(p)ᴴ d / max_p' Σ_f' |S_f'(p')|²
(the force d at pixel p projected onto the modes), so the most mobile pixel, poked by d, swings
by about |d| pixels for gain g = 1. The displacement F(t, p) = Σ_f Re(S_f(p) q_f(t)) drives the
renderer.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..utils import VidiffError
from .spectral import spectral_to_complex


def damped_propagator(omega: Tensor, xi: Tensor, dt: float) -> Tensor:
    """exp(A Δt) for A = [[0, 1], [-ω², -2ξω]] per mode: ``(M,), (M,)`` -> ``(M, 2, 2)`` float64."""
    m = omega.shape[0]
    a = torch.zeros(m, 2, 2, dtype=torch.float64)
    a[:, 0, 1] = 1.0
    a[:, 1, 0] = -omega.double() ** 2
    a[:, 1, 1] = -2.0 * xi.double() * omega.double()
    return torch.linalg.matrix_exp(a * dt)


def impulse_response(t: np.ndarray, omega: float, xi: float, v0: complex) -> np.ndarray:
    """Analytic q(t) after an impulse giving q(0) = 0, q̇(0) = v0 (underdamped, ξ < 1)."""
    wd = omega * math.sqrt(1.0 - xi * xi)
    return v0 / wd * np.exp(-xi * omega * t) * np.sin(wd * t)


class ModalSimulator:
    """Step modal coordinates and return displacement fields ``(2, H, W)`` (module doc).

    ``spectral_volume`` (K, 4, H, W); ``fps`` the simulation rate (Δt = 1/fps); ``freqs`` the
    frequency indices used as modes (default 1..K-1; the DC term is no oscillator);
    ``period``/``source_fps`` map index f to a physical frequency (defaults: 150 frames at ``fps``).
    """

    def __init__(self, spectral_volume: Tensor | np.ndarray, fps: float = 30.0, damping: float | Sequence[float] = 0.05,
                 freqs: Sequence[int] | None = None, period: float = 150.0, source_fps: float | None = None,
                 gain: float = 1.0):
        sv = torch.as_tensor(np.asarray(spectral_volume) if isinstance(spectral_volume,
                np.ndarray) else spectral_volume)
        if sv.ndim != 4 or sv.shape[1] != 4:
            raise VidiffError(f"spectral volume must be (K, 4, H, W), got {tuple(sv.shape)}")
        k, _, h, w = sv.shape
        freqs = list(range(1, k)) if freqs is None else [int(f) for f in freqs]
        if not freqs or any(not 1 <= f < k for f in freqs):
            raise VidiffError(f"freqs must be indices in 1..{k - 1} (the volume has K={k}), got {freqs}")
        if fps <= 0:
            raise VidiffError(f"fps must be positive, got {fps}")
        self.h, self.w, self.fps, self.dt, self.gain = h, w, float(fps), 1.0 / float(fps), float(gain)
        self.freqs = freqs
        src = float(fps if source_fps is None else source_fps)
        self.omega = torch.tensor([2 * math.pi * f * src / period for f in freqs], dtype=torch.float64)  # (M,)
        xi = torch.as_tensor(damping, dtype=torch.float64).expand(len(freqs)).clone()
        if (xi < 0).any():
            raise VidiffError("damping must be >= 0")
        self.xi = xi
        self.prop = damped_propagator(self.omega, xi, self.dt)  # (M, 2, 2)
        modes = spectral_to_complex(sv[freqs].double())  # (M, 2, H, W) complex
        self.modes = modes
        self.norm = float(modes.abs().pow(2).sum(dim=(0, 1)).max()) or 1.0
        m = len(freqs)
        # real basis for F = Re(S) Re(q) - Im(S) Im(q): one matmul per step, (2M, 2·H·W) float32
        self.basis = torch.cat([modes.real, -modes.imag]).reshape(2 * m, 2 * h * w).float().contiguous()
        self.reset()

    def reset(self) -> None:
        """Rest state: q = q̇ = 0, t = 0."""
        m = len(self.freqs)
        self.q = torch.zeros(m, dtype=torch.complex128)
        self.qdot = torch.zeros(m, dtype=torch.complex128)
        self.time = 0.0

    def poke(self, x: float, y: float, dx: float, dy: float) -> None:
        """Impulse d = (dx, dy) pixels at pixel (x, y), projected onto the modes (module doc)."""
        xi, yi = int(round(x)), int(round(y))
        if not (0 <= xi < self.w and 0 <= yi < self.h):
            raise VidiffError(f"poke at ({x}, {y}) is outside the {self.w}x{self.h} image")
        s = self.modes[:, :, yi, xi]  # (M, 2) complex
        force = s.conj()[:, 0] * dx + s.conj()[:, 1] * dy  # S_f(p)ᴴ d
        self.qdot = self.qdot + self.gain * self.omega * force / self.norm

    def step(self) -> Tensor:
        """Advance by Δt = 1/fps (exact propagator) and return the displacement F ``(2, H, W)`` float32."""
        p = self.prop.to(torch.complex128)
        q, qd = self.q, self.qdot
        self.q = p[:, 0, 0] * q + p[:, 0, 1] * qd
        self.qdot = p[:, 1, 0] * q + p[:, 1, 1] * qd
        self.time += self.dt
        return self.displacement()

    def displacement(self) -> Tensor:
        """F(p) = Σ_f Re(S_f(p) q_f) for the current state, ``(2, H, W)`` float32."""
        coef = torch.cat([self.q.real, self.q.imag]).float()  # (2M,)
        return (coef @ self.basis).view(2, self.h, self.w)  # (2, H, W)
