"""Training a video backbone in an autoencoder's latent space (latent video diffusion, Video LDM / SVD).

    vidiff train --latent runs/vae --data videos/ ...      encode each batch on the fly
    vidiff train --data latents/ ...                       a cache written by `vidiff vae encode` (index.json)

`LatentSpace` is what `training.diffusion_task` asks when a recipe trains on latents: the dataset, the
backbone's shape (in/out channels = latent channels, frames and size of the latents), each step's
latents x₀ = (z − shift)·scale with z ~ q(z|x) drawn from the step's generator (on the fly: the
autoencoder's posterior; from a cache: its stored mean + std·ε), previews decoded to pixels, and the
checkpoint's `latent` section, which `vidiff sample` uses to find the same autoencoder again (sha256):

    "latent": {"vae", "vae_path", "weights", "fingerprint", "scaling_factor", "shift_factor",
               "spatial_factor", "temporal_factor", "latent_channels", "latent_shape", "cache"}
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import torch
from safetensors import safe_open
from torch import Tensor

from ..bundled import find_autoencoder
from ..data.dataset import VideoDataset
from ..data.latents import INDEX_NAME, LatentDataset, read_latent_index
from ..models.autoencoders import load_autoencoder, weights_file
from ..models.vae import Autoencoder
from ..utils import VidiffError


def is_latent_cache(path: str | Path) -> bool:
    """Whether `path` is a latent cache folder (`vidiff vae encode`'s index.json)."""
    return (Path(path) / INDEX_NAME).is_file()


def check_cache_finite(root: str | Path, index: dict) -> None:
    """Refuse, before training starts, a latent cache whose shards hold NaN/inf latents (naming the shard)."""
    for shard in index["shards"]:
        path = Path(root) / shard["file"]
        try:
            with safe_open(str(path), framework="pt") as f:
                bad = [k for k in f.keys() if not torch.isfinite(f.get_tensor(k)).all()]
        except Exception:  # noqa: BLE001 - missing, truncated or foreign files
            raise VidiffError(f"cannot read latent shard {path}; rerun `vidiff vae encode` with the same --out "
                              "to rewrite it") from None
        if bad:
            raise VidiffError(f"latent shard {path} holds NaN/inf latents ({bad[0]}); delete it and rerun "
                              "`vidiff vae encode` with the same --out to re-encode it")


class LatentSpace:
    """An autoencoder's latent space as training data: see the module doc. `data` is a latent cache folder
    (`cache=True`) or a folder of videos encoded per step."""

    def __init__(self, spec: str, autoencoder: Autoencoder, data: str, frames: int, size: int, *,
                 cache: bool = False, scaling_factor: float | None = None, shift_factor: float | None = None):
        self.spec, self.autoencoder = spec, autoencoder.eval().requires_grad_(False)
        self.data, self.cache = data, cache
        self.frames, self.size = frames, size
        self.scaling_factor = float(autoencoder.scaling_factor if scaling_factor is None else scaling_factor)
        self.shift_factor = float(autoencoder.shift_factor if shift_factor is None else shift_factor)
        self.shape = autoencoder.latent_shape(frames, size, size)  # (C, f, h, w); a size that does not fit: error

    @classmethod
    def open(cls, latent: str | None, data: str, frames: int, size: int) -> "LatentSpace | None":
        """The latent space of a recipe: `latent` (the --latent autoencoder) and/or `data` a latent cache
        (then frames and size are the cache's); None when the recipe trains on pixels."""
        if not latent and not is_latent_cache(data):
            return None
        if is_latent_cache(data):
            index = read_latent_index(data)
            spec = latent or index["autoencoder"].get("source")
            if not spec:
                raise VidiffError(f"latent cache {data} does not record its autoencoder's folder; pass --latent VAE")
            ae = load_autoencoder(find_autoencoder(spec))
            if ae.fingerprint != index["autoencoder"]["fingerprint"]:
                raise VidiffError(f"latent cache {data} was encoded by autoencoder sha256 "
                                  f"{index['autoencoder']['fingerprint'][:12]}…, but {spec} has sha256 "
                                  f"{ae.fingerprint[:12]}…; pass the autoencoder it was made with (--latent)")
            check_cache_finite(data, index)
            return cls(str(spec), ae, data, index["frames"], index["size"], cache=True,
                       scaling_factor=index["scaling_factor"], shift_factor=index["shift_factor"])
        ae = load_autoencoder(find_autoencoder(latent))
        return cls(str(latent), ae, data, frames, size)

    # --- what the recipe builds from it ------------------------------------------------------------------

    def dataset(self, *, stride: int, cache: bool, seed: int, progress: bool, captions: str):
        """The training items: the cache's latents, or the pixel clips that are encoded per step."""
        if self.cache:
            return LatentDataset(self.data, captions=captions, seed=seed, scaling_factor=self.scaling_factor)
        return VideoDataset(self.data, frames=self.frames, size=self.size, stride=stride,
                            cache="auto" if cache else False, seed=seed, progress=progress, captions=captions)

    def backbone_shape(self) -> dict:
        """`build_model_for` keywords: channels, frames and size of the latents."""
        c, f, h, w = self.shape
        return {"channels": c, "frames": f, "size": h}

    def section(self) -> dict:
        """The checkpoint's `latent` section (how `vidiff sample` finds and applies the autoencoder)."""
        ae = self.autoencoder
        folder = Path(ae.source).resolve() if ae.source else None
        return {"vae": self.spec, "vae_path": str(folder) if folder else None,
                "weights": str(weights_file(folder).resolve()) if folder else None,
                "fingerprint": ae.fingerprint, "scaling_factor": self.scaling_factor,
                "shift_factor": self.shift_factor, "spatial_factor": ae.spatial_factor,
                "temporal_factor": ae.temporal_factor, "latent_channels": ae.latent_channels,
                "latent_shape": list(self.shape), "cache": str(Path(self.data).resolve()) if self.cache else None}

    # --- per step ----------------------------------------------------------------------------------------

    @torch.no_grad()
    def latents(self, batch: dict, generator: torch.Generator, device) -> Tensor:
        """The step's x₀ (B, C, f, h, w) in the diffusion space: (z − shift)·scale, z ~ q(z|x) from `generator`."""
        x = batch["video"]
        if self.cache:
            if "latent_std" in batch:  # the cache stores scaled mean and std: z = mean + std·ε
                eps = torch.randn(x.shape, generator=generator)
                x = x + batch["latent_std"] * eps
            return x.to(device)
        ae = self.autoencoder.to(device)
        posterior = ae.encode(x.to(device))
        eps = torch.randn(posterior.mean.shape, generator=generator).to(device)
        z = posterior.mean + posterior.std * eps  # (B, C, f, h, w)
        return (z - self.shift_factor) * self.scaling_factor

    @torch.no_grad()
    def as_latents(self, videos: Tensor) -> Tensor:
        """Dataset items' "video" (B, …) as scaled latents (posterior means): a cache's as they are, pixel clips
        encoded (for the conditions of previews)."""
        if self.cache:
            return videos
        ae = self.autoencoder.to(videos.device)
        return (ae.encode(videos).mode() - self.shift_factor) * self.scaling_factor

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """Scaled latents → videos in [−1, 1] (previews)."""
        ae = self.autoencoder.to(z.device)
        return ae.decode(z / self.scaling_factor + self.shift_factor).clamp(-1, 1)  # (n, 3, F, H, W)

    def wrap_sample_fn(self, sample_fn: Callable | None) -> Callable | None:
        """A preview sampler over pixel shapes (n, 3, F, H, W) that samples latents and decodes them."""
        if sample_fn is None:
            return None

        def sample_pixels(model, diffusion, shape, **kwargs):
            z = sample_fn(model, diffusion, (shape[0], *self.shape), clamp=False, **kwargs)  # (n, C, f, h, w)
            return self.decode(z)

        return sample_pixels

    def recipe(self, cfg):
        """`cfg` (a TrainConfig) with the frames and size of the pixel clips behind the latents."""
        return dataclasses.replace(cfg, frames=self.frames, size=self.size)


__all__ = ["LatentSpace", "is_latent_cache"]
