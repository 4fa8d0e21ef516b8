"""`vidiff train`: the video diffusion recipe (TrainConfig), its backbone and the task the trainer runs.

    vidiff train --data DIR --frames 16 --size 32 --model unet-tiny --out runs/NAME --minutes 30
    accelerate launch --multi_gpu --num_processes 2 -m vidiff.train --data DIR ...
        # DDP: NCCL on GPUs; on a machine without CUDA the same command runs 2 gloo CPU processes

Every random draw of optimisation step k (which clips, where they start, t and noise, condition dropout)
is a pure function of (seed, k, rank) (`training.data`), so a resumed run only needs weights, optimizer,
EMA and k — and reproduces the uninterrupted loss sequence exactly on CPU.

Run folder (`--out`):
    model.safetensors, config.json     EMA weights + full config: what `vidiff sample` loads
    train_state/                       the resumable state, one unit (`training.state`)
    samples/step_XXXXXXX.gif           periodic previews;  loss.png, log.jsonl;  snapshots/step_XXXXXXX
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from .. import __version__
from ..checkpoint import read_config, save_pretrained
from ..conditioning.image_embed import check_image_embed, image_embed_overrides
from ..conditioning.micro import parse_micro
from ..conditioning.tasks import model_overrides, parse_condition, training_cond
from ..conditioning.text import get_text_encoder
from ..config import config_to_dict, load_yaml_or_json, recipe_from_args
from ..data.dataset import VideoDataset
from ..data.io import tile_videos, to_uint8, write_gif
from ..data.shards import ShardClips, is_shard_data
from ..diffusion.config import DiffusionConfig, VideoFormat
from ..diffusion.loss import diffusion_loss, lognormal_times
from ..diffusion.noise import FrameNoise
from ..limits import check_training
from ..models import build_model, model_config_from_dict
from ..models.presets import get_preset
from ..models.temporal import WHICH as SELECTIONS
from ..models.temporal import select_parameters, video_ldm_from_image
from ..models.unet3d import UNet3DConfig
from ..utils import VidiffError
from . import state as train_state
from .data import EpochBatches, StepBatches
from .joint import ImageFrames, is_image_folder, joint_dataset, with_is_image
from .latent_task import LatentSpace
from .loop import LoopConfig, OptimizerSpec, Task, Trainer, check_budget, make_accelerator, summary
from .surgery import init_weights_from
from .svd import SVDConditioning, check_svd_recipe


@dataclass
class TrainConfig:
    """A training recipe; YAML files under configs/ hold the same keys."""

    data: str = ""
    # train in this autoencoder's latent space (a `vidiff vae train` folder, bundled name or diffusers folder);
    # `data` may also be a latent cache written by `vidiff vae encode` (training.latent_task)
    latent: Optional[str] = None
    out: str = "runs/default"
    model: str = "unet-tiny"
    frames: int = 16
    size: int = 32
    stride: int = 1
    fps: float = 8.0
    batch: int = 8
    lr: float = 5e-4
    weight_decay: float = 0.0
    warmup: int = 200
    lr_schedule: str = "constant"  # constant | cosine (decays to lr_min_ratio·lr at `steps`, after warm-up)
    lr_min_ratio: float = 0.1
    grad_clip: float = 1.0
    steps: Optional[int] = None
    minutes: Optional[float] = None
    ema_decay: float = 0.999
    schedule: str = "cosine"
    schedule_kwargs: dict = field(default_factory=dict)  # e.g. {shift: 4} for shifted_cosine
    # schedule "edm" trains with EDM's law (Karras et al. 2022): ln σ ~ N(p_mean, p_std²), loss weight λ(σ)
    p_mean: float = -1.2
    p_std: float = 1.2
    parameterization: str = "v"
    noise: str = "iid"  # iid | mixed | progressive: noise correlated across frames (PYoCo), see diffusion/noise.py
    noise_alpha: float = 1.0
    condition: str = "none"  # none | class | text | first_frame, or several joined by "+" (text+first_frame)
    cond_drop: float = 0.1   # rate at which a condition is replaced by the null one (classifier-free guidance)
    # micro-conditions (Stable Video Diffusion), comma-separated: fps, motion (bucket from optical flow),
    # speed (metadata.jsonl), measured per training video (training.svd)
    micro: str = ""
    cond_noise_aug: float = 0.0  # noise augmentation of the first frame: level s ~ U[0, cond_noise_aug) (SVD)
    # the first frame also embedded by a jointly trained image encoder, seen by cross-attention and the time
    # embedding (SVD's image embedding; conditioning.image_embed)
    image_embed: bool = False
    # first: the "caption" of metadata.jsonl; random: each epoch draws one of "caption" and the
    # record's "captions" list (caption augmentation; `vidiff data synth shapes` writes 8 variants)
    captions: str = "first"
    init_from: Optional[str] = None  # checkpoint folder whose weights start the run (new layers keep their init)
    # which parameters train: "all", "temporal" (the temporal layers; the rest frozen, bit-identical), or
    # comma-separated parameter names / fnmatch patterns ("*.temporal.*")
    trainable: str = "all"
    # Video LDM: the image checkpoint (trained with frames 1, temporal none) whose weights start a video model
    # with identity-initialised temporal layers (models.temporal.video_ldm_from_image); with trainable
    # "temporal" the image model stays frozen
    init_image: Optional[str] = None
    # joint image–video training (VDM): a folder of images, mixed in as stacks of independent frames
    # (`Cond.is_image`) at this share of the samples (training.joint)
    images: Optional[str] = None
    image_ratio: float = 0.0
    loss_weighting: Optional[str] = None
    # share of training samples that see the model's own x̂₀ as input (self-conditioning, Chen et al.
    # 2022; they use 0.5); > 0 builds the backbone with self_cond=True and sampling feeds x̂₀ back
    self_cond: float = 0.0
    # the UNet3D temporal layer, replacing the model config's (e.g. convgru, biconvgru, hierarchical, dwconv,
    # motion: models.temporal_mixers); with init_image, the layers put over the image model (default videoldm)
    temporal: Optional[str] = None
    # weight of the temporal-consistency penalty on x̂₀ (diffusion.temporal_loss; 0: the plain loss)
    temporal_consistency: float = 0.0
    seed: int = 0
    bf16: bool = False
    gradient_checkpointing: bool = False
    log_every: int = 10
    save_every: int = field(default=500, metadata={"range": (0, None, False)})  # 0: at the end (and on interrupt)
    # keep a copy of the EMA weights at these steps in out/snapshots/step_NNNNNNN (e.g. an early
    # snapshot to guide the final model with, autoguidance: diffusion/guidance.py)
    snapshot_steps: tuple[int, ...] = ()
    sample_every: int = field(default=500, metadata={"range": (0, None, False)})  # 0: a preview at the end only
    sample_steps: int = 25
    num_samples: int = 4
    cache: bool = True
    # DataLoader worker processes decoding clips (0: in the training process)
    num_workers: int = field(default=0, metadata={"range": (0, None, False)})
    device: str = "auto"  # auto | cpu | cuda: auto trains on CUDA when present, else CPU (gloo for DDP)


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up to cfg.lr, then constant, or a half-cosine down to lr_min_ratio·lr at cfg.steps
    (SGDR, Loshchilov & Hutter 2017, without restarts)."""
    warm = min(1.0, (step + 1) / max(1, cfg.warmup))
    if cfg.lr_schedule != "cosine":
        return cfg.lr * warm
    frac = min(1.0, max(0, step + 1 - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    ratio = cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * frac))
    return cfg.lr * warm * ratio


