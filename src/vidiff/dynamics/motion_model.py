"""Motion prediction by latent diffusion (GID sec. 4): image -> spectral volume.

Pieces, following the paper:
  * ``SpectralVAE``: a small conv VAE for one *frequency slice* (4 channels, normalised with
    ``FrequencyNormalizer``) -> a 4-channel latent at half resolution.
  * the denoiser is the project's ``UNet3D`` with the K frequency slices on its frame axis:
    ``temporal="none"`` is a 2D U-Net applied to each slice independently (stage 1), with the
    image (downscaled to the latent size) and a sinusoidal *frequency embedding* of f concatenated
    as input channels; ``temporal="attention"`` adds attention layers across the K slices,
    interleaved with the 2D layers, which are copied from stage 1 and frozen (stage 2,
    frequency-coordinated denoising). The attention output layers start at zero, so the
    coordinated model starts equal to the independent one.
  * ablations (``mode``): "independent" (stage 1 only) and "volume" (one 4K-channel latent volume,
    a single frame, no frequency axis).
  * sampling: any vidiff sampler, classifier-free guidance on the image (trained with image
    dropout), and the seamless-loop self-guidance (GID eq. 5) through ``GradientGuidance``.
"""
from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import Callable, Iterable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..conditioning.cond import Cond
from ..diffusion.loss import diffusion_loss
from ..training import LoopConfig, OptimizerSpec, StepBatches, Task, Trainer
from ..utils import VidiffError
from .normalize import FrequencyNormalizer
from .spectral import canonical_phase, rotate_phases

Mode = Literal["coordinated", "independent", "volume"]


@dataclass(frozen=True)
class MotionModelConfig:
    """Sizes of the motion model; ``size`` is the (square) image/volume resolution, divisible by 8."""

    k: int = 16
    size: int = 64
    period: int = 150
    mode: Mode = "coordinated"
    latent_channels: int = 4
    vae_channels: int = 32
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2)
    freq_embed_dim: int = 8  # channels of the "sinusoidal" frequency embedding
    # "onehot": K indicator maps instead, so "is this the slice of my hue's frequency" is one linear
    # read-out (with sinusoids, neighbouring f differ by a fraction of a radian in most channels)
    freq_embedding: Literal["sinusoidal", "onehot"] = "sinusoidal"
    # How the photo reaches the denoiser: "area" = RGB area-downsampled to the latent size (thin parts
    # lose their colour there); "conv" = that plus `image_channels` features of a small conv encoder that
    # sees the photo at full resolution, trained with the denoiser in stage 1 and frozen in stage 2.
    image_encoder: Literal["area", "conv"] = "area"
    image_channels: int = 16
    head_dim: int = 32
    norm_groups: int = 8
    p_uncond: float = 0.1  # image dropout for classifier-free guidance
    # Phase of the training target: "data" = the spectral volume as extracted (GID); "canonical" = each
    # frequency slice rotated to a real, positive mean coefficient (`spectral.canonical_phase`), so the
    # denoiser's mean prediction says which frequency a part moves at; sampling then draws each slice's
    # phase uniformly (`sample_motion(random_phase=True)`).
    phase: Literal["data", "canonical"] = "data"
    # Noise schedule of training and sampling: the cosine log-SNR lowered by 2 log(schedule_shift)
    # (`ShiftedCosineSchedule`, Hoogeboom et al. 2023, eq. 7); 1.0 is the plain cosine schedule. A shift > 1
    # spends more of training at high noise, where the denoiser must read the motion from the photo alone.
    schedule_shift: float = 1.0


