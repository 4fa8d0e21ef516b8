"""Shared by the latent tests: the tiny UNet3D config, a perturbed random model of it, and a CLI runner."""
from __future__ import annotations

import torch

from vidiff.cli import main
from vidiff.models import build_model

TINY = {"arch": "unet3d", "base_channels": 8, "channel_mults": [1, 2], "attention_levels": [1],
        "head_dim": 8, "norm_groups": 8, "patch_size": 1}


def perturbed_model(seed: int, **extra):
    """A tiny UNet3D (TINY with `extra`) in eval mode, its weights perturbed from seed + 1 so that
    zero-initialised output layers do not make every frame alike."""
    torch.manual_seed(seed)
    model = build_model({**TINY, **extra})
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed + 1)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


def run(capsys, *args) -> tuple[int, str, str]:
    """`vidiff ARGS` in-process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err
