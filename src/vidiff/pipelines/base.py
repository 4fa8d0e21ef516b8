"""The sampling pipeline: a trained backbone + its diffusion config -> uint8 videos.

A pipeline is the only layer that touches files: `VideoPipeline.from_pretrained(folder)` reads a
checkpoint folder (model.safetensors + config.json, the layout `vidiff train` writes).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from ..checkpoint import read_config
from ..conditioning import Cond
from ..conditioning.image_embed import embeds_first_frame, frame_embedding_cond
from ..config import config_from_dict, config_to_dict
from ..diffusion.config import DiffusionConfig, VideoFormat
from ..limits import check_positive, check_sampling
from ..utils import VidiffError


def check_checkpoint_config(config: dict, folder: str | Path) -> None:
    """Refuse a checkpoint's config.json whose model, diffusion or video section is missing or holds a key
    of the wrong type or range, in one line (what `vidiff info` checks before printing it)."""
    from ..models import model_config_from_dict

    for key in ("model", "diffusion", "video"):
        if not isinstance(config.get(key), dict):
            raise VidiffError(f"{Path(folder) / 'config.json'} has no '{key}' section; is it a vidiff checkpoint?")
    model_config_from_dict(config["model"])
    config_from_dict(DiffusionConfig, config["diffusion"], where=f"{Path(folder) / 'config.json'}: diffusion")
    config_from_dict(VideoFormat, config["video"], where=f"{Path(folder) / 'config.json'}: video")


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def is_self_conditioned(model) -> bool:
    """Whether a backbone takes its previous x̂₀ as input (built with `self_cond=True`, Chen et al. 2022)."""
    return bool(getattr(getattr(model, "config", None), "self_cond", False))


def initial_noise(diffusion: DiffusionConfig, shape: tuple[int, ...], seed: int,
                  noise: Tensor | None = None, generators: list[torch.Generator] | None = None) -> Tensor:
    """A sampler's starting noise (B, C, F, H, W): sample i drawn from `seed + i` alone (from
    `generators[i]` when given, which then go on to draw the sampler's fresh noise; or the given
    i.i.d. `noise`), then correlated across frames by the model's noise prior."""
    if noise is None:
        from ..diffusion import sample_generators, stacked_randn

        gens = sample_generators(seed, shape[0]) if generators is None else generators
        noise = stacked_randn(torch.empty(shape), gens)
    return diffusion.build_noise()(noise)


@torch.no_grad()
def sample_videos(
    model: torch.nn.Module,
    diffusion: DiffusionConfig,
    shape: tuple[int, ...],
    *,
    steps: int = 25,
    sampler: str = "ddim",
    seed: int = 0,
    cond: Cond | None = None,
    denoiser_wrapper: Callable | None = None,
    callback: Callable | None = None,
    clamp: bool = True,
    **sampler_kwargs,
) -> Tensor:
    """Draw videos of `shape` (B, C, F, H, W) in [-1, 1] (`clamp=False`: as sampled, e.g. latents).

    Sample i's initial noise and the fresh noise of stochastic samplers come from its own generator
    seeded with `seed + i`, so a video does not change with the batch it is drawn in.
    """
    from ..diffusion import Denoiser, SelfConditioning, sample, sample_generators

    check_positive(steps, "--steps")
    schedule = diffusion.build_schedule()
    generators = sample_generators(seed, shape[0])  # sample i: initial and fresh noise from seed + i alone
    noise = initial_noise(diffusion, shape, seed, generators=generators)
    sampler_kwargs.setdefault("noise_prior", diffusion.build_noise())  # the fresh noise of stochastic steps
    denoiser = Denoiser(model, parameterization=diffusion.parameterization)
    if denoiser_wrapper is not None:
        denoiser = denoiser_wrapper(denoiser)
    if is_self_conditioned(model):  # outermost: the (guided) x̂₀ of each step is the next step's input
        denoiser = SelfConditioning(denoiser)
    was_training = model.training
    model.eval()
    try:
        x0 = sample(denoiser, noise, schedule, steps, sampler=sampler, cond=cond,
                    callback=callback, generator=generators, **sampler_kwargs)
    finally:
        model.train(was_training)
    return x0.clamp(-1, 1) if clamp else x0


