"""Kernel Inception/Video Distance: unbiased MMD² with the cubic polynomial kernel (Bińkowski et al. 2018)."""
from __future__ import annotations

import numpy as np

from ..utils import VidiffError
from .frechet import _as_features


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0) -> np.ndarray:
    """k(x, y) = (γ xᵀy + c)^d with γ = 1/D by default."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (gamma * x @ y.T + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                  coef0: float = 1.0) -> float:
    """Unbiased MMD² (Gretton et al. 2012, eq. 3): off-diagonal means of K_xx, K_yy minus 2 mean K_xy."""
    m, n = x.shape[0], y.shape[0]
    kxx = polynomial_kernel(x, x, degree, gamma, coef0)
    kyy = polynomial_kernel(y, y, degree, gamma, coef0)
    kxy = polynomial_kernel(x, y, degree, gamma, coef0)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.mean())


def kernel_distance(feats1, feats2, subsets: int = 100, subset_size: int = 1000, degree: int = 3,
                    gamma: float | None = None, coef0: float = 1.0, seed: int = 0) -> tuple[float, float]:
    """KID/KVD: mean ± std of unbiased MMD² over random subsets (without replacement) of both sets."""
    x, y = _as_features(feats1, "first feature set"), _as_features(feats2, "second feature set")
    if x.shape[1] != y.shape[1]:
        raise VidiffError(f"feature sizes differ ({x.shape[1]} vs {y.shape[1]}); use one extractor")
    if subsets < 1:
        raise VidiffError(f"subsets must be >= 1, got {subsets}")
    size = min(subset_size, x.shape[0], y.shape[0])
    rng = np.random.default_rng(seed)
    vals = [
        mmd2_unbiased(x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)],
                      degree, gamma, coef0)
        for _ in range(subsets)
    ]
    return float(np.mean(vals)), float(np.std(vals))
