"""Will it fit? Parameters, GFLOPs and peak memory of a training step and of a sampling step, before any
allocation (`vidiff plan`).

FLOPs are counted on the meta device (`vidiff.models.stats`, the same count as `vidiff models`); a training
step is about 3× a forward (forward + backward, Kaplan et al. 2020's 6N per token against 2N). Peak memory is
`vidiff.limits`' activation estimate (bytes per activation element of one video) plus what this module
adds: the weights (4 bytes per parameter for sampling; 16 for training: weights, gradients and AdamW's two
moments), a fixed runtime overhead measured on CPU (float32 unet-nano-joint, 8x32x32 and 16x64x64), the
share of activations kept by gradient checkpointing and by bf16 autocast (measured the same way). With
`--latent` the backbone runs on the autoencoder's latents (size / spatial factor, its latent channels);
training assumes cached latents, sampling adds the decoder's weights and the decode of the batch.
"""
from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .bundled import available, find_autoencoder
from .limits import GiB, check_positive, estimate_sampling_bytes, estimate_training_bytes, free_memory_bytes
from .models import model_config_from_dict
from .models.autoencoders import load_autoencoder
from .models.presets import PRESETS
from .models.stats import config_stats
from .utils import VidiffError

MiB = 1024 ** 2
TRAIN_OVERHEAD = 100 * MiB  # autograd and optimizer bookkeeping of the first steps (measured 97-113 MiB on CPU)
SAMPLE_OVERHEAD = 24 * MiB  # the same for a no-grad forward (measured 21-25 MiB)
TRAIN_BYTES_PER_PARAM = 16  # float32 weights + gradients + AdamW's m and v
SAMPLE_BYTES_PER_PARAM = 4
GRAD_CKPT_SHARE = 0.45  # activation memory kept with gradient checkpointing (measured 0.43)
BF16_SHARE = 0.65  # activation memory under bf16 autocast (measured 0.66-0.68; norms and softmax stay float32)
DECODE_BYTES_PER_ELEMENT = 12  # no-grad decode peak per element of its largest feature map: input, output, a temporary
TRAIN_FLOPS_FACTOR = 3  # forward + backward (the backward costs about twice the forward)


@dataclass(frozen=True)
class Plan:
    """The cost of training and sampling one model at one shape (bytes, GFLOPs)."""

    model: str
    batch: int
    frames: int
    size: int
    backbone_shape: tuple[int, int, int, int]  # (C, F, H, W) the backbone sees: pixels or latents
    params: int
    gflops_forward: float  # one backbone forward on the batch
    gflops_train: float  # one training step on the batch (≈ 3× forward)
    decode_gflops: float  # decoding the batch's latents to pixels (0 in pixel space)
    vae_params: int
    train_bytes: int  # peak of one training step
    sample_bytes: int  # peak of one sampling step (and the decode, in latent space)
    free_bytes: int
    latent: str | None = None
    grad_ckpt: bool = False
    bf16: bool = False

    @property
    def fits_train(self) -> bool:
        return self.train_bytes <= self.free_bytes

    @property
    def fits_sample(self) -> bool:
        return self.sample_bytes <= self.free_bytes

    def summary(self) -> str:
        """The plan as aligned lines of text."""
        c, f, h, w = self.backbone_shape
        space = f"latents of {self.latent}" if self.latent else "pixels"
        opts = ", ".join(o for o, on in (("gradient checkpointing", self.grad_ckpt), ("bf16", self.bf16)) if on)

        def fit(ok: bool) -> str:
            return "fits" if ok else "does NOT fit"

        lines = [
            f"model            {self.model}" + (f" ({opts})" if opts else ""),
            f"input            batch {self.batch} x {self.frames}x{self.size}x{self.size}; backbone on {space} "
            f"({self.batch}, {c}, {f}, {h}, {w})",
            f"parameters       {self.params / 1e6:.2f} M" + (f" (+ {self.vae_params / 1e6:.2f} M autoencoder)"
                                                            if self.latent else ""),
            f"GFLOPs / step    forward {self.gflops_forward:.2f}, training {self.gflops_train:.2f}"
            + (f", decode {self.decode_gflops:.2f}" if self.latent else ""),
            f"training step    {_gib(self.train_bytes)} peak: {fit(self.fits_train)}",
            f"sampling step    {_gib(self.sample_bytes)} peak: {fit(self.fits_sample)}",
            f"free memory      {_gib(self.free_bytes)}",
        ]
        return "\n".join(lines)


