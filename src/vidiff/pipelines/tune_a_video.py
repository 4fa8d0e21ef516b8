"""Tune-A-Video (Wu et al. 2023): one-shot tuning of an image model on one clip, then text-driven editing.

    model = inflate_tune_a_video(load_model("runs/t2i"))       # + temporal attention (identity at init)
    losses = tune(model, diffusion, clip, cond, steps=300)     # on the clip and its caption
    save_tuned("runs/tav", model, ...)
    TuneAVideo.from_pretrained("runs/tav").edit(clip, "a blue square")   # uint8 (F, H, W, 3)

Inflation (§4.1): the image UNet3D (temporal none) becomes the same UNet with temporal attention after
every block (`video_ldm_from_image(image, temporal="attention")`, zero output projection, so at
initialisation it is the image model frame by frame), and its per-frame self-attention becomes
sparse-causal: frame i attends to the keys/values of frames 0 and i − 1
(`frame_attention(model, "sparse_causal")`, on whenever the model runs).
Fine-tuning (§4.2): only the temporal attention layers and the query projections of the spatial
self-attention and of the text cross-attention train (`tunable_parameters`); the key/value rows of the
fused q/k/v projection are held by a gradient mask, AdamW without weight decay, so they and every
other weight stay bit-identical. The loss is the model's own denoising loss on the clip with its caption.
Editing (§4.3): DDIM inversion of the clip under the source caption (no guidance, `ddim_invert`) gives
the starting noise; DDIM from it under the edited caption with classifier-free guidance gives the edit.

The folder `save_tuned` writes is a vidiff checkpoint (model.safetensors + config.json) with a
"tune_a_video" section (source caption, frames, steps, learning rate, losses); the processors are not
weights, so `TuneAVideo.from_pretrained` sets them again.

A Stable Diffusion folder (`tune_clip_sd`, `TuneAVideoSD`) is inflated with Video LDM's temporal layers
around its UNet (`models.temporal.VideoLDM`); its temporal attention layers and every attn1/attn2
`to_q` train on the clip's VAE latents (t on the scheduler's integer timesteps), the temporal conv blocks
stay frozen at the identity; the tuned folder holds those tensors and the path of the SD folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoint import (CONFIG_NAME, WEIGHTS_NAME, dumps_json, load_state_dict, read_config, save_pretrained,
                          save_state_dict)
from ..conditioning import Cond, null_like
from ..config import config_to_dict
from ..data.io import from_uint8, to_uint8
from ..diffusion import ClassifierFreeGuidance, Denoiser
from ..diffusion.loss import diffusion_loss
from ..diffusion.samplers import ddim, ddim_invert
from ..models.diffusers_io import is_diffusers_folder
from ..models.layers import Attention, CrossAttention, TemporalAttentionBlock
from ..models.temporal import VideoLDM, video_ldm_from_image
from ..models.unet3d import UNet3D
from ..utils import VidiffError, atomic_write_text
from . import load_pipeline, resolve_model
from .base import VideoPipeline
from .frame_attention import frame_attention
from .latent import is_latent_checkpoint
from .stable_diffusion import StableDiffusion
from .t2v_zero import check_image_model

__all__ = ["TuneAVideo", "inflate_tune_a_video", "tunable_parameters", "tune", "save_tuned", "clip_tensor",
           "is_tune_a_video"]

SECTION = "tune_a_video"
MODE = "sparse_causal"


def inflate_tune_a_video(image: nn.Module) -> UNet3D:
    """The image UNet3D with temporal attention after every block, at the identity (§4.1)."""
    if not isinstance(image, UNet3D):
        raise VidiffError(f"Tune-A-Video inflates a vidiff UNet3D image model; got {type(image).__name__}")
    check_image_model(image, "the image model", "Tune-A-Video")
    return video_ldm_from_image(image, temporal="attention")


def tunable_parameters(model: UNet3D | VideoLDM) -> dict[str, Tensor | None]:
    """name → row mask (a (rows, 1) or (rows,) 0/1 tensor: the query rows of a fused q/k/v projection) or None
    (the whole tensor) for the parameters Tune-A-Video trains: the temporal layers, the spatial
    self-attention's query projection and the text cross-attention's query projection (§4.2). On a
    Stable Diffusion UNet under Video LDM's layers: the temporal attention layers (the temporal conv blocks
    stay frozen at the identity) and every `attn1.to_q` / `attn2.to_q`."""
    if isinstance(model, VideoLDM):
        chosen = {}
        for name, _ in model.named_parameters():
            if name.startswith("temporal.layers."):
                key = name.split(".")[2]
                if isinstance(model.temporal.layers[key].layer, TemporalAttentionBlock):
                    chosen[name] = None
            elif ".attn1.to_q." in name or ".attn2.to_q." in name:
                chosen[name] = None
        return chosen
    chosen: dict[str, Tensor | None] = {name: None for name in model.temporal_parameter_names()}
    if not chosen:
        raise VidiffError("the model has no temporal attention to tune; inflate the image model first "
                          "(inflate_tune_a_video)")
    for module_name, module in model.named_modules():
        if isinstance(module, Attention) and module.role == "spatial":
            dim = module.to_out.in_features
            for pname, p in module.to_qkv.named_parameters():
                mask = torch.zeros(p.shape[0], *([1] * (p.dim() - 1)), dtype=p.dtype)
                mask[:dim] = 1  # rows [0, dim) of to_qkv are the query projection
                chosen[f"{module_name}.to_qkv.{pname}"] = mask
        elif isinstance(module, CrossAttention):
            for pname, _ in module.to_q.named_parameters():
                chosen[f"{module_name}.to_q.{pname}"] = None
    return chosen


def clip_tensor(video: np.ndarray, frames: int | None, size: int) -> Tensor:
    """A uint8 clip (F, H, W, 3) → (1, 3, F', size, size) in [-1, 1]: its first `frames` frames (all when
    None), centre-cropped to a square and resized (bilinear, antialiased)."""
    if video.ndim != 4 or video.shape[-1] != 3:
        raise VidiffError(f"expected a clip (F, H, W, 3); got shape {video.shape}")
    if frames is not None:
        if video.shape[0] < frames:
            raise VidiffError(f"the clip has {video.shape[0]} frames, fewer than the {frames} asked; "
                              f"lower --frames to at most {video.shape[0]}")
        video = video[:frames]
    if video.shape[0] < 2:
        raise VidiffError(f"Tune-A-Video needs a clip of at least 2 frames; got {video.shape[0]}")
    x = from_uint8(video)  # (3, F, H, W)
    h, w = x.shape[-2:]
    s = min(h, w)
    x = x[..., (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s].transpose(0, 1)  # (F, 3, s, s)
    if s != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.transpose(0, 1)[None].clamp(-1, 1).contiguous()  # (1, 3, F, size, size)


def tune(model: UNet3D | VideoLDM, x0: Tensor, cond: Cond | None, *, schedule, parameterization: str,
         steps: int = 300, lr: float = 3e-5, seed: int = 0, num_train_steps: int | None = None,
         callback: Callable[[int, float], None] | None = None) -> list[float]:
    """One-shot fine-tuning (§4.2) of an inflated model on the clip (or its latents) x0 (1, C, F, H, W) with
    its caption's `cond`: AdamW (no weight decay) on `tunable_parameters` only, sparse-causal attention on;
    returns the per-step losses. Every other tensor, and the key/value rows of to_qkv, stay bit-identical.
    `num_train_steps` N draws t from the discrete grid (k + 1)/N (a model trained on integer timesteps)."""
    if not isinstance(steps, int) or steps < 1:
        raise VidiffError(f"--steps must be a positive integer; got {steps!r}")
    if not lr > 0:
        raise VidiffError(f"--lr must be positive; got {lr}")
    masks = tunable_parameters(model)
    params, hooks = [], []
    for name, p in model.named_parameters():
        p.requires_grad_(name in masks)
        if name in masks:
            params.append(p)
            if masks[name] is not None:
                mask = masks[name].to(p.device)
                hooks.append(p.register_hook(lambda g, mask=mask: g * mask))  # key/value rows: no gradient
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    try:
        with frame_attention(model, MODE, x0.shape[2]):
            for step in range(steps):
                t = None
                if num_train_steps:
                    t = (torch.randint(0, num_train_steps, (x0.shape[0],), generator=generator) + 1) / num_train_steps
                loss = diffusion_loss(model, x0, schedule, parameterization=parameterization, cond=cond, t=t,
                                      generator=generator)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
                if callback is not None:
                    callback(step, losses[-1])
    finally:
        for h in hooks:
            h.remove()
        for p in model.parameters():
            p.requires_grad_(True)
        model.eval()
    return losses


def save_tuned(folder: str | Path, model: UNet3D, base_config: dict, *, source_prompt: str | None, frames: int,
               size: int, steps: int, lr: float, losses: list[float], image_model: str = "") -> Path:
    """A checkpoint folder of the tuned model: the image model's diffusion/conditioning sections, the video
    format of the clip and the "tune_a_video" section `TuneAVideo` reads."""
    video = dict(base_config.get("video", {}), frames=frames, size=size)
    config = {k: v for k, v in base_config.items() if k not in ("autoguidance", "model", "summary")}
    config.update(model=config_to_dict(model.config), video=video)
    config[SECTION] = {"source_prompt": source_prompt, "image_model": image_model, "frames": frames, "steps": steps,
                       "lr": lr, "attention": MODE, "first_loss": losses[0] if losses else None,
                       "last_loss": losses[-1] if losses else None}
    return save_pretrained(folder, model, config)


def is_tune_a_video(folder: str | Path) -> bool:
    """True for a folder written by `save_tuned` (a config.json with a "tune_a_video" section)."""
    p = Path(folder)
    return (p / "config.json").is_file() and SECTION in read_config(p)


@torch.no_grad()
def invert_and_sample(model: nn.Module, x0: Tensor, source: Cond | None, target: Cond | None, *, schedule,
                      parameterization: str, steps: int = 50, guidance: float = 0.0, null: Cond | None = None,
                      spacing: str = "uniform") -> tuple[Tensor, Tensor]:
    """(x_T, edited x0): DDIM inversion of x0 under `source` (no guidance), then DDIM from x_T under `target`
    with classifier-free guidance weight `guidance` towards `null` (default: `null_like(target)`), both
    with sparse-causal attention (§4.3)."""
    den = Denoiser(model, parameterization)
    model.eval()
    with frame_attention(model, MODE, x0.shape[2]):
        z_T = ddim_invert(den, x0, schedule, steps, cond=source, spacing=spacing)
        guided = den
        if guidance and target is not None:
            guided = ClassifierFreeGuidance(den, w=guidance, null_cond=null if null is not None else null_like(target))
        return z_T, ddim(guided, z_T, schedule, steps, cond=target, spacing=spacing)


class TuneAVideo:
    """A tuned Tune-A-Video checkpoint of a vidiff image model: `edit(clip, prompt)` → uint8 (F, H, W, 3)."""

    def __init__(self, pipe: VideoPipeline, name: str = ""):
        if SECTION not in pipe.config:
            raise VidiffError(f"{name or pipe.name} is not a Tune-A-Video model (its config.json has no "
                              f"'{SECTION}' section); tune one with `vidiff tune-a-video CLIP --model IMAGE_MODEL`")
        self.pipe, self.name = pipe, name or pipe.name
        self.section = pipe.config[SECTION]

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "TuneAVideo | TuneAVideoSD":
        """A folder written by `save_tuned` or `tune_clip_sd` (the latter as `TuneAVideoSD`)."""
        section = read_config(folder).get(SECTION)
        if isinstance(section, dict) and section.get("stable_diffusion"):
            return TuneAVideoSD.from_pretrained(folder)
        return cls(VideoPipeline.from_pretrained(folder), Path(folder).name)

    def cond(self, prompt: str | None, frames: int) -> Cond | None:
        return self.pipe.make_cond(1, frames, self.pipe.video.size, prompt=prompt)

    def edit(self, video: np.ndarray, prompt: str | None, *, source_prompt: str | None = None, steps: int = 50,
             guidance: float = 3.0, output: str = "uint8"):
        """The clip (F, H, W, 3) re-rendered under `prompt` from its DDIM inversion under `source_prompt`
        (default: the caption it was tuned with); `output="float"`: (1, 3, F, H, W) in [-1, 1]."""
        frames = self.section.get("frames")
        x0 = clip_tensor(video, frames, self.pipe.video.size)
        src = self.section.get("source_prompt") if source_prompt is None else source_prompt
        f = x0.shape[2]
        d = self.pipe.diffusion
        _, x = invert_and_sample(self.pipe.model, x0, self.cond(src, f), self.cond(prompt, f),
                                 schedule=d.build_schedule(), parameterization=d.parameterization, steps=steps,
                                 guidance=guidance)
        x = x.clamp(-1, 1)
        return x if output == "float" else to_uint8(x)[0]


def load_image_model(name_or_path: str) -> VideoPipeline:
    """A vidiff pixel image model for Tune-A-Video (temporal none, per-frame spatial attention)."""
    if is_latent_checkpoint(resolve_model(name_or_path)):
        raise VidiffError(f"{name_or_path} is a latent model; Tune-A-Video here tunes pixel image models")
    pipe = load_pipeline(name_or_path)
    check_image_model(pipe.model, str(name_or_path), "Tune-A-Video")
    return pipe


def tune_clip(video: np.ndarray, image_model: str, prompt: str | None, out: str | Path, *, steps: int = 300,
              lr: float = 3e-5, frames: int | None = None, size: int | None = None, seed: int = 0,
              callback: Callable[[int, float], None] | None = None) -> tuple[Path, list[float]]:
    """Tune `image_model` (a vidiff pixel image model or a Stable Diffusion folder) on the clip with its caption
    and write the checkpoint to `out`."""
    if is_diffusers_folder(image_model):
        return tune_clip_sd(video, image_model, prompt, out, steps=steps, lr=lr, frames=frames, size=size, seed=seed,
                            callback=callback)
    pipe = load_image_model(image_model)
    size = pipe.video.size if size is None else size
    x0 = clip_tensor(video, frames, size)
    pipe.model.check_size(x0.shape[2], size, size)
    cond = pipe.make_cond(1, x0.shape[2], size, prompt=prompt)
    if prompt is not None and cond is None:
        raise VidiffError(f"{image_model} is not text-conditioned, so --prompt cannot be used")
    model = inflate_tune_a_video(pipe.model)
    torch.manual_seed(seed)
    losses = tune(model, x0, cond, schedule=pipe.diffusion.build_schedule(),
                  parameterization=pipe.diffusion.parameterization, steps=steps, lr=lr, seed=seed, callback=callback)
    folder = save_tuned(out, model, pipe.to_config(), source_prompt=prompt,
                        frames=x0.shape[2], size=size, steps=steps, lr=lr, losses=losses,
                        image_model=str(image_model))
    return folder, losses


# ----------------------------------------------------------------------------- Stable Diffusion folders


def encode_clip(sd: StableDiffusion, x0: Tensor) -> Tensor:
    """Scaled latents (1, C, F, h, w) of a clip (1, 3, F, H, W) in [-1, 1]: the posterior mode."""
    with torch.no_grad():
        return (sd.vae.encode(x0).mode() - sd.vae.shift_factor) * sd.vae.scaling_factor


def tune_clip_sd(video: np.ndarray, folder: str | Path, prompt: str | None, out: str | Path, *, steps: int = 300,
                 lr: float = 3e-5, frames: int | None = None, size: int | None = None, seed: int = 0,
                 callback: Callable[[int, float], None] | None = None) -> tuple[Path, list[float]]:
    """Tune-A-Video on a Stable Diffusion folder: Video LDM's temporal layers around its UNet (the attention
    ones and the query projections train, the temporal conv blocks stay at the identity), tuned on the clip's
    latents with t on the scheduler's integer timesteps. `out` gets the temporal and query tensors and a
    config.json naming the folder, which `TuneAVideoSD` loads again."""
    if not prompt:
        raise VidiffError(f"{folder} is a Stable Diffusion folder: give the clip's caption with --prompt \"...\"")
    sd = StableDiffusion.from_pretrained(folder)
    size = sd.sample_size if size is None else size
    sd.check_size(size, size)
    z0 = encode_clip(sd, clip_tensor(video, frames, size))  # (1, C, F, h, w)
    model = VideoLDM(sd.unet)
    losses = tune(model, z0, Cond(text=sd.encode_prompt([prompt])), schedule=sd.schedule,
                  parameterization=sd.parameterization, steps=steps, lr=lr, seed=seed,
                  num_train_steps=sd.schedule.num_train_steps, callback=callback)
    keep = set(tunable_parameters(model))
    state = {k: v for k, v in model.state_dict().items() if k in keep or k.startswith("temporal.")}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_state_dict(out / WEIGHTS_NAME, state)
    config = {"video": {"channels": 3, "frames": z0.shape[2], "size": size, "fps": 8.0},
              SECTION: {"source_prompt": prompt, "stable_diffusion": str(Path(folder).resolve()),
                        "frames": z0.shape[2], "steps": steps, "lr": lr, "attention": MODE,
                        "first_loss": losses[0], "last_loss": losses[-1]}}
    atomic_write_text(out / CONFIG_NAME, dumps_json(config, indent=2, sort_keys=True))
    return out, losses


class TuneAVideoSD:
    """A Tune-A-Video checkpoint over a Stable Diffusion folder: `edit(clip, prompt)` → uint8 (F, H, W, 3)."""

    def __init__(self, sd: StableDiffusion, model: VideoLDM, section: dict, size: int, name: str = ""):
        self.sd, self.model, self.section, self.size, self.name = sd, model.eval(), section, size, name

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "TuneAVideoSD":
        config = read_config(folder)
        section = config[SECTION]
        base = Path(section["stable_diffusion"])
        if not is_diffusers_folder(base):
            raise VidiffError(f"{folder} was tuned from the Stable Diffusion folder {base}, which is not there "
                              "any more; restore it or tune again")
        sd = StableDiffusion.from_pretrained(base)
        model = VideoLDM(sd.unet)
        state = load_state_dict(Path(folder) / WEIGHTS_NAME)
        unknown = sorted(set(state) - set(model.state_dict()))
        if unknown:
            raise VidiffError(f"weights in {folder} do not fit {base}: unexpected {unknown[:3]}")
        model.load_state_dict(state, strict=False)
        return cls(sd, model, section, int(config["video"]["size"]), Path(folder).name)

    def edit(self, video: np.ndarray, prompt: str | None, *, source_prompt: str | None = None, steps: int = 50,
             guidance: float = 3.0, output: str = "uint8"):
        """As `TuneAVideo.edit`, on the clip's latents, with DDIM on the 'trailing' grid of integer timesteps."""
        sd = self.sd
        z0 = encode_clip(sd, clip_tensor(video, self.section.get("frames"), self.size))
        src = self.section.get("source_prompt") if source_prompt is None else source_prompt
        conds = [Cond(text=sd.encode_prompt([p or ""])) for p in (src, prompt, "")]
        _, z = invert_and_sample(self.model, z0, conds[0], conds[1], null=conds[2], schedule=sd.schedule,
                                 parameterization=sd.parameterization, steps=steps, guidance=guidance,
                                 spacing="trailing")
        with torch.no_grad():
            x = sd.vae.decode(z / sd.vae.scaling_factor + sd.vae.shift_factor).clamp(-1, 1)  # (1, 3, F, H, W)
        return x if output == "float" else to_uint8(x)[0]