def check_config(cfg: TrainConfig) -> None:
    """One-line errors for a recipe that cannot train, before any data or model is built."""
    check_budget(cfg.steps, cfg.minutes)
    if cfg.batch < 1:
        raise VidiffError(f"--batch must be at least 1; got {cfg.batch}")
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise VidiffError(f"--lr must be a number > 0; got {cfg.lr}")
    if cfg.lr_schedule not in ("constant", "cosine"):
        raise VidiffError(f"unknown lr_schedule {cfg.lr_schedule!r}; use constant or cosine")
    if cfg.lr_schedule == "cosine" and cfg.steps is None:
        raise VidiffError("lr_schedule cosine decays over --steps N: give --steps (--minutes may stay as a cap)")
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise VidiffError(f"ema_decay must be in [0, 1); got {cfg.ema_decay}")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise VidiffError(f"unknown device {cfg.device!r}; use auto, cpu or cuda")
    if not cfg.data:
        raise VidiffError("give the training data: --data DIR (a folder of videos)")
    if not cfg.temporal_consistency >= 0:
        raise VidiffError(f"--temporal-consistency is a loss weight >= 0; got {cfg.temporal_consistency}")
    DiffusionConfig(schedule=cfg.schedule, schedule_kwargs=dict(cfg.schedule_kwargs)).build_schedule()
    check_svd_recipe(cfg.micro, cfg.cond_noise_aug, parse_condition(cfg.condition), images=cfg.images)
    check_image_embed(cfg.image_embed, parse_condition(cfg.condition))


