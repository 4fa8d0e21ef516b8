"""Latent video diffusion at sampling time: the backbone samples latents, the autoencoder decodes them.

A checkpoint trained with `vidiff train --latent VAE` (or on a `vidiff vae encode` cache) records its
autoencoder in config.json:

    "latent": {"vae": as given, "vae_path": its absolute folder, "fingerprint": sha256 of its weights,
               "weights": the weights file, "scaling_factor", "shift_factor", "spatial_factor",
               "temporal_factor", "latent_channels"}

`LatentVideoPipeline.from_pretrained` finds that autoencoder — the checkpoint's own `vae/` sub-folder, the
name or path as given (a bundled name is looked up on the model search path), then the recorded absolute
path — and accepts it only when its weights have the recorded sha256, so a latent model is never decoded
by another autoencoder. Sampling is the pixel pipeline's (`VideoPipeline.__call__`: conditions, CFG,
autoguidance) on latents of shape (C, f, h, w); decoding runs in temporal chunks and spatial tiles
(`decode_chunk`, `tile`), so its memory stays flat in length and resolution. Latents z are mapped to the
diffusion space as (z − shift)·scale (LDM §4.3.2) and back before decoding.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from ..bundled import find_autoencoder
from ..checkpoint import read_config
from ..conditioning import Cond
from ..models.autoencoders import load_autoencoder, vae_fingerprint, weights_file
from ..models.vae import Autoencoder
from ..utils import VidiffError
from .base import VideoFormat, VideoPipeline, load_image

# decoding defaults: 8 latent frames at a time (with the decoder's receptive field as context), spatial
# tiles of 64 latent pixels (512 pixels at factor 8) — smaller latents are decoded in one tile, exactly
DEFAULT_DECODE_CHUNK = 8
DEFAULT_TILE = 64


def effective_chunk(autoencoder: Autoencoder, latent_frames: int, chunk: int | None) -> int | None:
    """`chunk`, or None (decode in one piece: the same result, no more memory) when one window with its context
    on both sides — the decoder's receptive field, or `chunk` frames where that is unbounded — covers the clip."""
    if not chunk:
        return None
    halo = autoencoder.decoder_halo if autoencoder.decoder_halo is not None else chunk
    return None if latent_frames <= chunk + 2 * halo else chunk


def find_checkpoint_autoencoder(latent: dict, folder: str | Path, device: str | torch.device = "cpu") -> Autoencoder:
    """The autoencoder a latent checkpoint in `folder` was trained with (see the module doc); a missing or
    different one is a one-line error naming the expected weights file and its sha256."""
    want = latent.get("fingerprint")
    if not want:
        raise VidiffError(f"{Path(folder) / 'config.json'}: the 'latent' section records no autoencoder fingerprint")
    candidates = []
    if (Path(folder) / "vae").is_dir():
        candidates.append(Path(folder) / "vae")
    for spec in (latent.get("vae"), latent.get("vae_path")):
        if spec:
            try:
                candidates.append(find_autoencoder(spec))
            except VidiffError:
                pass
    seen = []
    for path in dict.fromkeys(candidates):
        try:
            got = vae_fingerprint(path)
        except VidiffError:
            continue
        if got == want:
            return load_autoencoder(path, device)
        seen.append(f"{weights_file(path)} has sha256 {got[:12]}…")
    expected = latent.get("weights") or latent.get("vae_path") or latent.get("vae")
    found = f"; found only other weights: {', '.join(seen)}" if seen else " and it is missing"
    raise VidiffError(f"latent model {folder} decodes with the autoencoder {expected} (sha256 {want}){found} — "
                      "restore that autoencoder (or copy it to the checkpoint's vae/ folder)")


