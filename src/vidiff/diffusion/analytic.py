"""Data laws whose denoiser E[x | z_t] is closed form: oracles for samplers, guidance and benchmarks.

For z_t = α x + σ ε the optimal denoiser is the posterior mean (Tweedie). Each law gives
`posterior_mean(z, alpha, sigma)` and `model(schedule, parameterization)`: a plain function
(z_t, t, cond) -> prediction usable as the backbone of a `Denoiser`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .param import broadcast, convert

__all__ = ["GaussianData", "GaussianMixtureData", "JointGaussianData"]


class _Analytic:
    def posterior_mean(self, z: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def model(self, schedule, parameterization: str = "x0") -> Callable[..., Tensor]:
        """A backbone function (z_t, t, cond) -> the exact prediction of kind `parameterization`."""

        def fn(z: Tensor, t: Tensor, cond=None) -> Tensor:
            alpha, sigma = schedule.alpha_sigma(t)
            alpha, sigma = broadcast(alpha, z), broadcast(sigma, z)
            return convert(self.posterior_mean(z, alpha, sigma), "x0", parameterization, z, alpha, sigma)

        return fn


@dataclass
class GaussianData(_Analytic):
    """x ~ N(μ, s²) independently per element: E[x | z_t] = μ + α s² (z − α μ) / (α² s² + σ²)."""

    mu: float = 0.0
    s: float = 1.0

    def sample(self, shape, generator=None, dtype=torch.float64) -> Tensor:
        return self.mu + self.s * torch.randn(shape, generator=generator, dtype=dtype)

    def posterior_mean(self, z, alpha, sigma):
        return self.mu + alpha * self.s**2 * (z - alpha * self.mu) / (alpha**2 * self.s**2 + sigma**2)


@dataclass
class GaussianMixtureData(_Analytic):
    """x ~ Σ_k π_k N(μ_k, s_k²) independently per element. Given mode k, z ~ N(α μ_k, α² s_k² + σ²);
    E[x | z] = Σ_k r_k(z) (μ_k + α s_k² (z − α μ_k)/(α² s_k² + σ²)), r_k the posterior mode weights."""

    weights: tuple[float, ...] = (0.3, 0.7)
    means: tuple[float, ...] = (-2.0, 1.5)
    stds: tuple[float, ...] = (0.4, 0.6)

    def sample(self, shape, generator=None, dtype=torch.float64) -> Tensor:
        w = torch.tensor(self.weights, dtype=torch.float64)
        n = int(torch.tensor(shape).prod())
        k = torch.multinomial(w / w.sum(), n, replacement=True, generator=generator)
        mu = torch.tensor(self.means, dtype=torch.float64)[k]
        s = torch.tensor(self.stds, dtype=torch.float64)[k]
        x = mu + s * torch.randn(n, generator=generator, dtype=torch.float64)
        return x.reshape(shape).to(dtype)

    def mode_of(self, x: Tensor) -> Tensor:
        """Index of the most likely mode of each element (for mode-weight estimates)."""
        mu = torch.tensor(self.means, dtype=x.dtype, device=x.device)
        s = torch.tensor(self.stds, dtype=x.dtype, device=x.device)
        w = torch.tensor(self.weights, dtype=x.dtype, device=x.device)
        logp = torch.log(w) - torch.log(s) - 0.5 * ((x[..., None] - mu) / s) ** 2
        return logp.argmax(-1)

    def mean(self) -> float:
        return sum(w * m for w, m in zip(self.weights, self.means)) / sum(self.weights)

    def std(self) -> float:
        W = sum(self.weights)
        m2 = sum(w * (s**2 + m**2) for w, m, s in zip(self.weights, self.means, self.stds)) / W
        return (m2 - self.mean() ** 2) ** 0.5

    def posterior_mean(self, z, alpha, sigma):
        out_num, logs = [], []
        for w, m, s in zip(self.weights, self.means, self.stds):
            var = alpha**2 * s**2 + sigma**2
            logs.append(torch.log(torch.as_tensor(w, dtype=z.dtype)) - 0.5 * torch.log(var)
                        - 0.5 * (z - alpha * m) ** 2 / var)
            out_num.append(m + alpha * s**2 * (z - alpha * m) / var)
        r = torch.softmax(torch.stack(torch.broadcast_tensors(*logs)), dim=0)
        return (r * torch.stack(torch.broadcast_tensors(*out_num))).sum(0)


@dataclass
class JointGaussianData(_Analytic):
    """x ~ N(μ, Σ) on vectors (B, D): E[x | z] = μ + α Σ (α² Σ + σ² I)⁻¹ (z − α μ) (differentiable in z)."""

    mu: Tensor
    cov: Tensor

    def sample(self, n: int, generator=None) -> Tensor:
        L = torch.linalg.cholesky(self.cov)
        return self.mu + torch.randn(n, len(self.mu), generator=generator, dtype=self.cov.dtype) @ L.T

    def conditional_mean(self, x_a: Tensor, known: Tensor) -> Tensor:
        """E[xᵇ | xᵃ] = μᵇ + Σ_ba Σ_aa⁻¹ (xᵃ − μᵃ) for the boolean index `known` of the a-block."""
        a, b = known, ~known
        S_ba, S_aa = self.cov[b][:, a], self.cov[a][:, a]
        return self.mu[b] + (x_a - self.mu[a]) @ torch.linalg.solve(S_aa, S_ba.T)

    def posterior_mean(self, z, alpha, sigma):
        a = alpha.reshape(-1, 1, 1) if alpha.dim() else alpha
        s = sigma.reshape(-1, 1, 1) if sigma.dim() else sigma
        D = len(self.mu)
        eye = torch.eye(D, dtype=z.dtype)
        M = a**2 * self.cov + s**2 * eye  # (B, D, D) or (D, D)
        rhs = (z - alpha.reshape(-1, 1) * self.mu if alpha.dim() else z - alpha * self.mu)
        sol = torch.linalg.solve(M, rhs.unsqueeze(-1)).squeeze(-1)  # (B, D)
        return self.mu + (alpha.reshape(-1, 1) if alpha.dim() else alpha) * sol @ self.cov.T
