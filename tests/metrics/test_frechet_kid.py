"""Fréchet distance and KID against closed forms and scipy/brute-force references."""
import numpy as np
import pytest
import scipy.linalg

from vidiff.metrics.frechet import feature_stats, frechet_distance, frechet_distance_features, trace_sqrt_product
from vidiff.metrics.kid import kernel_distance, mmd2_unbiased, polynomial_kernel
from vidiff.utils import VidiffError


def scipy_frechet(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def random_spd(rng, d, rank=None):
    a = rng.normal(size=(d, rank or d))
    return a @ a.T / d


def test_closed_form_diagonal_gaussians():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    a, b = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expect = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expect, rel=1e-10)


def test_commuting_covariances_closed_form():
    # Σ1 = Q diag(a) Qᵀ, Σ2 = Q diag(b) Qᵀ share eigenvectors: tr sqrt(Σ1Σ2) = Σ sqrt(a b)
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    a, b = rng.uniform(0.1, 2, 5), rng.uniform(0.1, 2, 5)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    assert trace_sqrt_product(s1, s2) == pytest.approx(np.sqrt(a * b).sum(), rel=1e-10)


def test_agrees_with_scipy_reference_general_covariances():
    rng = np.random.default_rng(3)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    s1, s2 = random_spd(rng, 8), random_spd(rng, 8)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(scipy_frechet(mu1, s1, mu2, s2), rel=1e-7)


def test_near_singular_covariances_stay_finite_and_match_reference():
    # fewer samples than dimensions: rank-deficient covariances, as with small eval sets
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(10, 32)), rng.normal(size=(12, 32)) + 0.3
    d = frechet_distance_features(x, y)
    (m1, s1), (m2, s2) = feature_stats(x), feature_stats(y)
    assert np.isfinite(d) and d >= 0
    assert d == pytest.approx(scipy_frechet(m1, s1, m2, s2), rel=1e-4)
    assert frechet_distance_features(x, x) == pytest.approx(0.0, abs=1e-6)


def test_sample_estimate_approaches_population_value():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(20000, 3)) * np.array([1.0, 2.0, 0.5])
    y = rng.normal(size=(20000, 3)) * np.array([1.5, 1.0, 0.5]) + np.array([1.0, 0, 0])
    expect = 1.0 + (1 - 1.5) ** 2 + (2 - 1) ** 2
    assert frechet_distance_features(x, y) == pytest.approx(expect, abs=0.05)


def test_refuses_single_sample_and_mismatched_dims():
    with pytest.raises(VidiffError, match="at least 2"):
        frechet_distance_features(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(VidiffError, match="feature sizes differ"):
        frechet_distance_features(np.zeros((3, 4)), np.zeros((3, 5)))


def brute_mmd2(x, y):
    k = lambda a, b: (a @ b / x.shape[1] + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return sxx + syy - 2 * sxy


def test_mmd_matches_brute_force_and_sklearn_style_kernel():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(7, 5)), rng.normal(size=(9, 5)) + 0.5
    assert mmd2_unbiased(x, y) == pytest.approx(brute_mmd2(x, y), rel=1e-10)
    assert polynomial_kernel(x, y)[2, 3] == pytest.approx((x[2] @ y[3] / 5 + 1) ** 3)


def test_linear_kernel_closed_form():
    # unbiased MMD² with k(x,y)=xᵀy equals ‖x̄−ȳ‖² − tr(Sx)/m − tr(Sy)/n (S unbiased covariances)
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(11, 4)), rng.normal(size=(8, 4)) * 2 + 1
    expect = ((x.mean(0) - y.mean(0)) ** 2).sum() - np.trace(np.cov(x.T)) / 11 - np.trace(np.cov(y.T)) / 8
    assert mmd2_unbiased(x, y, degree=1, gamma=1.0, coef0=0.0) == pytest.approx(expect, rel=1e-10)


def test_kid_zero_in_expectation_for_same_distribution():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    mean, std = kernel_distance(x, y, subsets=50, subset_size=100)
    assert abs(mean) < 3 * std / np.sqrt(50) + 1e-3
    shifted, _ = kernel_distance(x, y + 0.5, subsets=50, subset_size=100)
    assert shifted > 20 * max(abs(mean), std / np.sqrt(50))