def trainable_selection(which: str, model) -> tuple[str, ...] | None:
    """The `Trainer` selection for `--train` (names under the module "model"): None for "all"; "temporal" or
    "spatial" as `models.temporal.select_parameters` splits the backbone (Video LDM: the temporal layers
    train, the image model stays frozen); anything else is comma-separated parameter names or fnmatch
    patterns ("*.temporal.*")."""
    if which == "all":
        return None
    if which in SELECTIONS:
        names = tuple(select_parameters(model, which))
    else:
        names = tuple(w.strip() for w in which.split(",") if w.strip())
    if not names:
        raise VidiffError(f"--train takes {' | '.join(SELECTIONS)} or parameter name patterns; got {which!r}")
    return tuple(f"model.{n}" for n in names)


def base_model_config(cfg: TrainConfig):
    """The backbone config named by `cfg.model`: a preset name or a model-config file (.json/.yaml)."""
    if cfg.model.endswith((".json", ".yaml", ".yml")):
        return model_config_from_dict(load_yaml_or_json(cfg.model))
    return get_preset(cfg.model)


def build_model_for(cfg: TrainConfig, num_classes: int = 0, channels: int = 3, frames: int | None = None,
                    size: int | None = None):
    """A backbone from a preset name or a model-config file (.json/.yaml, the "model" section format),
    widened for `cfg.condition` (class embedding, text cross-attention, concat channels), for videos of
    `channels` × `frames` × `size`² (default: RGB at the recipe's frames and size; latents for latent models)."""
    mcfg = base_model_config(cfg)
    if cfg.temporal:
        if not isinstance(mcfg, UNet3DConfig):
            raise VidiffError(f"--temporal picks a UNet3D temporal layer; {cfg.model} is not a UNet3D")
        mcfg = dataclasses.replace(mcfg, temporal=cfg.temporal)
    if cfg.gradient_checkpointing:
        mcfg = dataclasses.replace(mcfg, gradient_checkpointing=True)
    if (frames or cfg.frames) == 1 and isinstance(mcfg, UNet3DConfig):  # an image model (Video LDM's first stage)
        mcfg = dataclasses.replace(mcfg, temporal="none", spatial_attention="frame", temporal_down_levels=())
    if channels != 3:
        mcfg = dataclasses.replace(mcfg, in_channels=channels, out_channels=channels)
    mcfg = dataclasses.replace(mcfg, **model_overrides(parse_condition(cfg.condition), num_classes, channels))
    if parse_micro(cfg.micro):
        mcfg = dataclasses.replace(mcfg, micro_conds=len(parse_micro(cfg.micro)))
    if cfg.image_embed:
        mcfg = dataclasses.replace(mcfg, **image_embed_overrides(channels))
    if not 0.0 <= cfg.self_cond < 1.0:
        raise VidiffError(f"self_cond is the share of samples trained with self-conditioning, "
                          f"in [0, 1); got {cfg.self_cond}")
    if cfg.self_cond > 0:
        mcfg = dataclasses.replace(mcfg, self_cond=True)
    model = build_model(mcfg)
    if cfg.init_from:
        init_weights_from(model, cfg.init_from)
    model.check_size(frames or cfg.frames, size or cfg.size, size or cfg.size)
    return model