def _gib(n: int) -> str:
    return f"{n / GiB:.2f} GiB" if n >= GiB / 10 else f"{n / MiB:.0f} MiB"


def resolve_model_config(model: str) -> tuple[str, Any]:
    """(name, backbone config) of a preset name, a model name on the search path, a checkpoint folder or a
    config.json (with a "model" section or a bare backbone config); anything else is a one-line error."""
    if model in PRESETS:
        return model, PRESETS[model]
    models = available("model")
    path = models.get(model, Path(model).expanduser())
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise VidiffError(f"unknown model {model!r}: not a preset ({', '.join(PRESETS)}), not a model on the search "
                          f"path ({', '.join(models) or 'none'}) and not a checkpoint folder or config.json")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise VidiffError(f"{path} is not a readable JSON config: {e}") from None
    section = config.get("model", config) if isinstance(config, dict) else config
    return model, model_config_from_dict(section)


def _decode_cost(vae: Any, latent_shape: tuple[int, ...]) -> tuple[float, int]:
    """(GFLOPs, elements of the largest feature map) of decoding latents of `latent_shape`, on the meta device."""
    meta = copy.deepcopy(vae).to("meta")
    largest = [0]

    def hook(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            largest[0] = max(largest[0], output.numel())

    handles = [m.register_forward_hook(hook) for m in meta.modules()]
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            out = meta.decode_latents(torch.empty(latent_shape, device="meta"))  # (B, 3, F, H, W)
    finally:
        for h in handles:
            h.remove()
    return counter.get_total_flops() / 1e9, max(largest[0], out.numel())


def plan(model: str, *, frames: int, size: int, batch: int = 1, latent: str | Path | None = None,
         grad_ckpt: bool = False, bf16: bool = False) -> Plan:
    """The cost of one training step and one sampling step of `model` on (batch, 3, frames, size, size) videos."""
    for value, option in ((frames, "--frames"), (size, "--size"), (batch, "--batch")):
        check_positive(value, option)
    name, cfg = resolve_model_config(model)
    h = f = None
    vae_params, decode_gflops, decode_bytes = 0, 0.0, 0
    if latent is not None:
        vae = load_autoencoder(find_autoencoder(latent).resolve())
        c, f, h, _ = vae.latent_shape(frames, size, size)  # VidiffError when the size does not divide
        if cfg.in_channels != c or cfg.out_channels != c:
            cfg = dataclasses.replace(cfg, in_channels=c, out_channels=c)
        vae_params = sum(p.numel() for p in vae.parameters())
        decode_gflops, largest = _decode_cost(vae, (batch, c, f, h, h))
        decode_bytes = largest * DECODE_BYTES_PER_ELEMENT
    f = frames if f is None else f
    h = size if h is None else h
    if dataclasses.is_dataclass(cfg) and hasattr(cfg, "gradient_checkpointing"):
        cfg = dataclasses.replace(cfg, gradient_checkpointing=grad_ckpt)
    params, gflops = config_stats(cfg, f, h, h, batch)  # VidiffError when the backbone cannot take the size
    act_share = BF16_SHARE if bf16 else 1.0
    train_act = estimate_training_bytes(cfg, batch, f, h, h) * act_share * (GRAD_CKPT_SHARE if grad_ckpt else 1.0)
    sample_act = estimate_sampling_bytes(cfg, batch, f, h, h, cfg.in_channels) * act_share
    train = int(train_act + params * TRAIN_BYTES_PER_PARAM + TRAIN_OVERHEAD)
    sample = int(max(sample_act, decode_bytes) + params * SAMPLE_BYTES_PER_PARAM + SAMPLE_OVERHEAD
                 + (vae_params * SAMPLE_BYTES_PER_PARAM if latent is not None else 0))
    return Plan(model=name, batch=batch, frames=frames, size=size, backbone_shape=(cfg.in_channels, f, h, h),
                params=params, gflops_forward=gflops, gflops_train=TRAIN_FLOPS_FACTOR * gflops,
                decode_gflops=decode_gflops, vae_params=vae_params, train_bytes=train, sample_bytes=sample,
                free_bytes=free_memory_bytes(), latent=None if latent is None else str(latent),
                grad_ckpt=grad_ckpt, bf16=bf16)


__all__ = ["Plan", "plan", "resolve_model_config"]
