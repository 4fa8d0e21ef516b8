"""Inception-v1 I3D (Carreira & Zisserman 2017) with the parameter names of the VideoGPT/TATS
`i3d_pretrained_400.pt` state dict (the piergiaj pytorch-i3d layout), so that file loads directly.

TensorFlow-style "SAME" padding is computed from the input size in every conv and pool.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor, nn


def same_pad(size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]) -> list[int]:
    """F.pad amounts (w_front, w_back, h_front, h_back, t_front, t_back) for TF 'SAME' padding."""
    pad = []
    for s, k, st in zip(size, kernel, stride):
        total = max(k - st, 0) if s % st == 0 else max(k - s % st, 0)
        pad.append((total // 2, total - total // 2))
    return [p for pair in reversed(pad) for p in pair]


class Unit3D(nn.Module):
    """Conv3d (SAME padding) + BatchNorm3d + ReLU; the logits layer has a bias and neither BN nor ReLU."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), bn: bool = True,
                 relu: bool = True, bias: bool = False):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(cout, eps=1e-5, momentum=0.001) if bn else None

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, same_pad(x.shape[2:], self.kernel, self.stride))  # (B, C, T', H', W')
        x = self.conv3d(x)  # (B, cout, T/s, H/s, W/s)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    """Max pooling with TF 'SAME' zero padding (as the reference implementation)."""

    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, same_pad(x.shape[2:], self.kernel, self.stride))
        return F.max_pool3d(x, self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four branches: 1×1; 1×1→3×3×3; 1×1→3×3×3; 3×3×3 max-pool→1×1; concatenated over channels."""

    def __init__(self, cin: int, c: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a, self.b1b = Unit3D(cin, c[1]), Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, c[3]), Unit3D(c[3], c[4], (3, 3, 3))
        self.b3a, self.b3b = MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(cin, c[5])

    def forward(self, x: Tensor) -> Tensor:
        # (B, C, T, H, W) -> (B, c0 + c2 + c4 + c5, T, H, W)
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


# (name, module) in forward order; channel tables from the paper's Inception-v1.
_MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


class InceptionI3d(nn.Module):
    """I3D RGB stream; `forward` gives the 400 Kinetics logits (FVD features of VideoGPT/TATS/TF-hub),
    `features` the 1024-d average-pooled Mixed_5c activations."""

    def __init__(self, num_classes: int = 400, in_channels: int = 3):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionModule(*_MIXED["Mixed_3b"])
        self.Mixed_3c = InceptionModule(*_MIXED["Mixed_3c"])
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        for k in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            setattr(self, k, InceptionModule(*_MIXED[k]))
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionModule(*_MIXED["Mixed_5b"])
        self.Mixed_5c = InceptionModule(*_MIXED["Mixed_5c"])
        self.logits = Unit3D(1024, num_classes, bn=False, relu=False, bias=True)

    def trunk(self, x: Tensor) -> Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> Mixed_5c activations (B, 1024, T/8, H/32, W/32)."""
        for name, module in self.named_children():
            if name == "logits":
                break
            x = module(x)
        return x

    @staticmethod
    def pool(x: Tensor) -> Tensor:
        """Average pool 2×7×7, stride 1 (the reference head); smaller maps are pooled globally."""
        t, h, w = x.shape[2:]
        if t >= 2 and h >= 7 and w >= 7:
            return F.avg_pool3d(x, (2, 7, 7), stride=1)  # (B, 1024, T', H', W')
        return x.mean(dim=(2, 3, 4), keepdim=True)  # (B, 1024, 1, 1, 1)

    def features(self, x: Tensor) -> Tensor:
        """Pooled 1024-d features (B, 1024), averaged over any remaining positions."""
        return self.pool(self.trunk(x)).mean(dim=(2, 3, 4))

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, num_classes): head on the pooled map, averaged over time (dropout is identity at eval)."""
        y = self.logits(self.pool(self.trunk(x)))  # (B, K, T', H', W')
        return y.mean(dim=(2, 3, 4))
