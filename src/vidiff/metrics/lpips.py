"""LPIPS-VGG (Zhang et al. 2018, eq. 1) from local files: a VGG16 state dict + the LPIPS linear layers.

d(x, y) = Σ_l mean_hw ‖w_l ⊙ (n(f_l(x)) − n(f_l(y)))‖², with n the unit-norm over channels and f_l the
VGG16 activations relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 of inputs scaled by the LPIPS shift/scale.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from ..utils import VidiffError
from .extractors import _check_file, _read_state_dict, load_matching
from .protocol import as_video_tensor

VGG_FORMATS = ("torchvision vgg16 state dict (features.* keys; classifier.* ignored)", "its features-only state dict")
LIN_FORMATS = ("LPIPS v0.1 vgg.pth (lin0..lin4.model.1.weight)",)
_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_TAPS = (3, 8, 15, 22, 29)  # indices of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in vgg16.features
_CHANNELS = (64, 128, 256, 512, 512)


def vgg16_features() -> nn.Sequential:
    """torchvision's vgg16().features layout up to relu5_3 (indices match its state-dict keys)."""
    layers: list[nn.Module] = []
    c = 3
    for v in _CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=False)]
            c = v
    return nn.Sequential(*layers)


class _Lin(nn.Module):
    """1×1 conv C -> 1 without bias; `model.1` matches the LPIPS file (model.0 is dropout)."""

    def __init__(self, c: int):
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(c, 1, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class LPIPS(nn.Module):
    """LPIPS with the VGG16 backbone; forward((B, 3, H, W), (B, 3, H, W)) in [-1, 1] -> (B,)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.features = vgg16_features()
        self.lins = nn.ModuleDict({f"lin{i}": _Lin(c) for i, c in enumerate(_CHANNELS)})

    def taps(self, x: Tensor) -> list[Tensor]:
        """The five VGG activations of scaled input."""
        x = (x - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _TAPS:
                out.append(x)
        return out

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        d = 0
        for i, (a, b) in enumerate(zip(self.taps(x), self.taps(y))):
            na = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)  # (B, C, h, w) unit norm over C
            nb = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            d = d + self.lins[f"lin{i}"]((na - nb) ** 2).mean(dim=(1, 2, 3))  # (B,)
        return d


def load_lpips_model(vgg_path, lin_path) -> LPIPS:
    """The LPIPS module with its VGG16 and linear layers read from local files, in eval mode (differentiable)."""
    vgg_path, lin_path = _check_file(vgg_path), _check_file(lin_path)
    model = LPIPS()
    vsd = _read_state_dict(Path(vgg_path), VGG_FORMATS)
    if any(k.startswith("features.") for k in vsd):
        vsd = {k.removeprefix("features."): v for k, v in vsd.items() if k.startswith("features.")}
    vsd = {k: v for k, v in vsd.items() if int(k.split(".")[0]) < len(model.features)} if all(
        k.split(".")[0].isdigit() for k in vsd) else vsd
    load_matching(model.features, vsd, vgg_path, VGG_FORMATS)
    load_matching(model.lins, _read_state_dict(Path(lin_path), LIN_FORMATS), lin_path, LIN_FORMATS)
    return model.eval()


def load_lpips(vgg_path, lin_path, device: str = "cpu") -> Callable:
    """LPIPS from local files; returns fn(a, b) -> per-frame distances (B, F) for two video sets."""
    model = load_lpips_model(vgg_path, lin_path).to(device)

    @torch.no_grad()
    def fn(a, b) -> Tensor:
        a, b = as_video_tensor(a), as_video_tensor(b)
        if a.shape != b.shape:
            raise VidiffError(f"lpips needs equal shapes, got {tuple(a.shape)} vs {tuple(b.shape)}")
        bsz, c, f, h, w = a.shape
        fa = a.permute(0, 2, 1, 3, 4).reshape(-1, c, h, w).to(device)  # (B*F, 3, H, W)
        fb = b.permute(0, 2, 1, 3, 4).reshape(-1, c, h, w).to(device)
        if min(h, w) < 16:
            raise VidiffError(f"lpips needs frames of at least 16x16 (VGG pools 4 times), got {h}x{w}")
        return torch.cat([model(fa[i:i + 64], fb[i:i + 64]) for i in range(0, len(fa), 64)]).reshape(bsz, f).cpu()

    return fn


__all__ = ["LPIPS", "load_lpips", "load_lpips_model", "vgg16_features"]
