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
(`decode_chunk`, `tile`; a decoder with temporal convolutions streams its chunks, each frame decoded once),
so its memory stays flat in length and resolution. Latents z are mapped to the diffusion space as
(z − shift)·scale (LDM §4.3.2) and back before decoding.

Long videos by windows (`sample_long`), extension and interpolation (`extend`, `interpolate`: the given pixel
video is encoded, the window-by-window work runs on `latent_view`, all latents are decoded together and the
given frames put back as given) and progressive distillation (`clip_dataset`: its training clips as latents;
`latent_section`: the students record the same autoencoder) work on latent models as on pixel ones; with the
identity autoencoder each gives the pixel pipeline's result bit for bit.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from ..bundled import available, find_autoencoder
from ..checkpoint import read_config
from ..conditioning import Cond
from ..conditioning.image_embed import embeds_first_frame
from ..data.dataset import VideoDataset
from ..data.latents import INDEX_NAME, LatentDataset
from ..limits import check_positive
from ..models.autoencoders import load_autoencoder, vae_fingerprint, weights_file
from ..models.vae import Autoencoder
from ..utils import VidiffError
from .base import VideoFormat, VideoPipeline, load_image

# decoding defaults: 8 latent frames at a time (with the decoder's receptive field as context), spatial
# tiles of 64 latent pixels (512 pixels at factor 8) — smaller latents are decoded in one tile, exactly
DEFAULT_DECODE_CHUNK = 8
DEFAULT_TILE = 64


