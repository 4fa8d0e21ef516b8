"""Spectral volumes (GID sec. 3): temporal FFT of per-pixel trajectories, and its inverse.

Layout. A spectral volume ``S`` has shape ``(K, 4, H, W)`` (optionally with leading batch dims):
frequency index ``f = 0 .. K-1`` (``f`` cycles per period of ``T`` frames), channels
``[Re Sx, Im Sx, Re Sy, Im Sy]`` — the complex coefficient of the x and y displacement.

Normalisation. Coefficients are *one-sided amplitudes*: for a real trajectory ``D(t, p)``

    S_0 = (1/T) Σ_t D(t),      S_f = (2/T) Σ_t D(t) exp(-2πi f t / T)   (1 <= f < T/2)

so a sinusoid ``A cos(2π f t / T + φ)`` has ``S_f = A e^{iφ}`` and the motion texture is

    F_t(p) = Σ_{f<K} Re( S_f(p) exp(2πi f t / T) )       (any real t: slow motion)

which is also the modal superposition F = Σ Re(S_f q_f) with q_f(t) = exp(2πi f t / T).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..utils import VidiffError


def trajectories_to_spectral(traj: Tensor | np.ndarray, k: int = 16) -> Tensor:
    """Per-pixel trajectories ``(T, 2, H, W)`` -> spectral volume ``(K, 4, H, W)``
    (one-sided amplitudes, module doc)."""
    traj = torch.as_tensor(np.asarray(traj) if isinstance(traj, np.ndarray) else traj)
    if traj.ndim < 4 or traj.shape[-3] != 2:
        raise VidiffError(f"trajectories must be (T, 2, H, W), got {tuple(traj.shape)}")
    t = traj.shape[-4]
    if k < 1:
        raise VidiffError(f"--k must be at least 1 (the number of frequencies kept); got {k}")
    if not 1 <= k <= t // 2 + (t % 2):
        raise VidiffError(f"k={k} frequencies need at least {2 * k - 1} frames; got T={t}: lower --k")
    spec = torch.fft.rfft(traj.double(), dim=-4)[..., :k, :, :, :] / t  # (..., K, 2, H, W) complex
    spec[..., 1:, :, :, :] *= 2.0
    if t % 2 == 0 and k == t // 2 + 1:  # the Nyquist bin is not doubled
        spec[..., -1, :, :, :] /= 2.0
    out = torch.stack([spec.real, spec.imag], dim=-3)  # (..., K, 2, 2, H, W): axis, re/im
    return out.flatten(-4, -3).to(torch.float32 if traj.dtype != torch.float64 else torch.float64)


def spectral_to_complex(sv: Tensor) -> Tensor:
    """``(..., K, 4, H, W)`` real layout -> ``(..., K, 2, H, W)`` complex (x, y)."""
    if sv.shape[-3] != 4:
        raise VidiffError(f"spectral volume must have 4 channels (Re x, Im x, Re y, Im y), got {tuple(sv.shape)}")
    return torch.complex(sv[..., 0::2, :, :], sv[..., 1::2, :, :])


def complex_to_spectral(c: Tensor) -> Tensor:
    """``(..., K, 2, H, W)`` complex -> ``(..., K, 4, H, W)`` real layout."""
    return torch.stack([c.real, c.imag], dim=-3).flatten(-4, -3)


def motion_texture(sv: Tensor, t: float | Tensor, period: float, magnify: float = 1.0) -> Tensor:
    """F_t = magnify · Σ_f Re(S_f exp(2πi f t / T)) (module doc); ``sv (..., K, 4, H, W)`` -> ``(..., 2, H, W)``.

    ``t`` may be fractional (slow motion) or a 1-D tensor of times, giving ``(..., n, 2, H, W)``.
    Differentiable in ``sv`` (used by the loop guidance loss).
    """
    k = sv.shape[-4]
    f = torch.arange(k, dtype=sv.dtype, device=sv.device)
    t = torch.as_tensor(t, dtype=sv.dtype, device=sv.device)
    phase = 2 * math.pi * f * t.reshape(-1, 1) / period  # (n, K)
    cos, sin = torch.cos(phase), torch.sin(phase)
    # Re((a + ib)(cos + i sin)) = a cos - b sin, for x (channels 0,1) and y (channels 2,3)
    x = torch.einsum("...khw,nk->...nhw", sv[..., 0, :, :], cos) - torch.einsum("...khw,nk->...nhw", sv[..., 1, :, :],
            sin)
    y = torch.einsum("...khw,nk->...nhw", sv[..., 2, :, :], cos) - torch.einsum("...khw,nk->...nhw", sv[..., 3, :, :],
            sin)
    out = magnify * torch.stack([x, y], dim=-3)  # (..., n, 2, H, W)
    return out[..., 0, :, :, :] if t.ndim == 0 else out


def rotate_phases(sv: Tensor, theta: Tensor) -> Tensor:
    """S_f ← S_f e^{iθ_f} for f ≥ 1 — each frequency's oscillation shifted in time by −θ_f T / (2π f),
    its amplitudes and mode shape kept — with the real part of S_0 corrected so that F_0 = Σ_f Re S_f is
    unchanged (the reference frame stays in place). ``sv (..., K, 4, H, W)``, ``theta (..., K)`` (θ_0 ignored)."""
    c = spectral_to_complex(sv)  # (..., K, 2, H, W)
    theta = torch.as_tensor(theta, dtype=sv.dtype, device=sv.device).clone()
    theta[..., 0] = 0
    new = c * torch.polar(torch.ones_like(theta), theta)[..., None, None, None]  # S_0 unchanged (θ_0 = 0)
    new[..., 0, :, :, :] += (c.real - new.real).sum(-4)  # (..., 2, H, W): Re S_0 absorbs the change of F_0
    return complex_to_spectral(new)


def canonical_phase(sv: Tensor) -> Tensor:
    """The volume with each slice f ≥ 1 rotated so that its amplitude-weighted mean coefficient
    Σ_p,xy S_f |S_f| is real and positive (`rotate_phases`): one image cannot tell when each
    frequency's oscillation starts, so this removes that unobservable phase from the training target
    (our choice, not in GID) — a part oscillating alone at f becomes A s(p) with a real A > 0."""
    c = spectral_to_complex(sv)
    theta = -torch.angle((c * c.abs()).sum((-3, -2, -1)))  # (..., K); angle(0) = 0 for still slices
    return rotate_phases(sv, theta)


def amplitude_per_frequency(sv: Tensor) -> Tensor:
    """Mean over pixels of |S_f| (x and y amplitude combined) -> ``(K,)``, for the extract plot."""
    c = spectral_to_complex(sv)
    return c.abs().pow(2).sum(-3).sqrt().mean(dim=(-2, -1))


def amplitude_error(pred: Tensor, true: Tensor) -> tuple[Tensor, Tensor]:
    """Phase-free distance of two ``(K, 4, H, W)`` volumes over f >= 1: mean | |S_pred| - |S_true| | and
    the mean |S_true| it is measured against (their ratio is 1 for a prediction of no motion)."""
    a, b = spectral_to_complex(pred)[1:].abs(), spectral_to_complex(true)[1:].abs()  # (K-1, 2, H, W)
    return (a - b).abs().mean(), b.mean()


def resize_spectral(sv: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize ``(K, 4, H, W)`` to ``size=(H', W')``, scaling x/y displacement with the image."""
    k, _, h, w = sv.shape
    if (h, w) == tuple(size):
        return sv
    out = torch.nn.functional.interpolate(sv.float(), size=size, mode="bilinear", align_corners=False)
    scale = torch.tensor([size[1] / w, size[1] / w, size[0] / h, size[0] / h]).view(1, 4, 1, 1)
    return out * scale