class LatentVideoPipeline(VideoPipeline):
    """A `VideoPipeline` whose backbone works on the latents of `autoencoder`; `video` is the pixel format.

    `scaling_factor`/`shift_factor` are the ones the model was trained with (the checkpoint's `latent`
    section); `decode_chunk` latent frames and `tile` latent pixels are decoded at a time (0: all at once)."""

    def __init__(self, model: torch.nn.Module, diffusion, video: VideoFormat, autoencoder: Autoencoder, *,
                 scaling_factor: float | None = None, shift_factor: float | None = None, config: dict | None = None,
                 name: str = "", guide: torch.nn.Module | None = None, decode_chunk: int = DEFAULT_DECODE_CHUNK,
                 tile: int = DEFAULT_TILE):
        super().__init__(model, diffusion, video, config, name, guide)
        self.autoencoder = autoencoder.eval()
        self.scaling_factor = float(autoencoder.scaling_factor if scaling_factor is None else scaling_factor)
        self.shift_factor = float(autoencoder.shift_factor if shift_factor is None else shift_factor)
        self.decode_chunk, self.tile = decode_chunk, tile

    @classmethod
    def from_pixel_pipeline(cls, pipe: VideoPipeline, autoencoder: Autoencoder, **kwargs) -> "LatentVideoPipeline":
        """`pipe`'s backbone (and guide) read as a model of `autoencoder`'s latents."""
        return cls(pipe.model, pipe.diffusion, pipe.video, autoencoder, config=pipe.config, name=pipe.name,
                   guide=pipe.guide, **kwargs)

    @classmethod
    def from_pretrained(cls, folder: str | Path, name: str = "", device: str | torch.device = "cpu",
                        **kwargs) -> "LatentVideoPipeline":
        config = read_config(folder)
        latent = config.get("latent")
        if not isinstance(latent, dict):
            raise VidiffError(f"{Path(folder) / 'config.json'} has no 'latent' section; it is a pixel-space model")
        autoencoder = find_checkpoint_autoencoder(latent, folder, device)
        pipe = VideoPipeline.from_pretrained(folder, name)
        return cls.from_pixel_pipeline(pipe, autoencoder, scaling_factor=latent.get("scaling_factor"),
                                       shift_factor=latent.get("shift_factor"), **kwargs)

    # --- the two hooks of VideoPipeline.__call__ --------------------------------------------------------

    def sample_shape(self, frames: int, size: int) -> tuple[int, int, int, int]:
        """(C, f, h, w) of the latents of `frames`×`size`² videos (a size the autoencoder cannot take is an error
        naming the sizes that work)."""
        return self.autoencoder.latent_shape(frames, size, size)

    def to_pixels(self, z: Tensor) -> Tensor:
        """Scaled latents (B, C, f, h, w) → videos (B, 3, F, H, W) in [−1, 1], decoded in chunks and tiles."""
        return self.decode(z)

    # --- latents <-> pixels ------------------------------------------------------------------------------

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """Scaled latents → videos in [−1, 1]: z/scale + shift, decoded `decode_chunk` frames
        and `tile` pixels at a time."""
        ae = self.autoencoder
        device = next(ae.parameters(), torch.empty(0)).device
        chunk = effective_chunk(ae, z.shape[2], self.decode_chunk)
        x = ae.decode((z / self.scaling_factor + self.shift_factor).to(device), chunk=chunk, tile=self.tile or None)
        return x.clamp(-1, 1)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Videos (B, 3, F, H, W) in [−1, 1] → scaled posterior means (B, C, f, h, w)."""
        ae = self.autoencoder
        device = next(ae.parameters(), torch.empty(0)).device
        mean = ae.encode(x.to(device), chunk=self.decode_chunk or None, tile=self.tile or None).mode()
        return (mean - self.shift_factor) * self.scaling_factor

    def make_cond(self, num: int, frames: int, size: int, *, prompt: str | None = None,
                  class_id: int | None = None, image=None) -> Cond | None:
        """The Cond for a request, in latent space: a first frame is encoded (a one-frame clip) to its latent."""
        from ..conditioning.tasks import request_cond

        c, f, h, w = self.sample_shape(frames, size)
        latent_image = None
        if image is not None:
            img = load_image(image, size)  # (3, H, W)
            latent_image = self.encode(img[None, :, None])[0, :, 0]  # (C, h, w)
        encoder = None
        if "text" in self.condition:
            from ..conditioning.text import get_text_encoder

            encoder = get_text_encoder()
        return request_cond(self.condition, num, frames=f, prompt=prompt, class_id=class_id, image=latent_image,
                            text_encoder=encoder, num_classes=getattr(self.model.config, "num_classes", 0))

    def latent_view(self) -> VideoPipeline:
        """The same backbone as a pipeline over latents (`video` in latent units): what window-based
        samplers (`sample_long`) run on; decode their output with `decode`."""
        c, f, h, w = self.sample_shape(self.video.frames, self.video.size)
        if h != w:
            raise VidiffError("latent pipelines need square latents")
        return VideoPipeline(self.model, self.diffusion, replace(self.video, channels=c, frames=f, size=h),
                             self.config, self.name, self.guide)

    def sample_long(self, num: int, frames: int, **kwargs) -> Tensor:
        """A long video by temporal windows (MultiDiffusion, `pipelines.long.sample_long`) in latent space,
        decoded in chunks: (num, 3, frames, H, W) in [−1, 1]."""
        from .long import sample_long

        for key in ("size", "image"):
            if kwargs.get(key) is not None:
                raise VidiffError(f"{key} is not supported for long videos of a latent model")
        kwargs.pop("size", None)
        c, f, h, w = self.sample_shape(frames, self.video.size)
        window = kwargs.pop("window", None)
        overlap = kwargs.pop("overlap", None)
        if window is not None:
            window = self.autoencoder.latent_frames(window)
        if overlap is not None:
            overlap = overlap // self.autoencoder.temporal_factor
        z = sample_long(self.latent_view(), num, frames=f, window=window, overlap=overlap, clamp=False, **kwargs)
        return self.decode(z)


def is_latent_checkpoint(folder: str | Path) -> bool:
    """Whether the checkpoint folder's config.json has a `latent` section."""
    try:
        return isinstance(read_config(folder).get("latent"), dict)
    except VidiffError:
        return False


__all__ = ["DEFAULT_DECODE_CHUNK", "DEFAULT_TILE", "LatentVideoPipeline", "effective_chunk",
           "find_checkpoint_autoencoder",
           "is_latent_checkpoint"]