class SpectralVAE(nn.Module):
    """Conv VAE for one normalised frequency slice: (B, 4, H, W) <-> latent (B, C_z, H/2, W/2)."""

    def __init__(self, latent_channels: int = 4, channels: int = 32):
        super().__init__()
        c = channels
        self.enc = nn.Sequential(nn.Conv2d(4, c, 3, 1, 1), nn.SiLU(), nn.Conv2d(c, c, 3, 2, 1), nn.SiLU(),
                                 nn.Conv2d(c, c, 3, 1, 1), nn.SiLU(), nn.Conv2d(c, 2 * latent_channels, 3, 1, 1))
        self.dec = nn.Sequential(nn.Conv2d(latent_channels, c, 3, 1, 1), nn.SiLU(), nn.Upsample(scale_factor=2.0),
                                 nn.Conv2d(c, c, 3, 1, 1), nn.SiLU(), nn.Conv2d(c, c, 3, 1, 1), nn.SiLU(),
                                 nn.Conv2d(c, 4, 3, 1, 1))
        self.register_buffer("latent_scale", torch.ones(()))  # 1 / std of latents, set after VAE training

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 4, H, W) -> mean, log-variance (B, C_z, H/2, W/2)."""
        mean, logvar = self.enc(x).chunk(2, dim=1)
        return mean, logvar.clamp(-20, 10)

    def decode(self, z: Tensor) -> Tensor:
        """(B, C_z, H/2, W/2) -> (B, 4, H, W)."""
        return self.dec(z)

    def loss(self, x: Tensor, beta: float = 1e-4, generator: torch.Generator | None = None) -> Tensor:
        """ELBO-style loss: squared-error reconstruction of a reparameterised sample + β·KL(q(z|x) || N(0, I)).

        Squared error, not L1: with sparse motion (most pixels still) the L1 optimum is the all-zero slice.
        """
        mean, logvar = self.encode(x)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + torch.exp(0.5 * logvar) * eps
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
        return (self.decode(z) - x).pow(2).mean() + beta * kl


def frequency_embedding(k: int, dim: int, size: tuple[int, int], kind: str = "sinusoidal") -> Tensor:
    """Embedding of the frequency index as constant maps: sinusoidal (dim, K, h, w) or one-hot (K, K, h, w)."""
    if kind == "onehot":
        return torch.eye(k)[:, :, None, None].expand(k, k, *size).contiguous()
    if kind != "sinusoidal":
        raise VidiffError(f"freq_embedding must be 'sinusoidal' or 'onehot', got {kind!r}")
    f = torch.arange(k, dtype=torch.float32)
    scales = torch.exp(-math.log(100.0) * torch.arange(dim // 2, dtype=torch.float32) / max(1, dim // 2))
    ang = f[:, None] * scales[None] * 0.5  # (K, dim/2)
    emb = torch.cat([torch.sin(ang), torch.cos(ang)], dim=1).t()  # (dim, K)
    return emb[:, :, None, None].expand(dim, k, *size).contiguous()


class ImageEncoder(nn.Module):
    """Photo (B, 3, H, W) -> features (B, C, H/2, W/2): 3×3 convs at full resolution, then a strided one."""

    def __init__(self, channels: int, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1), nn.SiLU(), nn.Conv2d(width, width, 3, 1, 1), nn.SiLU(),
                                 nn.Conv2d(width, width, 3, 2, 1), nn.SiLU(), nn.Conv2d(width, channels, 1))

    def forward(self, image: Tensor) -> Tensor:
        return self.net(image)


class MotionModel(nn.Module):
    """VAE + normaliser + UNet3D backbone; ``backbone_fn(z, t, cond)`` is what Denoiser/diffusion_loss call."""

    def __init__(self, cfg: MotionModelConfig, normalizer: FrequencyNormalizer | None = None):
        super().__init__()
        from ..models.unet3d import UNet3D, UNet3DConfig

        if cfg.size % 8:
            raise VidiffError(f"motion model size must be a multiple of 8, got {cfg.size}")
        if cfg.image_encoder not in ("area", "conv"):
            raise VidiffError(f"image_encoder must be 'area' or 'conv', got {cfg.image_encoder!r}")
        if cfg.phase not in ("data", "canonical"):
            raise VidiffError(f"phase must be 'data' or 'canonical', got {cfg.phase!r}")
        if not cfg.schedule_shift > 0:
            raise VidiffError(f"schedule_shift must be > 0 (1.0 = cosine), got {cfg.schedule_shift!r}")
        self.cfg = cfg
        self.normalizer = normalizer or FrequencyNormalizer(tuple([1.0] * cfg.k))
        self.vae = SpectralVAE(cfg.latent_channels, cfg.vae_channels)
        self.latent_size = cfg.size // 2
        c = cfg.latent_channels
        vol = cfg.mode == "volume"
        self.register_buffer("freq_emb", frequency_embedding(cfg.k, cfg.freq_embed_dim, (self.latent_size,) * 2,
                                                             cfg.freq_embedding), persistent=False)
        self.image_encoder = ImageEncoder(cfg.image_channels, cfg.vae_channels) if cfg.image_encoder == "conv" else None
        img_ch = 3 + (cfg.image_channels if self.image_encoder is not None else 0)
        self.backbone = UNet3D(UNet3DConfig(
            in_channels=c * cfg.k if vol else c, out_channels=c * cfg.k if vol else c,
            cond_channels=img_ch + (0 if vol else self.freq_emb.shape[0]), base_channels=cfg.base_channels,
            channel_mults=cfg.channel_mults, attention_levels=(), mid_attention=False, head_dim=cfg.head_dim,
            temporal="attention" if cfg.mode == "coordinated" else "none", norm_groups=cfg.norm_groups))

    def schedule(self):
        """The noise schedule the model is trained and sampled with (cosine, shifted by ``cfg.schedule_shift``)."""
        from ..diffusion.schedule import get_schedule

        shift = self.cfg.schedule_shift
        return get_schedule("cosine") if shift == 1.0 else get_schedule("shifted_cosine", shift=shift)

    # ---- spectral volume <-> latent (B, C_z, K, h, w) (the frame axis is the frequency axis)
    def encode(self, sv: Tensor, sample: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """Spectral volumes (B, K, 4, H, W) -> scaled latents (B, C_z, K, h, w)
        (or (B, K·C_z, 1, h, w) for "volume")."""
        b, k = sv.shape[:2]
        y = self.normalizer.normalize(sv).flatten(0, 1)  # (B·K, 4, H, W)
        mean, logvar = self.vae.encode(y)
        z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=generator).to(mean) if sample else mean
        z = (z * self.vae.latent_scale).unflatten(0, (b, k)).transpose(1, 2)  # (B, C_z, K, h, w)
        return z.flatten(1, 2)[:, :, None] if self.cfg.mode == "volume" else z

    def decode(self, z: Tensor) -> Tensor:
        """Scaled latents -> spectral volumes (B, K, 4, H, W) in pixels (differentiable: loop guidance)."""
        if self.cfg.mode == "volume":
            z = z[:, :, 0].unflatten(1, (self.cfg.k, self.cfg.latent_channels)).transpose(1, 2)
        b, _, k = z.shape[:3]
        y = self.vae.decode(z.transpose(1, 2).flatten(0, 1) / self.vae.latent_scale)  # (B·K, 4, H, W)
        return self.normalizer.denormalize(y.unflatten(0, (b, k)))

    def condition(self, image: Tensor | None, batch: int) -> Cond:
        """Cond.concat = image at latent size (zeros = null image) [+ full-resolution image features]
        [+ frequency embedding], repeated over K."""
        cfg, s = self.cfg, self.latent_size
        if image is None:
            image = torch.zeros(batch, 3, cfg.size, cfg.size, device=self.freq_emb.device)
        im = F.interpolate(image, size=(s, s), mode="area")  # (B, 3, h, w)
        if self.image_encoder is not None:
            if image.shape[-2:] != (cfg.size, cfg.size):
                image = F.interpolate(image, size=(cfg.size, cfg.size), mode="bilinear", align_corners=False)
            im = torch.cat([im, self.image_encoder(image)], 1)  # (B, 3 + C_img, h, w)
        if cfg.mode == "volume":
            return Cond(concat=im[:, :, None])  # (B, 3, 1, h, w)
        emb = self.freq_emb.to(im)[None].expand(im.shape[0], -1, -1, -1, -1)  # (B, E, K, h, w)
        return Cond(concat=torch.cat([im[:, :, None].expand(-1, -1, cfg.k, -1, -1), emb], 1))

    def backbone_fn(self, z: Tensor, t: Tensor, cond: Cond | None = None) -> Tensor:
        """(z_t, t, cond) -> v̂ of the latent (the UNet3D over frequency slices)."""
        return self.backbone(z, t, cond)


def coordinated_from_independent(model: MotionModel) -> MotionModel:
    """Stage 2: a "coordinated" model whose 2D layers (and VAE, normaliser) are copied from the
    independent model and frozen; only the new cross-frequency attention layers are trainable."""
    if model.cfg.mode != "independent":
        raise VidiffError(f"stage 2 starts from an 'independent' model, got mode={model.cfg.mode!r}")
    import dataclasses

    new = MotionModel(dataclasses.replace(model.cfg, mode="coordinated"), model.normalizer)
    new.vae.load_state_dict(model.vae.state_dict())
    missing, unexpected = new.backbone.load_state_dict(model.backbone.state_dict(), strict=False)
    if unexpected or any(".temporal." not in k for k in missing):
        raise VidiffError("independent and coordinated backbones do not share their 2D layers")
    if model.image_encoder is not None:
        new.image_encoder.load_state_dict(model.image_encoder.state_dict())
    for name, p in new.named_parameters():
        p.requires_grad_(name.startswith("backbone.") and ".temporal." in name)
    return new


class _LatentDiffusionTask(Task):
    """v-prediction denoising loss on the latents of {"image", "spectral_volume"} batches, the image
    dropped (zeroed) at the model's `p_uncond` for classifier-free guidance."""

    def __init__(self, model: MotionModel, schedule):
        self.model, self.schedule = model, schedule

    def setup(self, trainer: Trainer) -> None:
        self.model.vae.eval()

    def losses(self, trainer: Trainer, batch: dict, step: int, generator: torch.Generator) -> dict:
        model = self.model
        with torch.no_grad():
            sv = batch["spectral_volume"].to(trainer.device)  # (B, K, 4, H, W)
            z0 = model.encode(canonical_phase(sv) if model.cfg.phase == "canonical" else sv)
        drop = torch.rand(z0.shape[0], generator=generator) < model.cfg.p_uncond
        image = batch["image"].to(trainer.device) * (~drop).float().to(trainer.device).view(-1, 1, 1, 1)
        loss = diffusion_loss(model.backbone_fn, z0, self.schedule, parameterization="v",
                              cond=model.condition(image, z0.shape[0]), generator=generator)
        return {"denoiser": loss}


