"""Backbone configs ↔ models ↔ checkpoint folders: `build_model`, `save_model`, `load_model`."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torch import nn

from ..checkpoint import WEIGHTS_NAME, load_state_dict, read_config, save_pretrained
from ..config import config_from_dict, config_to_dict
from ..utils import VidiffError
from .dit import DiT, DiTConfig
from .presets import get_preset
from .unet3d import UNet3D, UNet3DConfig

ARCHS: dict[str, tuple[type, type[nn.Module]]] = {
    "unet3d": (UNet3DConfig, UNet3D),
    "dit": (DiTConfig, DiT),
}


def model_config_from_dict(d: dict) -> Any:
    """A backbone config dataclass from its `config_to_dict` form (the "arch" key picks the class)."""
    if not isinstance(d, dict):
        raise VidiffError(f"model config must be a mapping, got {type(d).__name__}")
    arch = d.get("arch", "unet3d")
    if arch not in ARCHS:
        raise VidiffError(f"unknown model arch {arch!r}; choose one of {sorted(ARCHS)}")
    return config_from_dict(ARCHS[arch][0], d, where=f"model ({arch})")


def build_model(cfg: Any) -> nn.Module:
    """Instantiate a backbone from a config dataclass, a config dict, or a preset name."""
    if isinstance(cfg, str):
        cfg = get_preset(cfg)
    if isinstance(cfg, dict):
        cfg = model_config_from_dict(cfg)
    for cfg_cls, model_cls in ARCHS.values():
        if isinstance(cfg, cfg_cls):
            return model_cls(cfg)
    raise VidiffError(f"cannot build a model from {type(cfg).__name__}; expected one of "
                      f"{[c.__name__ for c, _ in ARCHS.values()]}")


def save_model(folder: str | Path, model: nn.Module, extra_config: dict | None = None) -> Path:
    """Write `folder/model.safetensors` + `folder/config.json` ({"model": config, **extra_config})."""
    if not dataclasses.is_dataclass(getattr(model, "config", None)):
        raise VidiffError("save_model needs a vidiff backbone (a module with a dataclass .config)")
    config = {**(extra_config or {}), "model": config_to_dict(model.config)}
    return save_pretrained(folder, model, config)


def load_model(folder: str | Path) -> nn.Module:
    """Rebuild the backbone saved by `save_model` and load its weights (safetensors only), in eval mode."""
    folder = Path(folder)
    config = read_config(folder)
    if "model" not in config:
        raise VidiffError(f"{folder / 'config.json'} has no 'model' section; it was not written by save_model")
    model = build_model(config["model"])
    state = load_state_dict(folder / WEIGHTS_NAME)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise VidiffError(f"weights in {folder} do not match the config: missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]}")
    return model.eval()
