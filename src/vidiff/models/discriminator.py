"""A small 3D patch discriminator: real/fake logits for overlapping space-time patches of a video.

PatchGAN (Isola et al. 2017, §3.2.2) with 3D convolutions, as video autoencoders fine-tune their decoder
against one (Video LDM §3.1.1 trains its temporal decoder with a 3D-convolutional patch discriminator);
trained with the hinge loss (`vidiff.training.vae_loss`). GroupNorm instead of BatchNorm keeps it independent
of the (small) batch size.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ..utils import VidiffError
from .layers import group_norm


@dataclass(frozen=True)
class DiscriminatorConfig:
    """`layers` stride-2 stages (space always, time from the second stage on) of `channels`·2^i channels (≤ 8×)."""

    in_channels: int = 3
    channels: int = 32
    layers: int = 3

    def __post_init__(self):
        if self.layers < 1 or self.channels < 1:
            raise VidiffError(f"discriminator layers and channels must be >= 1, got {self.layers}, {self.channels}")


class PatchDiscriminator3D(nn.Module):
    """x (B, C, F, H, W) in [−1, 1] → logits (B, 1, F', H', W'), one per space-time patch."""

    def __init__(self, config: DiscriminatorConfig | None = None):
        super().__init__()
        self.config = cfg = config or DiscriminatorConfig()
        layers: list[nn.Module] = [nn.Conv3d(cfg.in_channels, cfg.channels, (3, 4, 4), (1, 2, 2), (1, 1, 1)),
                                   nn.LeakyReLU(0.2)]
        c = cfg.channels
        for i in range(1, cfg.layers):
            cout = cfg.channels * min(2 ** i, 8)
            layers += [nn.Conv3d(c, cout, (3, 4, 4), (2, 2, 2), (1, 1, 1), bias=False), group_norm(cout),
                       nn.LeakyReLU(0.2)]
            c = cout
        layers.append(nn.Conv3d(c, 1, 3, 1, 1))
        self.net = nn.Sequential(*layers)
        for m in self.modules():  # DCGAN / PatchGAN initialisation
            if isinstance(m, nn.Conv3d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, 1, F', H / 2^layers, W / 2^layers)


__all__ = ["DiscriminatorConfig", "PatchDiscriminator3D"]
