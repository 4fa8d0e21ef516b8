"""Size and cost of a backbone preset: parameters and FLOPs of one forward, without running it."""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from . import build_model
from .layers import count_params
from .presets import get_preset


def preset_stats(name: str, frames: int, size: int, batch: int = 1) -> tuple[int, float]:
    """(parameters, GFLOPs of one forward at (B, C, F, size, size)), counted on the meta device (no compute)."""
    return config_stats(get_preset(name), frames, size, size, batch)


def config_stats(cfg: Any, frames: int, height: int, width: int, batch: int = 1) -> tuple[int, float]:
    """(parameters, GFLOPs of one forward at (B, C, F, H, W)) of a backbone config, on the meta device."""
    with torch.device("meta"):
        model = build_model(cfg)
        model.check_size(frames, height, width)
        x = torch.empty(batch, cfg.in_channels, frames, height, width)  # (B, C, F, H, W)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x, torch.empty(batch))
    return count_params(model), counter.get_total_flops() / 1e9