def video_model_from_image(cfg: TrainConfig, kinds: tuple[str, ...], frames: int, size: int):
    """Video LDM: the video model over the image checkpoint `cfg.init_image`, equal to it frame by frame at
    initialisation; the recipe's condition and latent space must be the image model's."""
    if cfg.init_from:
        raise VidiffError("--init-image starts the video model from an image model; --init-from cannot be used too")
    image_cfg = read_config(cfg.init_image)
    trained = (image_cfg.get("conditioning") or {}).get("condition") or "none"
    if trained != ("+".join(kinds) or "none"):
        raise VidiffError(f"--init-image {cfg.init_image} was trained with condition {trained!r}; give --condition "
                          f"{trained} to train its video model")
    if bool((image_cfg.get("conditioning") or {}).get("image_embed")) != cfg.image_embed:
        raise VidiffError(f"--init-image {cfg.init_image} was trained "
                          f"{'with' if not cfg.image_embed else 'without'} --image-embed; train its video model "
                          f"{'with' if not cfg.image_embed else 'without'} it too")
    if bool(image_cfg.get("latent")) != bool(cfg.latent):
        raise VidiffError(f"--init-image {cfg.init_image} is a {'latent' if image_cfg.get('latent') else 'pixel'} "
                          f"model; train its video model "
                          f"{'with the same --latent' if image_cfg.get('latent') else 'without --latent'}")
    overrides = {"gradient_checkpointing": True} if cfg.gradient_checkpointing else {}
    model = video_ldm_from_image(cfg.init_image, temporal=cfg.temporal or "videoldm", **overrides)
    model.check_size(frames, size, size)
    return model


SampleFn = Callable[..., torch.Tensor]  # (model, diffusion, shape, *, steps, seed, cond) -> videos in [-1, 1]


class DiffusionTask(Task):
    """The denoising loss of a video backbone on a batch of clips (with its conditions), the EMA export
    (model.safetensors + config.json) and GIF previews drawn with `sample_fn` (none when it is None).
    With a `latent` space the batches are turned into latents and the previews decoded to pixels; `svd`
    adds micro-conditions and first-frame noise augmentation; schedule "edm" draws t at EDM's lognormal σ
    and weights the loss by λ(σ) (`diffusion.loss`)."""

    def __init__(self, cfg: TrainConfig, diffusion: DiffusionConfig, kinds: tuple[str, ...], dataset,
                 full_config: dict, text_encoder=None, sample_fn: SampleFn | None = None,
                 latent: LatentSpace | None = None, svd: SVDConditioning | None = None):
        self.cfg, self.diffusion, self.kinds, self.dataset, self.svd = cfg, diffusion, kinds, dataset, svd
        self.full_config, self.text_encoder, self.latent = full_config, text_encoder, latent
        self.sample_fn = latent.wrap_sample_fn(sample_fn) if latent is not None else sample_fn
        self.schedule = diffusion.build_schedule()
        self.noise_prior = diffusion.build_noise()

    def losses(self, trainer: Trainer, batch: dict, step: int, generator: torch.Generator) -> dict:
        cfg = self.cfg
        if self.latent is not None:
            x0 = self.latent.latents(batch, generator, trainer.device)  # (B, C_lat, f, h, w)
        else:
            x0 = batch["video"].to(trainer.device)  # (B, C, F, H, W)
        cond = training_cond(self.kinds, x0=x0, class_ids=batch["class_id"], captions=batch["caption"],
                             text_encoder=self.text_encoder, drop_prob=cfg.cond_drop, generator=generator,
                             image_embed=cfg.image_embed)
        cond = with_is_image(cond, batch, trainer.device)  # joint image–video training: image stacks flagged
        if self.svd is not None:  # micro-conditions of the batch's videos, the first frame noise-augmented
            cond = self.svd.apply(cond, x0, batch["path"], generator)
        t, weighting = None, cfg.loss_weighting
        if self.diffusion.schedule == "edm":  # EDM's training law: lognormal σ, λ(σ) unless another weighting
            t = lognormal_times(self.schedule, x0.shape[0], generator, p_mean=cfg.p_mean, p_std=cfg.p_std,
                                device=x0.device)
            weighting = weighting or "edm"
        loss = diffusion_loss(trainer.modules["model"], x0, self.schedule, parameterization=cfg.parameterization,
                              cond=cond, weighting=weighting, generator=generator, t=t,
                              noise_prior=self.noise_prior, self_cond_prob=cfg.self_cond,
                              temporal_consistency=cfg.temporal_consistency)
        return {"model": loss}

    def export(self, trainer: Trainer, folder: Path) -> None:
        config = {**self.full_config, "summary": summary(trainer.state, {"model": trainer.raw["model"]})}
        save_pretrained(folder, trainer.ema["model"], config)

    def preview(self, trainer: Trainer) -> None:
        if self.sample_fn is None or trainer.run_dir is None:
            return
        cfg = self.cfg
        n = min(cfg.num_samples, len(self.dataset))
        shown = [self.dataset[i] for i in range(n)]  # conditional models: the first videos' conditions
        x0 = torch.stack([it["video"] for it in shown])
        if self.latent is not None:
            x0 = self.latent.as_latents(x0)  # (n, C_lat, f, h, w)
        cond = training_cond(self.kinds, x0=x0,
                             class_ids=torch.tensor([it["class_id"] for it in shown]),
                             captions=[it["caption"] for it in shown], text_encoder=self.text_encoder, drop_prob=0.0,
                             image_embed=cfg.image_embed)
        if self.svd is not None:
            cond = self.svd.preview(cond, x0, [it["path"] for it in shown])
        if cond is not None:
            cond = cond.to(trainer.device)
        x = self.sample_fn(trainer.ema["model"], self.diffusion, (n, 3, cfg.frames, cfg.size, cfg.size),
                           steps=cfg.sample_steps, seed=0, cond=cond)
        write_gif(trainer.run_dir / "samples" / f"step_{trainer.state['step']:07d}.gif",
                  tile_videos(to_uint8(x.cpu())), fps=cfg.fps, scale=2)


