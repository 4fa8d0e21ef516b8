"""Checkpoint folders in the diffusers `save_pretrained` convention: model.safetensors + config.json.

`config.json` holds nested sections, e.g. {"model": {...}, "diffusion": {...}, "data": {...}}.
Weights are only ever read with safetensors — never unpickled.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .utils import VidiffError, atomic_path, atomic_write_text

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def save_state_dict(path: str | Path, state: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    """Save tensors as safetensors atomically (shared storage is cloned, as safetensors requires)."""
    state = {k: v.detach().contiguous().clone().cpu() for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file with a clear error if it is missing or not safetensors."""
    path = Path(path)
    if not path.is_file():
        raise VidiffError(f"weights file not found: {path}")
    try:
        return load_file(str(path))
    except Exception as e:  # noqa: BLE001
        raise VidiffError(f"cannot read {path} as safetensors ({type(e).__name__}); "
                          "vidiff only loads .safetensors weights") from None


def save_pretrained(folder: str | Path, model: torch.nn.Module, config: dict[str, Any]) -> Path:
    """Write `folder/model.safetensors` and `folder/config.json` (each atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_state_dict(folder / WEIGHTS_NAME, model.state_dict())
    atomic_write_text(folder / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return folder


def read_config(folder: str | Path) -> dict[str, Any]:
    """Read `folder/config.json`, with a clear error if the folder is not a checkpoint."""
    folder = Path(folder)
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise VidiffError(f"{folder} is not a vidiff checkpoint: {CONFIG_NAME} is missing")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise VidiffError(f"{path} is not valid JSON: {e}") from None