def effective_chunk(autoencoder: Autoencoder, latent_frames: int, chunk: int | None) -> int | None:
    """`chunk`, or None (decode in one piece: the same result, no more memory) when the clip fits one chunk or,
    for a decoder that cannot stream (`Autoencoder.stream_fn`), when one window with its context on both sides —
    the decoder's receptive field, or `chunk` frames where that is unbounded — covers the clip."""
    if not chunk:
        return None
    if autoencoder.stream_fn(chunk) is not None:  # streamed: every frame decoded once, whatever the length
        return chunk if latent_frames > chunk else None
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
    for path in available("autoencoder").values():  # moved or renamed: the same weights, another name
        try:
            if vae_fingerprint(path) == want:
                return load_autoencoder(path, device)
        except VidiffError:
            continue
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
                            text_encoder=encoder, num_classes=getattr(self.model.config, "num_classes", 0),
                            image_embed=embeds_first_frame(self.condition, self.model.config))

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

    # --- extension and interpolation (VDM sec. 3.1) in latent space --------------------------------------

    def latent_count(self, frames: int) -> int:
        """Latent frames that hold at least `frames` pixel frames (1 + ⌈(frames − 1)/k⌉ at temporal factor k)."""
        return 1 + -(-(frames - 1) // self.autoencoder.temporal_factor)

    def extend(self, video, frames_total: int, *, context: int | None = None, window: int | None = None,
               callback=None, **options) -> Tensor:
        """`pipelines.extend.extend` for a latent model: the video (pixels) is encoded to its posterior mean,
        the latents are extended window by window (`context` and `window` in pixel frames, as latent frames),
        all latents are decoded together (the temporal decoder sees the seam) and the given frames come first,
        as given: (B, 3, frames_total, H, W) in [−1, 1] (no batch dimension if `video` had none)."""
        from .extend import extend_frames, is_batched_video, prepare_video

        self.autoguidance_spec(options.get("autoguidance"))  # no guide -> one-line error before any work
        check_positive(frames_total, "--frames")
        check_positive(options.get("steps", 25), "--steps")
        x = prepare_video(video, self.video.size)  # (B, 3, F0, H, W) pixels
        F0 = x.shape[2]
        if frames_total <= F0:
            raise VidiffError(f"the video already has {F0} frames; ask for more with --frames (got {frames_total})")
        z = self.encode(self._fits(x, "extend"))  # (B, C, f0, h, w)
        tf = self.autoencoder.temporal_factor
        if callback is not None:  # report pixel frames
            user_callback = callback

            def callback(info):
                user_callback({**info, "frames": min(frames_total, self.autoencoder.pixel_frames(info["frames"]))})
        zy = extend_frames(self.latent_view(), z, self.latent_count(frames_total),
                           context=None if context is None else -(-context // tf),
                           window=None if window is None else self.autoencoder.latent_frames(window),
                           callback=callback, clamp=self.autoencoder.bounded, **options)  # (B, C, f, h, w)
        y = self.decode(zy)[:, :, :frames_total]  # (B, 3, frames_total, H, W)
        y[:, :, :F0] = x  # the given frames exactly
        return y if is_batched_video(video) else y[0]

    def interpolate(self, video, factor: int = 2, *, window: int | None = None, **options) -> Tensor:
        """`pipelines.extend.interpolate` for a latent model: the given frames are encoded, the latents between
        them generated, all latents decoded together, and the given frames put back as given:
        (B, 3, (N − 1)·factor + 1, H, W) in [−1, 1] (no batch dimension if `video` had none). An autoencoder
        that compresses time cannot hold single given frames and is refused."""
        from .extend import interpolate_frames, is_batched_video, prepare_video

        tf = self.autoencoder.temporal_factor
        if tf > 1:
            raise VidiffError(f"interpolation needs one latent per frame, but {self.name or 'this model'}'s "
                              f"autoencoder compresses time {tf}x; use a latent model whose autoencoder keeps "
                              "every frame (no --temporal-compression)")
        self.autoguidance_spec(options.get("autoguidance"))  # no guide -> one-line error before any work
        x = prepare_video(video, self.video.size)  # (B, 3, N, H, W) pixels
        z = self.encode(self._fits(x, "interpolate"))  # (B, C, N, h, w)
        zy = interpolate_frames(self.latent_view(), z, factor, window=window, clamp=self.autoencoder.bounded,
                                **options)  # (B, C, F_out, h, w)
        y = self.decode(zy)  # (B, 3, F_out, H, W)
        y[:, :, ::factor] = x  # the given frames exactly
        return y if is_batched_video(video) else y[0]

    # --- training clips of a model derived from this one (distillation) ----------------------------------

    def clip_dataset(self, data: str | Path, *, stride: int = 1, cache: bool = True, seed: int = 0,
                     progress: bool = True) -> tuple[torch.utils.data.Dataset, Callable[[Tensor], Tensor]]:
        """Training clips in this model's latent space and the map from a batch's "video" to x₀: a latent cache
        of its own autoencoder (`vidiff vae encode`; its scaled posterior means as they are), or a folder of
        videos at the model's pixel format, each batch encoded to its scaled posterior mean (`encode`)."""
        c, f, h, w = self.sample_shape(self.video.frames, self.video.size)
        if (Path(data) / INDEX_NAME).is_file():
            ds = LatentDataset(data, seed=seed, scaling_factor=self.scaling_factor)
            ds.check_autoencoder(self.autoencoder.fingerprint or "")
            if ds.latent_shape != (c, f, h, w):
                raise VidiffError(f"latent cache {data} holds latents {ds.latent_shape}; {self.name or 'the model'} "
                                  f"samples {(c, f, h, w)} — encode {self.video.frames} frames of "
                                  f"{self.video.size}x{self.video.size}")
            return ds, lambda z: z
        ds = VideoDataset(str(data), frames=self.video.frames, size=self.video.size, stride=stride,
                          cache="auto" if cache else False, seed=seed, progress=progress)
        return ds, self.encode

    def latent_section(self) -> dict:
        """The checkpoint's `latent` section pointing at the folder its autoencoder was found in, for a model
        derived from this one (a distilled student) to find the same autoencoder."""
        section = dict(self.config.get("latent") or {})
        if section and self.autoencoder.source:
            folder = Path(self.autoencoder.source).resolve()
            section.update(vae_path=str(folder), weights=str(weights_file(folder).resolve()))
        return section

    def _fits(self, x: Tensor, what: str) -> Tensor:
        """x, or a one-line error when its frame count cannot be encoded (a causal autoencoder needs 1 + kn)."""
        try:
            self.autoencoder.check_video_shape(*x.shape[2:])
        except VidiffError as e:
            raise VidiffError(f"cannot {what} the video: {e}") from None
        return x


def is_latent_checkpoint(folder: str | Path) -> bool:
    """Whether the checkpoint folder's config.json has a `latent` section."""
    try:
        return isinstance(read_config(folder).get("latent"), dict)
    except VidiffError:
        return False


__all__ = ["DEFAULT_DECODE_CHUNK", "DEFAULT_TILE", "LatentVideoPipeline", "effective_chunk",
           "find_checkpoint_autoencoder",
           "is_latent_checkpoint"]