LAYOUT = "K,4,H,W: re_x,im_x,re_y,im_y; one-sided amplitudes over a period of T frames"


def save_spectral_volume(path, sv: Tensor, period: int, fps: float, reference: np.ndarray | None = None) -> None:
    """Write ``.npz`` (atomically): spectral_volume (K, 4, H, W) float32, period, fps, layout[, reference image]."""
    from ..utils import atomic_path

    arrays = {"spectral_volume": np.asarray(sv.detach().cpu(), np.float32), "period": np.int64(period),
              "fps": np.float64(fps), "layout": np.array(LAYOUT)}
    if reference is not None:
        arrays["reference"] = np.asarray(reference, np.uint8)
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def load_spectral_volume(path) -> dict:
    """Read a file written by ``save_spectral_volume``
    -> {"spectral_volume": Tensor, "period", "fps"[, "reference"]}."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise VidiffError(f"spectral volume file not found: {path}; "
                          "make one with `vidiff dynamics extract VIDEO --out sv.npz`")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - numpy raises many types for bad files
        raise VidiffError(f"cannot read {path} as a spectral volume .npz ({type(e).__name__})") from None
    if "spectral_volume" not in data:
        raise VidiffError(f"{path} has no 'spectral_volume' array; make one with `vidiff dynamics extract`")
    sv = torch.from_numpy(data["spectral_volume"].astype(np.float32))
    if sv.ndim != 4 or sv.shape[1] != 4:
        raise VidiffError(f"{path}: spectral_volume must be (K, 4, H, W), got {tuple(sv.shape)}")
    out = {"spectral_volume": sv, "period": int(data.get("period", 150)), "fps": float(data.get("fps", 30.0))}
    if "reference" in data:
        out["reference"] = data["reference"]
    return out
