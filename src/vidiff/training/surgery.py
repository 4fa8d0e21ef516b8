"""Weight surgery before training: start from a checkpoint (`init_weights_from`, widening input layers
that gained channels) and choose which parameters train (`freeze`).
"""
from __future__ import annotations

import fnmatch
import sys
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from ..checkpoint import WEIGHTS_NAME, load_state_dict
from ..utils import VidiffError


def widen_input_channels(src: torch.Tensor, own: torch.Tensor) -> torch.Tensor | None:
    """`src` zero-padded along its input axis (dim 1) to `own`'s shape when that is the only difference
    (an input layer that gained channels: concat conditions, self-conditioning), else None. The extra
    inputs start with zero weight, so the widened model computes what the checkpoint did."""
    if (src.dim() < 2 or src.shape[0] != own.shape[0] or src.shape[2:] != own.shape[2:]
            or src.shape[1] >= own.shape[1]):
        return None
    out = torch.zeros_like(own)
    out[:, :src.shape[1]] = src.to(own.dtype)
    return out


def init_weights_from(model: nn.Module, folder: str | Path) -> None:
    """Copy every weight of checkpoint `folder` whose name and shape match (fine-tuning, or adding a
    condition to a trained unconditional model); an input layer that gained channels gets the
    checkpoint's weights for the old ones and zeros for the new (`widen_input_channels`, as Stable
    Diffusion's inpainting model was made from the text-to-image one); the rest keep their initialisation,
    except that the output projections of conditioning paths the checkpoint lacks (new cross-attention, pooled
    projection and noise-augmentation embedder: `Backbone.conditioning_outputs`, e.g. `--image-embed` or
    `--cond-noise-aug` on an unconditional model) start at zero, so the model starts computing what the
    checkpoint did and training grows the new paths.
    Weights holding NaN or inf are refused (`checkpoint.load_state_dict`)."""
    path = Path(folder) / WEIGHTS_NAME
    if not path.is_file():
        raise VidiffError(f"--init-from: {path} not found; give a checkpoint folder (model.safetensors + config.json)")
    src, own = load_state_dict(path), model.state_dict()
    hit = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
    widened = {k: w for k, v in src.items() if k in own and k not in hit
               for w in [widen_input_channels(v, own[k])] if w is not None}
    model.load_state_dict({**hit, **widened}, strict=False)
    outputs = getattr(model, "conditioning_outputs", None)
    silenced = sorted(k for k in (outputs() if outputs is not None else []) if k not in hit and k not in widened)
    with torch.no_grad():
        for k in silenced:  # a conditioning path new to the checkpoint: no-op until trained
            model.get_parameter(k).zero_()
    # a tensor of another shape that could not be widened is worth naming
    reshaped = sorted(k for k, v in src.items() if k in own and own[k].shape != v.shape and k not in widened)
    fresh = len(own) - len(hit) - len(widened)
    print(f"init from {folder}: {len(hit)}/{len(own)} tensors copied, {fresh} newly initialised"
          + (f"; widened with zero weights for the new input channels: {', '.join(sorted(widened))}" if widened else "")
          + (f"; {len(silenced)} output projections of new conditioning paths zeroed" if silenced else "")
          + (f"; of another shape there, so not copied: {', '.join(reshaped)}" if reshaped else ""), file=sys.stderr)


Selection = Callable[[str, nn.Parameter], bool] | Iterable[str] | None


def parameter_filter(which: Selection) -> Callable[[str, nn.Parameter], bool] | None:
    """A predicate on (qualified name, parameter) from `which`: a predicate itself; a list of names, of
    prefixes ending in "." or of fnmatch patterns ("*.temporal.*"); or None (no filter)."""
    if which is None or callable(which):
        return which
    names = [which] if isinstance(which, str) else list(which)

    def match(name: str, _p: nn.Parameter) -> bool:
        return any(name == n or (n.endswith(".") and name.startswith(n)) or fnmatch.fnmatchcase(name, n)
                   for n in names)

    return match


def freeze(modules: dict[str, nn.Module], which: Selection) -> list[tuple[nn.Parameter, bool]]:
    """Let only the parameters `which` selects train: the others get requires_grad False (no gradient,
    no optimizer state, bit-identical after training). Names are qualified by the module's name in
    `modules` ("model.down.0.blocks.0.temporal.norm.weight"). Returns [(parameter, previous flag)] to
    restore; a selection that matches nothing is a one-line error."""
    pred = parameter_filter(which)
    before = [(p, p.requires_grad) for m in modules.values() for p in m.parameters()]
    if pred is None:
        return before
    chosen = 0
    for mname, module in modules.items():
        for pname, p in module.named_parameters():
            keep = p.requires_grad and bool(pred(f"{mname}.{pname}", p))
            p.requires_grad_(keep)
            chosen += keep
    if not chosen:
        for p, flag in before:
            p.requires_grad_(flag)
        raise VidiffError("the parameters chosen to train match nothing in the network; check --train")
    return before


def count_trainable(modules: dict[str, nn.Module]) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    params = [p for m in modules.values() for p in m.parameters()]
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
