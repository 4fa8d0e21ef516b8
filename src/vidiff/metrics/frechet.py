"""Fréchet distance between Gaussians fitted to feature sets (FID / FVD; Heusel et al. 2017, eq. 6)."""
from __future__ import annotations

import numpy as np

from ..utils import VidiffError


def _as_features(x, name: str) -> np.ndarray:
    """Features as a float64 (N, D) array; refuse N < 2 (a covariance needs two samples)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise VidiffError(f"{name}: expected features of shape (N, D), got {x.shape}")
    if x.shape[0] < 2:
        raise VidiffError(
            f"{name}: {x.shape[0]} sample(s); a covariance needs at least 2 — give more videos"
        )
    if not np.all(np.isfinite(x)):
        raise VidiffError(f"{name}: features contain NaN or Inf; check the extractor input")
    return x


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64."""
    x = _as_features(features, "features")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix via eigh (negative eigenvalues clipped to 0)."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr sqrt(Σ1 Σ2) = Σ_i sqrt(λ_i(√Σ1 Σ2 √Σ1)); stable for near-singular covariances (float64)."""
    s1 = _psd_sqrt(np.asarray(sigma1, np.float64))
    m = s1 @ np.asarray(sigma2, np.float64) @ s1
    w = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(w, 0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """d² = ‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½)  (Fréchet / 2-Wasserstein between Gaussians)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise VidiffError(
            f"feature statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs "
            f"{sigma2.shape}; both sets must use the same extractor"
        )
    diff = mu1 - mu2
    d2 = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2)
    return float(max(d2, 0.0))


def frechet_distance_features(feats1, feats2) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N1, D), (N2, D)."""
    f1, f2 = _as_features(feats1, "first feature set"), _as_features(feats2, "second feature set")
    if f1.shape[1] != f2.shape[1]:
        raise VidiffError(f"feature sizes differ ({f1.shape[1]} vs {f2.shape[1]}); use one extractor")
    return frechet_distance(*feature_stats(f1), *feature_stats(f2))