class _SliceVAETask(Task):
    """The slice VAE's loss on normalised slices of (B, K, 4, H, W) volumes; keeps the last 8 batches'
    first volumes to set the latent scale from."""

    def __init__(self, model: MotionModel):
        self.model, self.seen = model, collections.deque(maxlen=8)

    def losses(self, trainer: Trainer, batch: Tensor | dict, step: int, generator: torch.Generator) -> dict:
        sv = (batch["spectral_volume"] if isinstance(batch, dict) else batch).to(trainer.device)
        y = self.model.normalizer.normalize(sv).flatten(0, 1)  # (B·K, 4, H, W)
        self.seen.append(sv[:2])
        return {"vae": self.model.vae.loss(y, generator=generator)}


def _device_of(model: nn.Module) -> str:
    return "cuda" if next(model.parameters()).is_cuda else "cpu"


def _callback(callback: Callable[[int, float], None] | None, name: str):
    return None if callback is None else (lambda step, values: callback(step, values[name]))


def train_diffusion(model: MotionModel, batches: Iterable[dict] | StepBatches, steps: int, lr: float = 2e-4,
                    schedule=None, seed: int = 0, callback: Callable[[int, float], None] | None = None,
                    progress: bool = False) -> list[float]:
    """Train the latent denoiser (v-prediction) on {"image", "spectral_volume"} batches for `steps` steps
    with AdamW on the trainer core; trains the backbone and image-encoder parameters that require grad
    (all in stage 1, the cross-frequency attention in stage 2), the rest stays frozen. Returns the losses."""
    if steps == 0:
        return []
    task = _LatentDiffusionTask(model, schedule or model.schedule())
    trainer = Trainer({"motion": model}, {"denoiser": OptimizerSpec("motion", lr=lr)}, task,
                      config=LoopConfig(steps=steps, seed=seed, device=_device_of(model), progress=progress,
                                        desc="motion denoiser"),
                      trainable=lambda name, p: p.requires_grad and name.startswith(("motion.backbone.",
                                                                                     "motion.image_encoder.")),
                      callback=_callback(callback, "denoiser"))
    return trainer.fit(batches)["losses"]


