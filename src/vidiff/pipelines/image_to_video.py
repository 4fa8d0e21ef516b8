"""Image-to-video with Stable Video Diffusion (Blattmann et al. 2023b) on vidiff's EDM sampling path.

    pipe = ImageToVideo.from_pretrained("path/to/stable-video-diffusion-folder")
    video = pipe("first.png", fps=7, motion_bucket=127, steps=25, seed=0)  # uint8 (1, F, H, W, 3)

The conditioning image is noised by `noise_aug` and encoded by the VAE; its latent is concatenated to
every frame of z_t, its CLIP image embedding is attended to, and fps − 1, the motion bucket and
`noise_aug` are the added time ids (micro-conditioning). The UNet's v-prediction in VP form is EDM's
preconditioning (see `diffusion.edm`), so the ordinary `Denoiser(unet, "v")` on an `EDMSchedule` with
EDM's σ grid and the `euler` (or `heun`) sampler is SVD's sampler; classifier-free guidance rises
linearly from the first frame to the last (`FrameRampGuidance`). With the same seeds (sample i from
seed + i: first its noise augmentation, then its initial latents) video i is the one diffusers'
`StableVideoDiffusionPipeline` draws with `generator=torch.Generator().manual_seed(seed + i)`.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..conditioning import Cond, null_like
from ..data.io import to_uint8
from ..diffusion import Denoiser, FrameRampGuidance, sample, sample_generators, stacked_randn
from ..models.diffusers_io import (
    STABLE_VIDEO_DIFFUSION,
    image_normalization,
    load_image_encoder,
    load_unet,
    load_vae,
    read_layout,
    svd_schedule,
)
from ..utils import VidiffError
from .base import load_image

__all__ = ["ImageToVideo", "MOTION_BUCKETS", "clip_resize"]

MOTION_BUCKETS = (0, 255)  # the motion-bucket ids SVD was trained on


def clip_resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize images (B, C, H, W) as SVD does before its CLIP encoder: a Gaussian blur against aliasing,
    σ = max((factor − 1)/2, 0.001) per axis on a window of max(4σ, 3) pixels made odd (reflect padding),
    then bicubic interpolation with aligned corners."""
    h, w = x.shape[-2:]
    for axis, (n, m) in enumerate(((h, size[0]), (w, size[1]))):
        sigma = max((n / m - 1.0) / 2.0, 0.001)
        k = int(max(4.0 * sigma, 3))
        k += 1 - k % 2  # odd
        i = torch.arange(k, dtype=x.dtype, device=x.device) - k // 2
        kernel = torch.exp(-(i**2) / (2 * sigma**2))
        kernel = kernel / kernel.sum()
        pad = [(k - 1) // 2, k - 1 - (k - 1) // 2]
        c = x.shape[1]
        if axis == 0:  # blur along H
            xp = F.pad(x, [0, 0, *pad], mode="reflect")
            x = F.conv2d(xp, kernel.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
        else:  # blur along W
            xp = F.pad(x, [*pad, 0, 0], mode="reflect")
            x = F.conv2d(xp, kernel.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.interpolate(x, size=size, mode="bicubic", align_corners=True)


class ImageToVideo:
    """Stable Video Diffusion image-to-video from a diffusers folder (`unet/` =
    UNetSpatioTemporalConditionModel, `vae/` = AutoencoderKLTemporalDecoder, `image_encoder/` =
    CLIPVisionModelWithProjection, `feature_extractor/`, `scheduler/`)."""

    def __init__(self, unet, vae, image_encoder, image_mean: Tensor, image_std: Tensor, schedule,
                 scheduler_config: dict, name: str = ""):
        self.unet, self.vae, self.image_encoder, self.schedule = unet, vae, image_encoder, schedule
        self.image_mean, self.image_std = image_mean, image_std
        self.scheduler_config, self.name = scheduler_config, name
        cfg = unet.unet.config
        self.latent_channels = int(cfg.out_channels)
        self.frames = int(cfg.num_frames)
        self.size_multiple = vae.spatial_factor * 2 ** (len(cfg.block_out_channels) - 1)
        self.encoder_size = int(image_encoder.config.image_size)

    @classmethod
    def from_pretrained(cls, folder: str | Path, name: str = "") -> "ImageToVideo":
        """Load a diffusers Stable Video Diffusion folder from local files only."""
        layout = read_layout(folder)
        if layout.kind != STABLE_VIDEO_DIFFUSION:
            raise VidiffError(f"{folder} is a {layout.kind.replace('_', ' ')} folder, not Stable Video Diffusion; "
                              "load it with StableDiffusion.from_pretrained")
        schedule, config = svd_schedule(layout.folder)
        mean, std = image_normalization(layout)
        return cls(load_unet(layout), load_vae(layout), load_image_encoder(layout), mean, std, schedule, config,
                   name or Path(folder).name)

    @torch.no_grad()
    def encode_image(self, image: Tensor) -> Tensor:
        """CLIP image embeddings (B, 1, D) of images (B, 3, H, W) in [-1, 1]."""
        s = self.encoder_size
        x = (clip_resize(image, (s, s)) + 1) / 2  # [0, 1]
        x = (x - self.image_mean.view(1, 3, 1, 1)) / self.image_std.view(1, 3, 1, 1)
        return self.image_encoder(x).image_embeds[:, None]  # (B, 1, D)

    def check_request(self, frames: int, height: int, width: int, fps: float, motion_bucket: float,
                      noise_aug: float) -> float:
        """One-line errors for bad sizes and micro-conditions; the motion bucket clamped (with a notice) to
        the trained range."""
        if not isinstance(frames, int) or isinstance(frames, bool) or frames < 1:
            raise VidiffError(f"frames must be a positive integer; got {frames!r}")
        m = self.size_multiple
        for what, n in (("height", height), ("width", width)):
            if not isinstance(n, int) or n < m or n % m:
                raise VidiffError(f"{what} must be a positive multiple of {m} for this model; got {n}")
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps >= 1):
            raise VidiffError(f"fps must be a number >= 1 (the model sees fps - 1); got {fps!r}")
        if not (isinstance(noise_aug, (int, float)) and math.isfinite(noise_aug) and noise_aug >= 0):
            raise VidiffError(f"noise_aug must be a number >= 0; got {noise_aug!r}")
        if not (isinstance(motion_bucket, (int, float)) and math.isfinite(motion_bucket)):
            raise VidiffError(f"the motion bucket must be a number in [{MOTION_BUCKETS[0]}, {MOTION_BUCKETS[1]}]; "
                              f"got {motion_bucket!r}")
        lo, hi = MOTION_BUCKETS
        if not lo <= motion_bucket <= hi:
            clamped = min(max(motion_bucket, lo), hi)
            print(f"note: motion bucket {motion_bucket:g} is outside the trained range [{lo}, {hi}]; using "
                  f"{clamped:g}", file=sys.stderr)
            motion_bucket = clamped
        return float(motion_bucket)

    @torch.no_grad()
    def __call__(self, image, num: int = 1, *, frames: int | None = None, height: int = 576, width: int = 1024,
                 fps: float = 7, motion_bucket: float = 127, noise_aug: float = 0.02, guidance_first: float = 0.0,
                 guidance_last: float = 2.0, steps: int = 25, sampler: str = "euler", spacing="karras",
                 seed: int = 0, decode_chunk: int | None = None, latents: Tensor | None = None, output: str = "uint8",
                 **sampler_kwargs):
        """`num` videos from one first frame `image` (a path, a uint8 (H, W, 3) array or a (3, H, W) tensor
        in [-1, 1]; another size is resized with a notice): uint8 (N, F, H, W, 3), or with `output="float"`
        the decoded (N, 3, F, H, W) in [-1, 1]. Guidance weights are vidiff's w (x̂ = x̂_c + w (x̂_c − x̂_∅))
        for the first and the last frame; diffusers' min/max_guidance_scale are 1 + w (defaults 1 and 3);
        no guidance when `guidance_last` <= 0, as diffusers. `latents` (N, C, F, h, w) replaces the seeded
        initial noise; `decode_chunk` frames are decoded at a time (default all)."""
        if output not in ("uint8", "float"):
            raise VidiffError(f"output must be 'uint8' or 'float'; got {output!r}")
        if not isinstance(num, int) or isinstance(num, bool) or num < 1:
            raise VidiffError(f"num must be a positive integer; got {num!r}")
        frames = self.frames if frames is None else frames
        motion_bucket = self.check_request(frames, height, width, fps, motion_bucket, noise_aug)
        first = load_image(image, (height, width))[None]  # (1, 3, H, W) in [-1, 1]
        f = self.vae.spatial_factor
        shape = (num, self.latent_channels, frames, height // f, width // f)
        if latents is not None and tuple(latents.shape) != shape:
            raise VidiffError(f"latents must have shape {shape}; got {tuple(latents.shape)}")
        embedding = self.encode_image(first)  # (1, 1, D)

        gens = sample_generators(seed, num)  # sample i: seed + i alone
        aug = stacked_randn(torch.empty(num, *first.shape[1:]), gens)  # (N, 3, H, W): drawn first, as diffusers
        cond_image = first + noise_aug * aug
        image_latent = self.vae.encode(cond_image[:, :, None]).mean  # (N, C, 1, h, w), unscaled (SVD's choice)
        cond = Cond(text=embedding.expand(num, -1, -1), concat=image_latent.expand(-1, -1, frames, -1, -1),
                    micro=torch.tensor([[fps - 1, motion_bucket]], dtype=torch.float32).expand(num, -1),
                    noise_aug=torch.full((num,), float(noise_aug)))
        if latents is None:  # drawn as diffusers' (F, C, h, w), scaled by its init_noise_sigma in VP terms
            noise = stacked_randn(torch.empty(num, frames, *shape[1:2], *shape[3:]), gens).transpose(1, 2)
            latents = noise * self._init_scale()
        den = Denoiser(self.unet, "v")
        if guidance_last > 0:
            den = FrameRampGuidance(den, guidance_first, guidance_last, null_cond=null_like(cond))
        z0 = sample(den, latents.float(), self.schedule, steps, sampler=sampler, cond=cond, spacing=spacing,
                    generator=gens, **sampler_kwargs)
        video = self.vae.decode(z0 / self.vae.scaling_factor + self.vae.shift_factor, chunk=decode_chunk)
        video = video.clamp(-1, 1)  # (N, 3, F, H, W)
        return video if output == "float" else to_uint8(video)

    def _init_scale(self) -> float:
        """The initial noise's std in VP terms: diffusers scales unit noise by init_noise_sigma, which is
        sqrt(σ_max² + 1) ("leading" spacing; z = ε) or σ_max ("linspace"/"trailing";
        z = σ_max/sqrt(σ_max² + 1) ε)."""
        if self.scheduler_config.get("timestep_spacing", "linspace") in ("linspace", "trailing"):
            s = self.schedule.sigma_max
            return s / math.sqrt(s**2 + 1)
        return 1.0