def check_run_folder(out: Path, resume: bool) -> None:
    """Fail fast, before data and model are built: a run to continue must exist, a new one must not."""
    if resume:
        train_state.read_state(out)  # the full check (checksums); loading repeats it
    elif train_state.committed(out) is not None or (out / train_state.STATE_DIR / "state.json").is_file():
        raise VidiffError(f"{out} already holds a run; pass --resume to continue it or choose another --out")


def train(cfg: TrainConfig, resume: bool = False, sample_fn: SampleFn | None = None) -> Path:
    """Train a video diffusion model; returns the run folder. `sample_fn` (e.g.
    `vidiff.pipelines.sample_videos`) draws the previews; without it none are written."""
    check_config(cfg)
    FrameNoise(cfg.noise, cfg.noise_alpha)  # a bad prior fails here, before data and model are built
    out = Path(cfg.out)
    check_run_folder(out, resume)
    if not cfg.latent and not cfg.init_image:  # a step that cannot fit is refused before any video is decoded
        check_training(base_model_config(cfg), batch=cfg.batch, frames=cfg.frames, size=cfg.size)
    latent = LatentSpace.open(cfg.latent, cfg.data, cfg.frames, cfg.size)  # None: pixel space
    if latent is not None:
        cfg = latent.recipe(cfg)  # a latent cache fixes frames and size
    accelerator = make_accelerator(cfg.device, cfg.bf16)
    if cfg.frames == 1 and not (latent is not None and latent.cache) and is_image_folder(cfg.data):
        dataset = ImageFrames(cfg.data, 1, cfg.size, seed=cfg.seed)  # an image model on a folder of images
    elif is_shard_data(cfg.data) and not (latent is not None and latent.cache):  # `vidiff data curate` shards
        dataset = ShardClips(cfg.data, frames=cfg.frames, size=cfg.size, stride=cfg.stride, seed=cfg.seed,
                             captions=cfg.captions)
    elif latent is not None:
        dataset = latent.dataset(stride=cfg.stride, cache=cfg.cache, seed=cfg.seed,
                                 progress=accelerator.is_main_process, captions=cfg.captions)
    else:
        dataset = VideoDataset(cfg.data, frames=cfg.frames, size=cfg.size, stride=cfg.stride,
                               cache="auto" if cfg.cache else False, seed=cfg.seed,
                               progress=accelerator.is_main_process, captions=cfg.captions)
    if cfg.images and latent is not None and latent.cache:
        raise VidiffError("--images cannot be mixed into a latent cache; give the video folder as --data with --latent")
    if cfg.images and latent is not None and latent.autoencoder.temporal_factor > 1:
        raise VidiffError(f"--images: {cfg.latent} compresses time ({latent.autoencoder.temporal_factor}x), so the "
                          "frames of an image stack would not stay independent; use a per-frame autoencoder")
    batches = joint_dataset(dataset, cfg.images, cfg.image_ratio, frames=cfg.frames, size=cfg.size, seed=cfg.seed)
    kinds = parse_condition(cfg.condition)
    text_encoder = None
    if "text" in kinds:
        text_encoder = get_text_encoder()
        text_encoder.encode(dataset.all_captions() or [""])  # cache all
    svd = SVDConditioning.for_recipe(cfg.micro, cfg.cond_noise_aug, dataset, size=cfg.size, stride=cfg.stride,
                                     fps=cfg.fps, out=out)
    torch.manual_seed(cfg.seed)  # the initial weights are part of the recipe
    shape = latent.backbone_shape() if latent is not None else {}
    if cfg.init_image:
        model = video_model_from_image(cfg, kinds, shape.get("frames") or cfg.frames, shape.get("size") or cfg.size)
    else:
        model = build_model_for(cfg, dataset.num_classes, **shape)
    selection = trainable_selection(cfg.trainable, model)
    diffusion = DiffusionConfig(schedule=cfg.schedule, schedule_kwargs=dict(cfg.schedule_kwargs),
                                parameterization=cfg.parameterization, noise=cfg.noise, noise_alpha=cfg.noise_alpha)
    full_config = {
        "model": config_to_dict(model.config),
        "diffusion": config_to_dict(diffusion),
        "video": config_to_dict(VideoFormat(channels=3, frames=cfg.frames, size=cfg.size, fps=cfg.fps)),
        "conditioning": {"condition": "+".join(kinds) or "none", "cond_drop": cfg.cond_drop,
                         "text_encoder": "minilm" if text_encoder else None, "image_embed": cfg.image_embed,
                         **(svd.section() if svd else {})},
        "train": config_to_dict(cfg),
        "vidiff_version": __version__,
    }
    if latent is not None:
        full_config["latent"] = latent.section()
    task = DiffusionTask(cfg, diffusion, kinds, dataset, full_config, text_encoder, sample_fn, latent=latent,
                         svd=svd)
    optimizer = OptimizerSpec("model", lr=cfg.lr, weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip,
                              schedule=lambda step, done: lr_at(cfg, step))
    name = Path(cfg.model).stem if cfg.model.endswith((".json", ".yaml", ".yml")) else cfg.model
    loop = LoopConfig(steps=cfg.steps, minutes=cfg.minutes, seed=cfg.seed, log_every=cfg.log_every,
                      save_every=cfg.save_every, sample_every=cfg.sample_every,
                      snapshot_steps=tuple(cfg.snapshot_steps), bf16=cfg.bf16, device=cfg.device,
                      desc=f"training {name}")
    trainer = Trainer({"model": model}, {"model": optimizer}, task, config=loop, run_dir=out,
                      ema={"model": cfg.ema_decay}, trainable=selection, accelerator=accelerator)
    source = EpochBatches if isinstance(dataset, ShardClips) else StepBatches  # shards: streamed epoch by epoch
    trainer.fit(source(batches, cfg.batch, seed=cfg.seed, num_workers=cfg.num_workers), resume=resume)
    accelerator.end_training()
    return out


def config_from_args(config_file: Optional[str], overrides: dict) -> TrainConfig:
    """A recipe file (YAML/JSON) with command-line flags taking precedence."""
    return recipe_from_args(TrainConfig, config_file, overrides, "train config")