class VideoPipeline:
    """Unconditional / conditional video generation from a trained checkpoint."""

    def __init__(self, model: torch.nn.Module, diffusion: DiffusionConfig, video: VideoFormat,
                 config: dict | None = None, name: str = "", guide: torch.nn.Module | None = None):
        self.model = model.eval()
        self.diffusion = diffusion
        self.video = video
        self.config = config or {}
        self.name = name
        self.guide = guide.eval() if guide is not None else None  # the weaker model of autoguidance

    @property
    def autoguidance(self) -> float:
        """The default autoguidance weight: the checkpoint's `autoguidance.w` when it ships a guide, else 0."""
        return float(self.config.get("autoguidance", {}).get("w", 0.0)) if self.guide is not None else 0.0

    def autoguidance_spec(self, w: float | None = None) -> dict | None:
        """The `AutoGuidance` keywords for a constant weight `w`, or for the checkpoint's default when `w`
        is None (`w`, and `w_high_noise` below `logsnr_split` if set); None when guidance is off.
        No guide and a weight > 0 is a one-line error."""
        spec = {"w": float(self.autoguidance if w is None else w)}
        if w is None:  # the checkpoint's default, with its weight for the noisier steps if it has one
            spec.update({k: v for k, v in self.config.get("autoguidance", {}).items()
                         if k in ("w_high_noise", "logsnr_split")})
        if not spec["w"] and spec.get("w_high_noise") in (None, 0):
            return None
        if self.guide is None:
            raise VidiffError(f"model {self.name!r} ships no guide model for autoguidance; use --autoguidance 0 "
                              "or export one with `vidiff export RUN DEST --guide SNAPSHOT`")
        return spec

    def autoguided(self, denoiser: Callable, w: float | None = None) -> Callable:
        """`denoiser` guided by this checkpoint's guide model as `autoguidance_spec(w)` says; the
        denoiser itself when guidance is off."""
        return self.with_autoguidance(denoiser, self.autoguidance_spec(w))

    def with_autoguidance(self, denoiser: Callable, spec: dict | None) -> Callable:
        """`denoiser` wrapped in `AutoGuidance` with the guide model and a resolved `spec` (None: unwrapped)."""
        from ..diffusion import AutoGuidance, Denoiser

        if spec is None:
            return denoiser
        return AutoGuidance(denoiser, Denoiser(self.guide, parameterization=self.diffusion.parameterization), **spec)

    @classmethod
    def from_pretrained(cls, folder: str | Path, name: str = "") -> "VideoPipeline":
        from ..models import load_model

        folder = Path(folder)
        config = read_config(folder)
        for key in ("model", "diffusion", "video"):
            if key not in config:
                raise VidiffError(f"{folder}/config.json has no '{key}' section; is it a vidiff checkpoint?")
        model = load_model(folder)
        guide = None
        if config.get("autoguidance"):  # {"guide": sub-folder with the weaker checkpoint, "w": default weight}
            sub = folder / str(config["autoguidance"].get("guide", "guide"))
            if not (sub / "config.json").is_file():
                raise VidiffError(f"{folder}/config.json names an autoguidance guide in {sub}, but it has no "
                                  "checkpoint; restore that folder or delete the 'autoguidance' section")
            guide = load_model(sub)
        return cls(model, config_from_dict(DiffusionConfig, config["diffusion"]),
                   config_from_dict(VideoFormat, config["video"]), config, name or folder.name, guide=guide)

    @property
    def condition(self) -> tuple[str, ...]:
        """The conditions the model was trained with ("class", "text", "first_frame"); () = unconditional."""
        from ..conditioning.tasks import parse_condition

        return parse_condition(self.config.get("conditioning", {}).get("condition"))

    def make_cond(self, num: int, frames: int, size: int, *, prompt: str | None = None,
                  class_id: int | None = None, image=None) -> Cond | None:
        """The Cond for a request; `image` is a path, a uint8 (H, W, 3) array or a (3, H, W) tensor in [-1, 1]."""
        from ..conditioning.tasks import request_cond

        kinds = self.condition
        encoder = None
        if "text" in kinds:
            from ..conditioning.text import get_text_encoder

            encoder = get_text_encoder()
        img = None if image is None else load_image(image, size)
        return request_cond(kinds, num, frames=frames, prompt=prompt, class_id=class_id, image=img,
                            text_encoder=encoder, num_classes=getattr(self.model.config, "num_classes", 0),
                            image_embed=embeds_first_frame(kinds, self.model.config))

    def to_config(self) -> dict:
        return {**self.config, "diffusion": config_to_dict(self.diffusion), "video": config_to_dict(self.video)}

    def sample_shape(self, frames: int, size: int) -> tuple[int, int, int, int]:
        """(C, F, H, W) of what the backbone samples for videos of `frames`×`size`² (latent pipelines: latents)."""
        return self.video.channels, frames, size, size

    def to_pixels(self, x: Tensor) -> Tensor:
        """Videos in [−1, 1] from what the sampler returns (latent pipelines decode here)."""
        return x.clamp(-1, 1)

    def __call__(self, num: int = 1, *, frames: int | None = None, size: int | None = None,
                 steps: int = 25, sampler: str = "ddim", seed: int = 0, batch_size: int = 8,
                 cond: Cond | None = None, prompt: str | None = None, class_id: int | None = None,
                 image=None, guidance: float = 0.0, guidance_rescale: float = 0.0,
                 autoguidance: float | None = None, progress: bool = False, output_type: str = "uint8",
                 **kwargs) -> Tensor:
        """Generate `num` videos as a uint8 tensor (N, F, H, W, 3) (`output_type="latent"`: the samples as the
        sampler returns them, (N, C, f, h, w) unclamped — a latent pipeline's scaled latents, not decoded).

        `prompt` / `class_id` / `image` (first frame) condition a model trained with them; `guidance`
        is the classifier-free guidance weight w (x̂ = x̂_c + w (x̂_c − x̂_∅); 0 = plain conditional).
        `autoguidance` is the weight of guiding with the checkpoint's weaker guide model (None: the
        checkpoint's default; 0: off), applied inside CFG."""
        from ..conditioning import null_like
        from ..diffusion import ClassifierFreeGuidance
        from ..data.io import to_uint8

        if output_type not in ("uint8", "latent"):
            raise VidiffError(f"output_type must be 'uint8' or 'latent'; got {output_type!r}")
        ag = self.autoguidance_spec(autoguidance)  # resolved once; no guide fails here, before any work

        frames = self.video.frames if frames is None else frames
        size = self.video.size if size is None else size
        for value, option in ((num, "--num"), (frames, "--frames"), (size, "--size"), (steps, "--steps"),
                              (batch_size, "--batch-size")):
            check_positive(value, option)
        c, f, h, w = self.sample_shape(frames, size)
        if hasattr(self.model, "check_size"):
            self.model.check_size(f, h, w)
        check_sampling(getattr(self.model, "config", None), num=num, batch=batch_size, frames=f, height=h,
                       width=w, steps=steps, channels=c)
        given = cond is not None or prompt is not None or class_id is not None or image is not None
        if cond is None and (given or self.condition):
            cond = self.make_cond(num, frames, size, prompt=prompt, class_id=class_id, image=image)
            conditioning = self.config.get("conditioning") or {}
            if conditioning.get("micro") or conditioning.get("cond_noise_aug"):  # SVD-style: the trained defaults
                from ..conditioning.micro import request_svd_cond

                cond = request_svd_cond(cond, conditioning, num, channels=c, seed=seed)
        cond = frame_embedding_cond(cond, self.condition, getattr(self.model, "config", None), num)  # i2v: no frame
        if not given:
            guidance = 0.0  # nothing to guide towards: the model's null condition alone
        outer = kwargs.pop("denoiser_wrapper", None)  # the caller's own guidance (e.g. physics), outermost
        outs = []
        bar = _progress(num * steps, progress, f"sampling {num} video(s)")
        for start in range(0, num, batch_size):
            b = min(batch_size, num - start)
            shape = (b, c, f, h, w)
            cb = cond.map(lambda v: v[start:start + b]) if cond is not None else None

            def wrap(den, cb=cb):
                den = self.with_autoguidance(den, ag)
                if guidance and cb is not None:
                    den = ClassifierFreeGuidance(den, w=guidance, null_cond=null_like(cb), rescale=guidance_rescale)
                return outer(den) if outer is not None else den

            if ag or (guidance and cb is not None) or outer is not None:
                kwargs["denoiser_wrapper"] = wrap
            x = sample_videos(self.model, self.diffusion, shape, steps=steps, sampler=sampler,
                              seed=seed + start, cond=cb, clamp=False,
                              callback=(lambda info, b=b: bar.update(b)) if bar else None, **kwargs)
            outs.append(x if output_type == "latent" else torch.from_numpy(to_uint8(self.to_pixels(x))))
        if bar:
            bar.close()
        return torch.cat(outs)


