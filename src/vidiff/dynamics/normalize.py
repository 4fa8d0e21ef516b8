"""Frequency-adaptive normalization of spectral volumes (GID sec. 4.1).

Per frequency f, ``s_f`` = the 95th percentile over a training set of the complex amplitudes
|S_f^x|, |S_f^y|; then ``y = sign(x/s_f) sqrt(|x/s_f|)`` (power transform) channel-wise. The
inverse is ``x = s_f · sign(y) y²``. The scales are stored as JSON next to the model.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..config import config_from_dict, config_to_dict
from ..utils import VidiffError, atomic_write_text, read_json
from .spectral import spectral_to_complex


@dataclass(frozen=True)
class FrequencyNormalizer:
    """Per-frequency scales s_f (length K) and the percentile they were fitted at."""

    scales: tuple[float, ...]
    percentile: float = 95.0

    @classmethod
    def fit(cls, volumes: Tensor, percentile: float = 95.0, floor: float = 1e-6) -> "FrequencyNormalizer":
        """Fit s_f = percentile of |S_f| over ``volumes (N, K, 4, H, W)`` (x and y amplitudes pooled).

        Amplitudes <= ``floor`` (exactly static pixels) are left out, so data with sparse motion
        (most pixels still) does not get a zero scale; a frequency with no motion gets scale 1.
        """
        if volumes.ndim != 5 or volumes.shape[2] != 4:
            raise VidiffError(f"fit expects spectral volumes (N, K, 4, H, W), got {tuple(volumes.shape)}")
        amp = spectral_to_complex(volumes.double()).abs()  # (N, K, 2, H, W)
        amp = amp.transpose(0, 1).reshape(volumes.shape[1], -1)  # (K, N*2*H*W)
        scales = []
        for a in amp:
            a = a[a > floor]
            if a.numel() == 0:
                scales.append(1.0)
                continue
            kth = min(a.numel(), max(1, int(math.ceil(percentile / 100 * a.numel()))))
            scales.append(float(torch.kthvalue(a, kth).values))
        return cls(scales=tuple(scales), percentile=percentile)

    def _s(self, x: Tensor) -> Tensor:
        k = x.shape[-4]
        if k != len(self.scales):
            raise VidiffError(f"normalizer has {len(self.scales)} frequencies but the volume has {k}")
        return torch.tensor(self.scales, dtype=x.dtype, device=x.device).view(k, 1, 1, 1)

    def normalize(self, sv: Tensor) -> Tensor:
        """``(..., K, 4, H, W)`` -> sign(S/s_f)·sqrt(|S/s_f|)."""
        z = sv / self._s(sv)
        return torch.sign(z) * torch.sqrt(torch.abs(z))

    def denormalize(self, y: Tensor) -> Tensor:
        """Exact inverse of :meth:`normalize`: s_f · sign(y)·y²."""
        return torch.sign(y) * y * y * self._s(y)

    def save(self, path: str | Path) -> None:
        """Write the scales as JSON (atomically)."""
        atomic_write_text(path, json.dumps(config_to_dict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "FrequencyNormalizer":
        """Read scales written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise VidiffError(f"normalizer file not found: {path}")
        return config_from_dict(cls, read_json(path))
