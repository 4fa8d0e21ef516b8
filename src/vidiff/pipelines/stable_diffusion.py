"""A user's Stable Diffusion 1.x/2.x diffusers folder sampled with vidiff's samplers and guidance.

    pipe = StableDiffusion.from_pretrained("path/to/stable-diffusion-folder")
    images = pipe("a red cube", num=2, steps=50, guidance=6.5, seed=0)  # uint8 (N, 1, H, W, 3)

The UNet is a vidiff backbone (`models.diffusers_io.SDUNet`) on the folder's DDPM β table as a
`LinearSchedule`; prompts go through the folder's CLIP text encoder; latents are decoded by its
AutoencoderKL. By default the time grid is the one the folder's scheduler config describes
(`timestep_spacing`, `steps_offset`, `set_alpha_to_one`), so `sampler="ddim"` reproduces diffusers'
`StableDiffusionPipeline` with a DDIM scheduler; any vidiff sampler runs on it. Video i's initial
latents come from seed + i alone, as diffusers' with `generator=[torch.Generator().manual_seed(seed + i)]`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..conditioning import Cond
from ..data.io import to_uint8
from ..diffusion import ClassifierFreeGuidance, Denoiser, sample, sample_generators, stacked_randn
from ..models.diffusers_io import (
    STABLE_DIFFUSION,
    load_text_encoder,
    load_unet,
    load_vae,
    read_layout,
    sd_schedule,
)
from ..utils import VidiffError

__all__ = ["StableDiffusion", "scheduler_grid"]


def scheduler_grid(config: dict, steps: int) -> Tensor:
    """The descending float64 time grid a diffusers scheduler config describes for `steps` steps, in
    vidiff time t = (k + 1)/N for diffusers timestep k: its `timestep_spacing` ("leading" with
    `steps_offset`, "trailing", "linspace"), ending at t = 1/N (ᾱ₀) when `set_alpha_to_one` is false, as
    DDIM/PNDM end there, else at 0 (the data)."""
    N = int(config.get("num_train_timesteps", 1000))
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= N:
        raise VidiffError(f"steps must be an integer in [1, {N}]; got {steps!r}")
    spacing = config.get("timestep_spacing", "leading")
    if spacing == "leading":
        k = (np.arange(steps) * (N // steps)).round()[::-1] + int(config.get("steps_offset", 0))
    elif spacing == "trailing":
        k = np.round(np.arange(N, 0, -N / steps)) - 1
    elif spacing == "linspace":
        k = np.linspace(0, N - 1, steps).round()[::-1]
    else:
        raise VidiffError(f"unsupported timestep_spacing {spacing!r} in the scheduler config; vidiff reads "
                          "'leading', 'trailing' and 'linspace'")
    t = torch.tensor((k.astype(np.float64) + 1) / N, dtype=torch.float64)
    end = 1.0 / N if config.get("set_alpha_to_one") is False else 0.0
    if float(t[-1]) > end:
        t = torch.cat([t, torch.tensor([end], dtype=torch.float64)])
    if not bool((t[1:] < t[:-1]).all()) or float(t[0]) > 1:
        raise VidiffError(f"{steps} steps do not fit the scheduler's {N}-step grid with spacing {spacing!r}; use fewer")
    return t


class StableDiffusion:
    """Text-to-image sampling of a Stable Diffusion diffusers folder; `frames` > 1 draws that many
    independent images per sample as the frames of a (B, C, F, H, W) video."""

    def __init__(self, unet, vae, schedule, parameterization: str, scheduler_config: dict, text_encoder=None,
                 tokenizer=None, name: str = ""):
        self.unet, self.vae, self.schedule = unet, vae, schedule
        self.parameterization, self.scheduler_config = parameterization, scheduler_config
        self.text_encoder, self.tokenizer, self.name = text_encoder, tokenizer, name
        self.latent_channels = int(unet.unet.config.in_channels)
        self.sample_size = int(unet.unet.config.sample_size) * vae.spatial_factor  # pixels, diffusers' default
        self.size_multiple = vae.spatial_factor * 2 ** (len(unet.unet.config.block_out_channels) - 1)

    @classmethod
    def from_pretrained(cls, folder: str | Path, name: str = "") -> "StableDiffusion":
        """Load a diffusers Stable Diffusion folder (`unet/`, `vae/`, `scheduler/`, optionally
        `text_encoder/` + `tokenizer/`) from local files only."""
        layout = read_layout(folder)
        if layout.kind != STABLE_DIFFUSION:
            raise VidiffError(f"{folder} is a {layout.kind.replace('_', ' ')} folder, not Stable Diffusion; "
                              "load it with ImageToVideo.from_pretrained")
        schedule, parameterization, config = sd_schedule(layout.folder)
        unet = load_unet(layout)
        text_encoder, tokenizer = load_text_encoder(layout)
        pipe = cls(unet, load_vae(layout), schedule, parameterization, config, text_encoder, tokenizer,
                   name or Path(folder).name)
        if text_encoder is not None:
            unet.null_text = pipe.encode_prompt([""])  # what cond.drop means: the empty prompt
        return pipe

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str]) -> Tensor:
        """CLIP hidden states (B, L, D) of the prompts, padded to the tokenizer's length as diffusers does."""
        if self.text_encoder is None:
            raise VidiffError(f"{self.name or 'this folder'} has no text_encoder/ and tokenizer/; pass prompt_embeds "
                              "(and negative_embeds for guidance)")
        length = self.tokenizer.model_max_length
        tokens = self.tokenizer(prompts, padding="max_length", max_length=length, truncation=True,
                                return_tensors="pt")
        full = self.tokenizer(prompts, padding="longest", return_tensors="pt").input_ids
        if full.shape[1] > length:
            print(f"note: prompts are cut to the text encoder's {length} tokens", file=sys.stderr)
        mask = tokens.attention_mask if getattr(self.text_encoder.config, "use_attention_mask", False) else None
        return self.text_encoder(tokens.input_ids, attention_mask=mask)[0]  # (B, L, D)

    def check_size(self, height: int, width: int) -> None:
        m = self.size_multiple
        for what, n in (("height", height), ("width", width)):
            if not isinstance(n, int) or n < m or n % m:
                raise VidiffError(f"{what} must be a positive multiple of {m} for this model; got {n}")

    @torch.no_grad()
    def __call__(self, prompt: str | list[str] = "", num: int = 1, *, negative_prompt: str | list[str] = "",
                 guidance: float = 6.5, steps: int = 50, sampler: str = "ddim", seed: int = 0,
                 height: int | None = None, width: int | None = None, frames: int = 1, batch_size: int = 4,
                 prompt_embeds: Tensor | None = None, negative_embeds: Tensor | None = None,
                 latents: Tensor | None = None, spacing=None, output: str = "uint8", **sampler_kwargs):
        """`num` samples for `prompt` (one string, or one per sample): uint8 (N, F, H, W, 3), or with
        `output="float"` the decoded (N, 3, F, H, W) in [-1, 1]. `guidance` is vidiff's CFG weight w
        (x̂ = x̂_c + w (x̂_c − x̂_∅)); diffusers' guidance_scale is 1 + w (the default 6.5 is 7.5 there).
        `latents` (N, C, F, h, w) replaces the seeded initial noise; `spacing` replaces the scheduler's grid."""
        if output not in ("uint8", "float"):
            raise VidiffError(f"output must be 'uint8' or 'float'; got {output!r}")
        for value, what in ((num, "num"), (frames, "frames"), (batch_size, "batch_size")):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise VidiffError(f"{what} must be a positive integer; got {value!r}")
        height = self.sample_size if height is None else height
        width = self.sample_size if width is None else width
        self.check_size(height, width)
        grid = scheduler_grid(self.scheduler_config, steps) if spacing is None else spacing
        cond_text = self._embeds(prompt, prompt_embeds, num, "prompt")
        null_text = self._embeds(negative_prompt, negative_embeds, num, "negative_prompt") if guidance else None
        f = self.vae.spatial_factor
        shape = (num, self.latent_channels, frames, height // f, width // f)
        if latents is not None and tuple(latents.shape) != shape:
            raise VidiffError(f"latents must have shape {shape}; got {tuple(latents.shape)}")
        clip = self.scheduler_config.get("clip_sample_range", 1.0) if self.scheduler_config.get("clip_sample") else None
        outs = []
        for start in range(0, num, batch_size):
            b = min(batch_size, num - start)
            gens = sample_generators(seed + start, b)  # sample i: seed + i alone
            z = stacked_randn(torch.empty(b, *shape[1:]), gens) if latents is None else latents[start:start + b]
            den = Denoiser(self.unet, self.parameterization)
            cond = Cond(text=cond_text[start:start + b])
            if guidance:
                den = ClassifierFreeGuidance(den, w=guidance, null_cond=Cond(text=null_text[start:start + b]))
            z0 = sample(den, z.float(), self.schedule, steps, sampler=sampler, cond=cond, spacing=grid,
                        generator=gens, clip=clip, **sampler_kwargs)
            x = self.vae.decode(z0 / self.vae.scaling_factor + self.vae.shift_factor)  # (b, 3, F, H, W)
            outs.append(x.clamp(-1, 1))
        video = torch.cat(outs)
        return video if output == "float" else to_uint8(video)

    def _embeds(self, text: str | list[str], embeds: Tensor | None, num: int, what: str) -> Tensor:
        """(num, L, D) text embeddings from given embeddings or by encoding one text / one per sample."""
        if embeds is not None:
            if embeds.dim() != 3 or embeds.shape[0] not in (1, num):
                raise VidiffError(f"{what} embeddings must be (1 or {num}, L, D); got {tuple(embeds.shape)}")
            return embeds.expand(num, -1, -1)
        texts = [text] * num if isinstance(text, str) else list(text)
        if len(texts) != num:
            raise VidiffError(f"give one {what} or {num} (one per sample); got {len(texts)}")
        return self.encode_prompt(texts)