def train_vae(model: MotionModel, volumes: Iterable[Tensor | dict] | StepBatches, steps: int, lr: float = 1e-3,
              seed: int = 0, callback: Callable[[int, float], None] | None = None,
              progress: bool = False) -> list[float]:
    """Train the slice VAE (Adam, on the trainer core) on normalised slices of (B, K, 4, H, W) batches (or
    of their "spectral_volume"); then set latent_scale = 1/std of the latents of the last batches seen."""
    if steps == 0:  # keep the VAE and its latent scale as they are
        return []
    task = _SliceVAETask(model)
    trainer = Trainer({"vae": model.vae}, {"vae": OptimizerSpec("vae", lr=lr, kind="adam")}, task,
                      config=LoopConfig(steps=steps, seed=seed, device=_device_of(model), progress=progress,
                                        desc="slice VAE"),
                      callback=_callback(callback, "vae"))
    losses = trainer.fit(volumes)["losses"]
    model.vae.eval()
    with torch.no_grad():
        model.vae.latent_scale.fill_(1.0)
        z = model.encode(torch.cat(list(task.seen)))
        model.vae.latent_scale.fill_(1.0 / float(z.std().clamp_min(1e-4)))
    return losses


@torch.no_grad()
def sample_motion(model: MotionModel, image: Tensor, steps: int = 25, *, cfg_scale: float = 0.0,
                  loop_weight: float = 0.0, loop_end_time: float | None = None, sampler: str = "ddim",
                  generator: torch.Generator | None = None, schedule=None,
                  random_phase: bool | None = None) -> Tensor:
    """Image (B, 3, H, W) in [-1, 1] -> spectral volumes (B, K, 4, H, W).

    ``cfg_scale`` w: classifier-free guidance on the image; ``loop_weight``: GID eq. 5 self-guidance
    on the decoded motion between t = 0 and ``loop_end_time`` (default: the period). ``random_phase``
    (default: on for models trained with ``phase="canonical"``) rotates each frequency slice by a
    uniform random phase drawn from ``generator`` (`spectral.rotate_phases`: amplitudes, modes and
    F_0 kept; a loop over the period stays seamless).
    """
    from ..diffusion.guidance import ClassifierFreeGuidance, GradientGuidance
    from ..diffusion.param import Denoiser
    from ..diffusion.samplers import sample
    from .loop import loop_guidance_loss

    schedule = schedule or model.schedule()
    b = image.shape[0]
    cond = model.condition(image, b)
    c, s, cfg = model.cfg.latent_channels, model.latent_size, model.cfg
    shape = (b, c * cfg.k, 1, s, s) if cfg.mode == "volume" else (b, c, cfg.k, s, s)
    noise = torch.randn(shape, generator=generator)
    guidance = []
    if cfg_scale:
        guidance.append(lambda d: ClassifierFreeGuidance(d, cfg_scale, model.condition(None, b)))
    if loop_weight:
        end = float(cfg.period if loop_end_time is None else loop_end_time)
        loss_fn = loop_guidance_loss(cfg.period, end, decode=model.decode)
        guidance.append(lambda d: GradientGuidance(d, loss_fn, loop_weight))
    z = sample(Denoiser(model.backbone_fn, "v"), noise, schedule, steps, sampler=sampler, cond=cond,
               guidance=guidance or None, generator=generator)
    sv = model.decode(z)  # (B, K, 4, H, W)
    if random_phase is None:
        random_phase = model.cfg.phase == "canonical"
    if random_phase:
        theta = 2 * math.pi * torch.rand(b, cfg.k, generator=generator)
        sv = rotate_phases(sv, theta.to(sv))
    return sv


def save_motion_model(folder, model: MotionModel):
    """``model.safetensors`` + ``config.json`` ({"motion_model": cfg, "normalizer": scales})."""
    from ..checkpoint import save_pretrained
    from ..config import config_to_dict

    return save_pretrained(folder, model, {"motion_model": config_to_dict(model.cfg),
                                           "normalizer": config_to_dict(model.normalizer)})


def load_motion_model(folder) -> MotionModel:
    """Inverse of ``save_motion_model`` (safetensors only)."""
    from pathlib import Path

    from ..checkpoint import WEIGHTS_NAME, load_state_dict, read_config
    from ..config import config_from_dict

    cfg = read_config(folder)
    if "motion_model" not in cfg:
        raise VidiffError(f"{folder} is not a motion model: config.json has no 'motion_model' section")
    model = MotionModel(config_from_dict(MotionModelConfig, cfg["motion_model"]),
                        config_from_dict(FrequencyNormalizer, cfg["normalizer"]))
    model.load_state_dict(load_state_dict(Path(folder) / WEIGHTS_NAME))
    return model.eval()
