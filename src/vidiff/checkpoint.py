"""Checkpoint folders in the diffusers `save_pretrained` convention: model.safetensors + config.json.

`config.json` holds nested sections, e.g. {"model": {...}, "diffusion": {...}, "data": {...}}; it is
strict JSON (a non-finite number is written as null, never as a bare NaN). Weights are only ever read
with safetensors — never unpickled — and a file holding NaN or infinite values is refused.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .utils import VidiffError, atomic_path, atomic_write_text, read_json

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def save_state_dict(path: str | Path, state: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    """Save tensors as safetensors atomically (shared storage is cloned, as safetensors requires)."""
    state = {k: v.detach().contiguous().clone().cpu() for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})


def load_state_dict(path: str | Path, check_finite: bool = True) -> dict[str, torch.Tensor]:
    """Load a safetensors file with a clear error if it is missing, not safetensors, or (unless
    `check_finite` is False) holds a NaN or infinite value."""
    path = Path(path)
    if not path.is_file():
        raise VidiffError(f"weights file not found: {path}")
    try:
        state = load_file(str(path))
    except Exception as e:  # noqa: BLE001
        raise VidiffError(f"cannot read {path} as safetensors ({type(e).__name__}); "
                          "vidiff only loads .safetensors weights") from None
    if check_finite:
        bad = first_non_finite(state)
        if bad is not None:
            raise VidiffError(f"{path} holds NaN or infinite values (first in tensor {bad!r}): the weights are "
                              "damaged or come from a diverged run; use an earlier checkpoint or snapshot")
    return state


def first_non_finite(state: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor holding a NaN or ±inf, or None when all are finite."""
    for name, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return name
    return None


def json_safe(obj: Any) -> Any:
    """`obj` with every non-finite float (NaN, ±inf) replaced by None, so it serialises as strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def dumps_json(obj: Any, **kwargs) -> str:
    """Strict JSON text of `obj` (non-finite floats as null) with a trailing newline."""
    return json.dumps(json_safe(obj), allow_nan=False, **kwargs) + "\n"


def save_pretrained(folder: str | Path, model: torch.nn.Module, config: dict[str, Any]) -> Path:
    """Write `folder/model.safetensors` and `folder/config.json` (each atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_state_dict(folder / WEIGHTS_NAME, model.state_dict())
    atomic_write_text(folder / CONFIG_NAME, dumps_json(config, indent=2, sort_keys=True))
    return folder


def read_config(folder: str | Path) -> dict[str, Any]:
    """Read `folder/config.json`, with a clear error if the folder is not a checkpoint."""
    folder = Path(folder)
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise VidiffError(f"{folder} is not a vidiff checkpoint: {CONFIG_NAME} is missing")
    return read_json(path)
