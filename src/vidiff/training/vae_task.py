"""`vidiff vae train`: the video autoencoder recipe (VAETrainConfig) and the task the trainer core runs.

    vidiff vae train --data DIR --frames 16 --size 128 --crop 64 --out runs/vae --minutes 60

Two modules train in one state: the autoencoder ("vae", optimizer "vae") on L1 + (1 − SSIM) + a small KL
(`training.vae_loss`), and after `disc_start` steps the 3D patch discriminator ("disc", its own optimizer)
on the hinge loss, while the autoencoder gets the adaptive-weighted generator term (LDM's autoencoder
objective; Video LDM §3.1.1 trains its temporal decoder against such a discriminator). Random spatial
crops (`crop`) of the clips keep a step cheap: the networks are fully convolutional, so the autoencoder
then runs at the full size. Every draw of a step (clips, crops, posterior samples) is a pure function of
(seed, step), so a resumed run reproduces the uninterrupted one.

Run folder (`--out`): what `load_autoencoder` opens,
    model.safetensors, config.json     the autoencoder ({"vae": VAEConfig, "train": ..., "summary": ...});
                                       at the end `vae.scaling_factor` = 1/std of the latents of training clips
    train_state/                       the resumable state (autoencoder, discriminator, both optimizers)
    samples/step_XXXXXXX.mp4           previews: input | reconstruction;  loss.png, log.jsonl
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from .. import __version__
from ..config import config_to_dict, recipe_from_args
from ..data.dataset import VideoDataset
from ..data.io import to_uint8, write_mp4
from ..models.autoencoders import load_autoencoder
from ..models.discriminator import DiscriminatorConfig, PatchDiscriminator3D
from ..models.vae import VAEConfig, VideoAutoencoder, save_vae
from ..utils import VidiffError
from . import state as train_state
from .data import StepBatches
from .loop import LoopConfig, OptimizerSpec, Task, Trainer, check_budget, make_accelerator, summary
from .vae_loss import VAELoss, VAELossConfig, latent_scaling_factor

TEMPORAL_CHOICES = ("conv3d", "attention", "both", "none")


@dataclass
class VAETrainConfig:
    """A video autoencoder recipe (the autoencoder's shape, the loss weights, the budget)."""

    data: str = ""
    out: str = "runs/vae"
    frames: int = 16
    size: int = 128
    crop: Optional[int] = None  # random crops of crop×crop pixels per step (None: the whole size×size clip)
    stride: int = 1
    batch: int = 4
    lr: float = 2e-4
    disc_lr: Optional[float] = None  # None: lr
    grad_clip: float = 1.0
    steps: Optional[int] = None
    minutes: Optional[float] = None
    # the autoencoder
    spatial_factor: int = 4
    latent_channels: int = 4
    base_channels: int = 32
    channel_mult: Optional[tuple[int, ...]] = None
    num_res_blocks: int = 1
    temporal: str = "conv3d"  # the decoder's temporal layers: conv3d | attention | both | none
    causal: bool = False
    temporal_compression: int = 1
    mid_attention: bool = True
    norm_groups: int = 32  # GroupNorm groups (at most; 32 groups of a 32-channel level is instance norm)
    # Video LDM's two stages: a per-frame autoencoder first, then its decoder fine-tuned on video with temporal layers
    init: Optional[str] = None  # an autoencoder folder whose weights start this one (missing temporal layers: identity)
    trainable: str = "all"  # all | decoder | temporal (the decoder's temporal layers); the discriminator always trains
    # the loss
    kl_weight: float = 1e-6
    l2_weight: float = 0.0  # mean squared error next to L1 (see VAELossConfig.l2)
    ssim_weight: float = 0.2
    ms_ssim: bool = False
    disc_start: int = 2000
    disc_weight: float = 0.1  # 0: no discriminator
    disc_channels: int = 32
    # bookkeeping
    ema_decay: float = 0.0  # 0: export the trained weights (no EMA)
    scale_clips: int = 16  # training clips whose latents measure the scaling factor at the end
    seed: int = 0
    log_every: int = 10
    save_every: int = field(default=500, metadata={"range": (0, None, False)})
    sample_every: int = field(default=500, metadata={"range": (0, None, False)})
    num_samples: int = 2
    fps: float = 8.0
    cache: bool = True
    num_workers: int = field(default=0, metadata={"range": (0, None, False)})
    device: str = "auto"

    def vae_config(self) -> VAEConfig:
        """The autoencoder this recipe trains (one-line errors for a shape it cannot have)."""
        if self.temporal not in TEMPORAL_CHOICES:
            raise VidiffError(f"unknown --temporal {self.temporal!r}; choose one of {', '.join(TEMPORAL_CHOICES)}")
        return VAEConfig(latent_channels=self.latent_channels, base_channels=self.base_channels,
                         channel_mult=self.channel_mult, num_res_blocks=self.num_res_blocks,
                         spatial_factor=self.spatial_factor, temporal_decoder=self.temporal, causal=self.causal,
                         temporal_compression=self.temporal_compression, mid_attention=self.mid_attention,
                         norm_groups=self.norm_groups)

    def loss_config(self) -> VAELossConfig:
        return VAELossConfig(l2=self.l2_weight, ssim=self.ssim_weight, ms_ssim=self.ms_ssim, kl=self.kl_weight,
                             adversarial=self.disc_weight, disc_start=self.disc_start)


def check_vae_config(cfg: VAETrainConfig) -> VideoAutoencoder:
    """One-line errors for a recipe that cannot train, before data is read; returns the (fresh) autoencoder."""
    check_budget(cfg.steps, cfg.minutes)
    if not cfg.data:
        raise VidiffError("give the training data: --data DIR (a folder of videos)")
    if cfg.batch < 1 or not cfg.lr > 0:
        raise VidiffError(f"--batch must be >= 1 and --lr > 0; got {cfg.batch} and {cfg.lr}")
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise VidiffError(f"ema_decay must be in [0, 1); got {cfg.ema_decay}")
    if cfg.crop is not None and not 0 < cfg.crop <= cfg.size:
        raise VidiffError(f"--crop must be in 1..{cfg.size} (the --size); got {cfg.crop}")
    vae = VideoAutoencoder(cfg.vae_config())
    vae.check_video_shape(cfg.frames, cfg.size, cfg.size)
    if cfg.crop is not None:
        try:
            vae.check_video_shape(cfg.frames, cfg.crop, cfg.crop)
        except VidiffError as e:
            raise VidiffError(f"--crop: {e}") from None
    cfg.loss_config()
    if cfg.trainable not in TRAINABLE:
        raise VidiffError(f"unknown --train {cfg.trainable!r}; choose one of {', '.join(TRAINABLE)}")
    if cfg.trainable == "temporal" and cfg.temporal == "none":
        raise VidiffError("--train temporal needs temporal layers: pass --temporal conv3d, attention or both")
    if cfg.init:
        init_from(vae, cfg.init)
    return vae


TRAINABLE = ("all", "decoder", "temporal")


def init_from(vae: VideoAutoencoder, folder: str) -> None:
    """Copy the weights of the vidiff autoencoder in `folder` into `vae`: every tensor must match by name and shape
    except the temporal layers `folder` lacks, which keep their identity initialisation (Video LDM §3.1.1: a
    per-frame decoder becomes a video decoder without changing its output)."""
    source = load_autoencoder(folder)
    if not isinstance(source, VideoAutoencoder):
        raise VidiffError(f"--init {folder}: a vidiff autoencoder folder is needed, not a diffusers one")
    if source.config.norm_groups != vae.config.norm_groups:  # same tensor shapes, different function
        raise VidiffError(f"--init {folder}: its autoencoder has norm_groups {source.config.norm_groups}, this recipe "
                          f"{vae.config.norm_groups}; pass --norm-groups {source.config.norm_groups}")
    own, theirs = vae.state_dict(), source.state_dict()
    bad = [k for k, v in theirs.items() if k not in own or own[k].shape != v.shape]
    missing = [k for k in own if k not in theirs and ".temporal." not in k]
    if bad or missing:
        raise VidiffError(f"--init {folder}: its autoencoder does not fit this recipe ({(bad or missing)[0]} differs); "
                          "use the same --spatial-factor, --latent-channels, --base-channels and --causal")
    vae.load_state_dict(theirs, strict=False)


def trainable_names(cfg: VAETrainConfig) -> tuple[str, ...] | None:
    """The `Trainer` selection for --train: None (everything), the decoder, or the decoder's temporal layers."""
    if cfg.trainable == "all":
        return None
    vae = "vae.decoder." if cfg.trainable == "decoder" else "vae.decoder.*.temporal.*"
    return (vae, "disc.")


def random_crop(x: Tensor, crop: int | None, generator: torch.Generator) -> Tensor:
    """One random crop×crop window per clip of x (B, C, F, H, W), drawn from `generator`."""
    if crop is None or crop >= min(x.shape[-2:]):
        return x
    h, w = x.shape[-2:]
    tops = torch.randint(h - crop + 1, (x.shape[0],), generator=generator).tolist()
    lefts = torch.randint(w - crop + 1, (x.shape[0],), generator=generator).tolist()
    return torch.stack([v[..., t:t + crop, s:s + crop] for v, t, s in zip(x, tops, lefts)])


def _unwrap(module):
    return getattr(module, "module", module)  # DDP wraps a module in .module


class VAETask(Task):
    """Autoencoder + discriminator losses of one batch, the autoencoder's export and MP4 previews."""

    def __init__(self, cfg: VAETrainConfig, loss: VAELoss, dataset, full_config: dict):
        self.cfg, self.loss, self.dataset, self.full_config = cfg, loss, dataset, full_config
        self.scaling_factor: float | None = None  # measured at the end of training

    def losses(self, trainer: Trainer, batch: dict, step: int, generator: torch.Generator) -> dict:
        x = random_crop(batch["video"], self.cfg.crop, generator).to(trainer.device)  # (B, 3, F, c, c)
        vae, disc = trainer.modules["vae"], trainer.modules.get("disc")
        x_rec, posterior = vae(x, generator=generator)  # z ~ q(z|x) drawn from the step's generator
        gan = disc is not None and self.loss.gan_active(step)
        logits_fake = disc(x_rec) if gan else None
        last = _unwrap(vae).decoder.conv_out.weight
        total, _ = self.loss(x, x_rec, posterior, step, logits_fake=logits_fake, last_layer=last)
        out = {"vae": total}
        if gan:
            out["disc"] = self.loss.discriminator(disc(x), disc(x_rec.detach()), step)
        return out

    def autoencoder(self, trainer: Trainer) -> VideoAutoencoder:
        """The weights users get: the EMA copy when the recipe keeps one, else the trained ones."""
        return _unwrap(trainer.ema["vae"] if "vae" in trainer.ema else trainer.raw["vae"])

    def export(self, trainer: Trainer, folder: Path) -> None:
        vae = self.autoencoder(trainer)
        if self.scaling_factor is not None:
            vae.config = dataclasses.replace(vae.config, scaling_factor=self.scaling_factor)
            vae.scaling_factor = self.scaling_factor
        extra = {**self.full_config, "summary": summary(trainer.state, {"vae": trainer.raw["vae"]})}
        save_vae(folder, vae, extra)

    @torch.no_grad()
    def preview(self, trainer: Trainer) -> None:
        if trainer.run_dir is None:
            return
        vae = self.autoencoder(trainer)
        was = vae.training
        vae.eval()
        try:
            n = min(self.cfg.num_samples, len(self.dataset))
            x = torch.stack([self.dataset[i]["video"] for i in range(n)]).to(trainer.device)  # (n, 3, F, S, S)
            rec = vae.decode(vae.encode(x).mode()).clamp(-1, 1)
        finally:
            vae.train(was)
        pairs = to_uint8(torch.cat([x, rec], dim=-1).cpu())  # (n, F, S, 2S, 3): input | reconstruction
        write_mp4(trainer.run_dir / "samples" / f"step_{trainer.state['step']:07d}.mp4",
                  np.concatenate(list(pairs), axis=1), fps=self.cfg.fps, scale=max(1, 256 // self.cfg.size))

    @torch.no_grad()
    def measure_scaling_factor(self, trainer: Trainer) -> float:
        """1/std of z ~ q(z|x) over the first `scale_clips` training clips (LDM §4.3.2)."""
        vae = self.autoencoder(trainer)
        was = vae.training
        vae.eval()
        g = torch.Generator().manual_seed(self.cfg.seed)
        latents = []
        try:
            for i in range(min(self.cfg.scale_clips, len(self.dataset))):
                x = self.dataset[i]["video"][None].to(trainer.device)
                latents.append(vae.encode(x).sample(g).cpu())
        finally:
            vae.train(was)
        return latent_scaling_factor(torch.cat([z.flatten() for z in latents]))


def train_vae(cfg: VAETrainConfig, resume: bool = False) -> Path:
    """Train a video autoencoder; returns the run folder (a folder `load_autoencoder` opens)."""
    torch.manual_seed(cfg.seed)  # the initial weights are part of the recipe
    vae = check_vae_config(cfg)
    out = Path(cfg.out)
    if resume:
        train_state.read_state(out)
    elif train_state.committed(out) is not None:
        raise VidiffError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    accelerator = make_accelerator(cfg.device)
    dataset = VideoDataset(cfg.data, frames=cfg.frames, size=cfg.size, stride=cfg.stride,
                           cache="auto" if cfg.cache else False, seed=cfg.seed,
                           progress=accelerator.is_main_process)
    modules = {"vae": vae}
    optimizers = {"vae": OptimizerSpec("vae", lr=cfg.lr, betas=(0.5, 0.9), grad_clip=cfg.grad_clip)}
    if cfg.disc_weight > 0:
        modules["disc"] = PatchDiscriminator3D(DiscriminatorConfig(channels=cfg.disc_channels))
        optimizers["disc"] = OptimizerSpec("disc", lr=cfg.disc_lr or cfg.lr, betas=(0.5, 0.9),
                                           grad_clip=cfg.grad_clip)
    full_config = {"train": config_to_dict(cfg), "vidiff_version": __version__}
    task = VAETask(cfg, VAELoss(cfg.loss_config()), dataset, full_config)
    loop = LoopConfig(steps=cfg.steps, minutes=cfg.minutes, seed=cfg.seed, log_every=cfg.log_every,
                      save_every=cfg.save_every, sample_every=cfg.sample_every, device=cfg.device,
                      desc="training the autoencoder")
    trainer = Trainer(modules, optimizers, task, config=loop, run_dir=out,
                      ema={"vae": cfg.ema_decay} if cfg.ema_decay > 0 else None, accelerator=accelerator,
                      trainable=trainable_names(cfg))
    trainer.fit(StepBatches(dataset, cfg.batch, seed=cfg.seed, num_workers=cfg.num_workers), resume=resume)
    if trainer.is_main:
        task.scaling_factor = task.measure_scaling_factor(trainer)
        task.export(trainer, out)
        print(f"scaling factor {task.scaling_factor:.4g} (1/std of the latents of "
              f"{min(cfg.scale_clips, len(dataset))} training clips) stored in {out / 'config.json'}", file=sys.stderr)
    accelerator.end_training()
    return out


def vae_config_from_args(config_file: Optional[str], overrides: dict) -> VAETrainConfig:
    """A recipe file (YAML/JSON) with command-line flags taking precedence."""
    return recipe_from_args(VAETrainConfig, config_file, overrides, "vae train config")


__all__ = ["VAETask", "VAETrainConfig", "check_vae_config", "random_crop", "train_vae", "vae_config_from_args"]