def load_image(image, size: int | tuple[int, int]) -> Tensor:
    """A first frame as (3, H, W) in [-1, 1] (`size` = H = W, or (H, W)) from a path, a uint8 (H, W, 3) array
    or a tensor; other sizes are resized (bilinear, centre-cropped to the aspect ratio) with a notice on stderr."""
    import sys

    import numpy as np
    import torch.nn.functional as F

    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise VidiffError(f"image {path} not found; give a PNG/JPEG file for --image")
        try:
            from PIL import Image

            image = np.asarray(Image.open(path).convert("RGB"))
        except Exception as e:  # noqa: BLE001 - any decoder failure is a bad input
            raise VidiffError(f"cannot read image {path} ({type(e).__name__}); give a PNG or JPEG file") from None
    if isinstance(image, np.ndarray) or (torch.is_tensor(image) and image.dtype == torch.uint8):
        x = torch.as_tensor(np.array(image)).float().div(127.5).sub(1)  # uint8 -> [-1, 1]
    else:
        x = torch.as_tensor(image).float()
    if x.dim() == 3 and x.shape[-1] == 3 and x.shape[0] != 3:
        x = x.permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
    if x.dim() != 3 or x.shape[0] != 3:
        raise VidiffError(f"expected an RGB image, got shape {tuple(x.shape)}")
    h, w = x.shape[1:]
    out_h, out_w = (size, size) if isinstance(size, int) else size
    if (h, w) != (out_h, out_w):
        print(f"note: resizing the {w}x{h} image to the model's {out_w}x{out_h}", file=sys.stderr)
        ch, cw = (h, min(w, round(h * out_w / out_h))) if w * out_h >= h * out_w else (round(w * out_h / out_w), w)
        x = x[:, (h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw]
        x = F.interpolate(x[None], size=(out_h, out_w), mode="bilinear", antialias=True, align_corners=False)[0]
    return x.clamp(-1, 1)


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img·step", leave=False)
