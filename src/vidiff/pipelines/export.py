"""Export a training run as a model folder: its sampling checkpoint (EMA weights + config, no optimizer
state), optionally with an autoguidance guide (`vidiff export`).

A guide (Karras et al. 2024) is an earlier snapshot of the run, the weaker model of autoguidance: it goes
into DEST/guide and the config's "autoguidance" section records its default weight. A guide whose
backbone lacks a condition the run gained (an unconditional snapshot guiding a first-frame or text
fine-tune of it) is widened into the run's architecture with zero weights for the new input channels
and zero text layers (cross-attention, pooled projection), so it ignores the condition.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_state_dict, read_config, save_state_dict
from ..train import widen_input_channels
from ..utils import VidiffError, atomic_write_text

GUIDE_FOLDER = "guide"
# The layers a text condition adds to a backbone. Each feeds the residual stream or the time
# embedding through a linear map (cross-attention's to_out, pooled_proj), so all-zero copies add nothing.
TEXT_LAYERS = (".cross.", "pooled_proj.", "null_cond.")


@dataclass(frozen=True)
class Exported:
    """One checkpoint written by `export_model`: "model" or "guide", where from, where to, the weight
    file's size in MiB."""

    kind: str
    src: Path
    dest: Path
    mib: float


def write_checkpoint(dest: Path, state: dict, config: dict) -> float:
    """Write weights + config into `dest` (each atomically); return the weight file's size in MiB."""
    dest.mkdir(parents=True, exist_ok=True)
    save_state_dict(dest / WEIGHTS_NAME, state)
    atomic_write_text(dest / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return (dest / WEIGHTS_NAME).stat().st_size / 2**20


def copy_checkpoint(src: Path, dest: Path, extra: dict | None = None) -> tuple[dict, float]:
    """Copy weights + config (plus `extra` config keys); return the config written and the weight
    file's size in MiB."""
    config = {**read_config(src), **(extra or {})}
    return config, write_checkpoint(dest, load_state_dict(src / WEIGHTS_NAME), config)


def copy_guide(src: Path, dest: Path, run: Path) -> tuple[dict, float]:
    """Copy guide checkpoint `src` into `dest` in the architecture of `run`: as is when the two backbone
    configs agree; when the run only gained a condition (input channels, text), every tensor widened
    with zero weights for the extra input channels (`widen_input_channels`) and zero text layers;
    any other difference is a one-line error."""
    model = read_config(run)["model"]
    config = read_config(src)
    if config["model"] == model:
        return copy_checkpoint(src, dest)
    differ = {k for k in set(model) | set(config["model"]) if model.get(k) != config["model"].get(k)}
    gained = differ <= {"cond_channels", "text_dim"} and all(
        (config["model"].get(k) or 0) < (model.get(k) or 0) for k in differ)
    own, state = load_state_dict(run / WEIGHTS_NAME), load_state_dict(src / WEIGHTS_NAME)
    if not gained or set(state) - set(own):
        raise VidiffError(f"guide {src} is another backbone than {run} ({', '.join(sorted(differ))} differ); "
                          "give a snapshot of the same backbone (it may lack input channels or text layers)")
    out = {}
    for k, own_v in own.items():
        if k not in state:
            if k.startswith("noise_aug_embed."):  # the noise-level embedding a concat condition adds: used
                out[k] = own_v  # only by SSR's noise augmentation, so the run's own copy (never read here)
            elif any(p in "." + k for p in TEXT_LAYERS):
                out[k] = torch.zeros_like(own_v)
            else:
                raise VidiffError(f"guide {src} lacks {k}; give a snapshot of the same backbone")
            continue
        out[k] = state[k] if state[k].shape == own_v.shape else widen_input_channels(state[k], own_v)
        if out[k] is None:
            raise VidiffError(f"guide {src}: {k} has shape {tuple(state[k].shape)}, the run's {tuple(own_v.shape)}; "
                              "only added input channels can be widened")
    config = {**config, "model": model, "widened_from": config["model"]}
    return config, write_checkpoint(dest, out, config)


def export_model(run: str | Path, dest: str | Path, *, guide: str | Path | None = None, autoguidance: float = 1.0,
                 autoguidance_high_noise: float | None = None, logsnr_split: float = 0.0) -> list[Exported]:
    """Copy the sampling checkpoint of `run` into the model folder `dest`; with `guide` (a checkpoint
    folder, e.g. RUN/snapshots/step_0001500) also ship it as DEST/guide with default autoguidance weight
    `autoguidance` (and `autoguidance_high_noise` where log-SNR < `logsnr_split`, the noisier steps).
    Returns what was written: the guide first, then the model."""
    run, dest = Path(run), Path(dest)
    if guide is None and autoguidance_high_noise is not None:
        raise VidiffError("--autoguidance-high-noise needs --guide (the guide model it weights)")
    written, extra = [], None
    if guide is not None:
        gconfig, gsize = copy_guide(Path(guide), dest / GUIDE_FOLDER, run)
        extra = {"autoguidance": {"guide": GUIDE_FOLDER, "w": autoguidance,
                                  "guide_steps": gconfig.get("summary", {}).get("steps")}}
        if autoguidance_high_noise is not None:
            extra["autoguidance"].update(w_high_noise=autoguidance_high_noise, logsnr_split=logsnr_split)
        written.append(Exported("guide", Path(guide), dest / GUIDE_FOLDER, gsize))
    _, size = copy_checkpoint(run, dest, extra)
    written.append(Exported("model", run, dest, size))
    return written
