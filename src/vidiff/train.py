"""Training loop on Hugging Face accelerate: reads top to bottom.

    vidiff train --data DIR --frames 16 --size 32 --model unet-tiny --out runs/NAME --minutes 30
    accelerate launch --multi_gpu --num_processes 2 -m vidiff.train --data DIR ...
        # DDP: NCCL on GPUs; on a machine without CUDA the same command runs 2 gloo CPU processes

Reproducibility: every random draw of optimisation step k (which clips, where they start, t and
noise) comes from a generator seeded by (seed, k, rank). A resumed run therefore only needs
weights, optimizer, EMA and k — and reproduces the uninterrupted loss sequence exactly on CPU.

Checkpoint folder (`--out`):
    model.safetensors, config.json     EMA weights + full config: what `vidiff sample` loads
    train_state/                       raw weights, optimizer, EMA, step/elapsed/loss history
    samples/step_XXXXXXX.gif           periodic previews;  loss.png, log.jsonl
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from .utils import VidiffError, atomic_path, atomic_write_text


@dataclass
class TrainConfig:
    """A training recipe; YAML files under configs/ hold the same keys."""

    data: str = ""
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
    parameterization: str = "v"
    noise: str = "iid"  # iid | mixed | progressive: noise correlated across frames (PYoCo), see diffusion/noise.py
    noise_alpha: float = 1.0
    condition: str = "none"  # none | class | text | first_frame, or several joined by "+" (text+first_frame)
    cond_drop: float = 0.1   # rate at which a condition is replaced by the null one (classifier-free guidance)
    # first: the "caption" of metadata.jsonl; random: each epoch draws one of "caption" and the
    # record's "captions" list (caption augmentation; `vidiff data synth shapes` writes 8 variants)
    captions: str = "first"
    init_from: Optional[str] = None  # checkpoint folder whose weights start the run (new layers keep their init)
    loss_weighting: Optional[str] = None
    # share of training samples that see the model's own x̂₀ as input (self-conditioning, Chen et al.
    # 2022; they use 0.5); > 0 builds the backbone with self_cond=True and sampling feeds x̂₀ back
    self_cond: float = 0.0
    seed: int = 0
    bf16: bool = False
    gradient_checkpointing: bool = False
    log_every: int = 10
    save_every: int = 500
    # keep a copy of the EMA weights at these steps in out/snapshots/step_NNNNNNN (e.g. an early
    # snapshot to guide the final model with, autoguidance: diffusion/guidance.py)
    snapshot_steps: tuple[int, ...] = ()
    sample_every: int = 500
    sample_steps: int = 25
    num_samples: int = 4
    cache: bool = True
    device: str = "auto"  # auto | cpu | cuda: auto trains on CUDA when present, else CPU (gloo for DDP)


def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model (parameters and buffers)."""
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p.detach().to(e.dtype), 1 - decay)
        for e, b in zip(ema.buffers(), model.buffers()):
            e.copy_(b)


def weight_checksums(accelerator, model: torch.nn.Module) -> list[int]:
    """A 63-bit hash of this rank's weights, gathered from every rank (all equal under DDP)."""
    import hashlib

    h = hashlib.sha256()
    for p in model.state_dict().values():
        h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    mine = torch.tensor([int.from_bytes(h.digest()[:8], "little") >> 1], device=accelerator.device)
    return [int(v) for v in accelerator.gather(mine).tolist()]


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The generator for all random draws of one optimisation step on one rank."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step * 7_919 + rank * 104_729) % (2**63))


def sample_batch(dataset, batch: int, generator: torch.Generator, step: int) -> dict:
    """`batch` clips drawn with replacement; clip starts/crops vary with the step (dataset epoch).
    Returns {"video": (B, C, F, H, W), "class_id": (B,), "caption": [B strings]}."""
    idx = torch.randint(len(dataset), (batch,), generator=generator).tolist()
    dataset.set_epoch(step)
    items = [dataset[i] for i in idx]
    return {"video": torch.stack([it["video"] for it in items]),
            "class_id": torch.tensor([it["class_id"] for it in items]),
            "caption": [it["caption"] for it in items]}


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up to cfg.lr, then constant, or a half-cosine down to lr_min_ratio·lr at cfg.steps
    (SGDR, Loshchilov & Hutter 2017, without restarts)."""
    warm = min(1.0, (step + 1) / max(1, cfg.warmup))
    if cfg.lr_schedule != "cosine":
        return cfg.lr * warm
    frac = min(1.0, max(0, step + 1 - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    ratio = cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * frac))
    return cfg.lr * warm * ratio


# ---------------------------------------------------------------------------------------------
# checkpoint state

def _save_torch(path: Path, obj) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_train_state(out: Path, model, ema, optimizer, state: dict, full_config: dict) -> None:
    """Write everything needed to resume, then the sampling checkpoint (EMA), each atomically."""
    from .checkpoint import save_pretrained, save_state_dict

    ts = out / "train_state"
    ts.mkdir(parents=True, exist_ok=True)
    save_state_dict(ts / "model.safetensors", model.state_dict())
    save_state_dict(ts / "ema.safetensors", ema.state_dict())
    _save_torch(ts / "optimizer.pt", optimizer.state_dict())
    atomic_write_text(ts / "state.json", json.dumps(state) + "\n")
    config = {**full_config, "summary": _summary(state, model)}
    save_pretrained(out, ema, config)


def load_train_state(out: Path, model, ema, optimizer) -> dict:
    from .checkpoint import load_state_dict

    ts = out / "train_state"
    if not (ts / "state.json").is_file():
        raise VidiffError(f"cannot resume: {ts}/state.json not found; start without --resume")
    model.load_state_dict(load_state_dict(ts / "model.safetensors"))
    ema.load_state_dict(load_state_dict(ts / "ema.safetensors"))
    optimizer.load_state_dict(torch.load(ts / "optimizer.pt", weights_only=True))
    return json.loads((ts / "state.json").read_text())


def _summary(state: dict, model) -> dict:
    losses = state.get("losses", [])
    tail = losses[-50:]
    return {
        "steps": state["step"],
        "elapsed_s": round(state["elapsed"], 1),
        "final_loss": (sum(tail) / len(tail)) if tail else None,
        "params": sum(p.numel() for p in model.parameters()),
    }


def plot_loss(losses: list[float], path: Path) -> None:
    """Loss curve (raw and smoothed) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(losses, lw=0.5, alpha=0.4, label="loss")
    k = max(1, len(losses) // 50)
    if len(losses) > k:
        sm = torch.tensor(losses).unfold(0, k, 1).mean(1).tolist()
        ax.plot(range(k - 1, k - 1 + len(sm)), sm, lw=1.5, label=f"mean of {k}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# the loop

def widen_input_channels(src: torch.Tensor, own: torch.Tensor) -> torch.Tensor | None:
    """`src` zero-padded along its input axis (dim 1) to `own`'s shape when that is the only difference
    (an input layer that gained channels: concat conditions, self-conditioning), else None. The extra
    inputs start with zero weight, so the widened model computes what the checkpoint did."""
    if (src.dim() < 2 or src.shape[0] != own.shape[0] or src.shape[2:] != own.shape[2:]
            or src.shape[1] >= own.shape[1]):
        return None
    out = torch.zeros_like(own)
    out[:, :src.shape[1]] = src.to(own.dtype)
    return out


def init_weights_from(model, folder: str) -> None:
    """Copy every weight of checkpoint `folder` whose name and shape match (fine-tuning, or adding a
    condition to a trained unconditional model); an input layer that gained channels gets the
    checkpoint's weights for the old ones and zeros for the new (`widen_input_channels`, as Stable
    Diffusion's inpainting model was made from the text-to-image one); the rest keep their initialisation."""
    from .checkpoint import load_state_dict

    path = Path(folder) / "model.safetensors"
    if not path.is_file():
        raise VidiffError(f"--init-from: {path} not found; give a checkpoint folder (model.safetensors + config.json)")
    src, own = load_state_dict(path), model.state_dict()
    hit = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
    widened = {k: w for k, v in src.items() if k in own and k not in hit
               for w in [widen_input_channels(v, own[k])] if w is not None}
    model.load_state_dict({**hit, **widened}, strict=False)
    # a tensor of another shape that could not be widened is worth naming
    reshaped = sorted(k for k, v in src.items() if k in own and own[k].shape != v.shape and k not in widened)
    fresh = len(own) - len(hit) - len(widened)
    print(f"init from {folder}: {len(hit)}/{len(own)} tensors copied, {fresh} newly initialised"
          + (f"; widened with zero weights for the new input channels: {', '.join(sorted(widened))}" if widened else "")
          + (f"; of another shape there, so not copied: {', '.join(reshaped)}" if reshaped else ""), file=sys.stderr)


def build_model_for(cfg: TrainConfig, num_classes: int = 0):
    """A backbone from a preset name or a model-config file (.json/.yaml, the "model" section format),
    widened for `cfg.condition` (class embedding, text cross-attention, concat channels)."""
    from .conditioning.tasks import model_overrides, parse_condition
    from .config import load_yaml_or_json
    from .models import build_model, model_config_from_dict
    from .models.presets import get_preset

    if cfg.model.endswith((".json", ".yaml", ".yml")):
        mcfg = model_config_from_dict(load_yaml_or_json(cfg.model))
    else:
        mcfg = get_preset(cfg.model)
    if cfg.gradient_checkpointing:
        mcfg = dataclasses.replace(mcfg, gradient_checkpointing=True)
    mcfg = dataclasses.replace(mcfg, **model_overrides(parse_condition(cfg.condition), num_classes))
    if not 0.0 <= cfg.self_cond < 1.0:
        raise VidiffError(f"self_cond is the share of samples trained with self-conditioning, in [0, 1); got {cfg.self_cond}")
    if cfg.self_cond > 0:
        mcfg = dataclasses.replace(mcfg, self_cond=True)
    model = build_model(mcfg)
    if cfg.init_from:
        init_weights_from(model, cfg.init_from)
    model.check_size(cfg.frames, cfg.size, cfg.size)
    return model


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    """Train a video diffusion model; returns the checkpoint folder."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from .config import config_to_dict
    from .data.dataset import VideoDataset
    from .diffusion import diffusion_loss
    from .pipelines import DiffusionConfig, VideoFormat, sample_videos

    if cfg.steps is None and cfg.minutes is None:
        raise VidiffError("give a training budget: --steps N or --minutes M")
    if cfg.lr_schedule not in ("constant", "cosine"):
        raise VidiffError(f"unknown lr_schedule {cfg.lr_schedule!r}; use constant or cosine")
    if cfg.lr_schedule == "cosine" and cfg.steps is None:
        raise VidiffError("lr_schedule cosine decays over --steps N: give --steps (--minutes may stay as a cap)")
    from .diffusion.noise import FrameNoise

    noise_prior = FrameNoise(cfg.noise, cfg.noise_alpha)  # a bad prior fails here, before data and model are built
    if not cfg.data:
        raise VidiffError("give the training data: --data DIR (a folder of videos)")
    out = Path(cfg.out)
    if out.exists() and (out / "train_state").exists() and not resume:
        raise VidiffError(f"{out} already holds a run; pass --resume to continue it or choose another --out")

    if cfg.device not in ("auto", "cpu", "cuda"):
        raise VidiffError(f"unknown device {cfg.device!r}; use auto, cpu or cuda")
    use_cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
    # cpu=True is what makes accelerate set up gloo DDP when launched with several processes
    accelerator = Accelerator(mixed_precision="bf16" if cfg.bf16 else "no", cpu=use_cpu)
    rank, is_main = accelerator.process_index, accelerator.is_main_process

    dataset = VideoDataset(cfg.data, frames=cfg.frames, size=cfg.size, stride=cfg.stride,
                           cache="auto" if cfg.cache else False, seed=cfg.seed, progress=is_main,
                           captions=cfg.captions)
    from .conditioning.tasks import parse_condition, training_cond

    kinds = parse_condition(cfg.condition)
    text_encoder = None
    if "text" in kinds:
        from .conditioning.text import get_text_encoder

        text_encoder = get_text_encoder()
        text_encoder.encode(dataset.all_captions() or [""])  # cache all
    torch.manual_seed(cfg.seed)  # the initial weights are part of the recipe
    model = build_model_for(cfg, dataset.num_classes)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    diffusion = DiffusionConfig(schedule=cfg.schedule, schedule_kwargs=dict(cfg.schedule_kwargs),
                                parameterization=cfg.parameterization, noise=cfg.noise, noise_alpha=cfg.noise_alpha)
    schedule = diffusion.build_schedule()
    full_config = {
        "model": config_to_dict(model.config),
        "diffusion": config_to_dict(diffusion),
        "video": config_to_dict(VideoFormat(channels=3, frames=cfg.frames, size=cfg.size, fps=cfg.fps)),
        "conditioning": {"condition": "+".join(kinds) or "none", "cond_drop": cfg.cond_drop,
                         "text_encoder": "minilm" if text_encoder else None},
        "train": config_to_dict(cfg),
        "vidiff_version": _version(),
    }

    state = {"step": 0, "elapsed": 0.0, "losses": []}
    if resume:
        state = load_train_state(out, model, ema, optimizer)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw_model = accelerator.unwrap_model(model)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "samples").mkdir(exist_ok=True)

    total = cfg.steps if cfg.steps is not None else None
    budget_s = cfg.minutes * 60 if cfg.minutes is not None else math.inf
    bar = tqdm(total=total, initial=state["step"], disable=not is_main, unit="step",
               desc=f"training {cfg.model}", dynamic_ncols=True)
    log_path = out / "log.jsonl"

    def save():
        accelerator.wait_for_everyone()
        if is_main:
            save_train_state(out, raw_model, ema, optimizer, state, full_config)
            plot_loss(state["losses"], out / "loss.png")

    def preview():
        if is_main:
            from .data.io import tile_videos, to_uint8, write_gif

            n = min(cfg.num_samples, len(dataset))
            shown = [dataset[i] for i in range(n)]  # conditional models: the first videos' conditions
            pcond = training_cond(kinds, x0=torch.stack([it["video"] for it in shown]),
                                  class_ids=torch.tensor([it["class_id"] for it in shown]),
                                  captions=[it["caption"] for it in shown], text_encoder=text_encoder,
                                  drop_prob=0.0)
            x = sample_videos(ema, diffusion, (n, 3, cfg.frames, cfg.size, cfg.size),
                              steps=cfg.sample_steps, seed=0, cond=pcond)
            write_gif(out / "samples" / f"step_{state['step']:07d}.gif", tile_videos(to_uint8(x)),
                      fps=cfg.fps, scale=2)

    t_start = time.perf_counter() - state["elapsed"]
    interrupted = False
    restore_signals = _interrupt_on_signals()
    try:
        while True:
            step = state["step"]
            elapsed = time.perf_counter() - t_start
            stop = (total is not None and step >= total) or elapsed >= budget_s
            # every rank must take the same decision, or DDP would hang
            stop = bool(accelerator.reduce(torch.tensor(float(stop), device=accelerator.device), "sum").item() > 0)
            if stop:
                break
            g = step_generator(cfg.seed, step, rank)
            batch = sample_batch(dataset, cfg.batch, g, step)
            x0 = batch["video"].to(accelerator.device)  # (B, C, F, H, W)
            cond = training_cond(kinds, x0=x0, class_ids=batch["class_id"], captions=batch["caption"],
                                 text_encoder=text_encoder, drop_prob=cfg.cond_drop, generator=g)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(cfg, step)
            with accelerator.autocast():
                loss = diffusion_loss(model, x0, schedule, parameterization=cfg.parameterization,
                                      cond=cond, weighting=cfg.loss_weighting, generator=g,
                                      noise_prior=noise_prior, self_cond_prob=cfg.self_cond)
            accelerator.backward(loss)
            if cfg.grad_clip:
                accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            update_ema(ema, raw_model, min(cfg.ema_decay, (1 + step) / (10 + step)))

            mean_loss = accelerator.reduce(loss.detach().float(), "mean").item()
            state["losses"].append(mean_loss)
            state["step"] = step + 1
            state["elapsed"] = time.perf_counter() - t_start
            bar.update(1)
            if state["step"] % cfg.log_every == 0 and is_main:
                recent = state["losses"][-cfg.log_every:]
                bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}")
                with open(log_path, "a") as fh:
                    fh.write(json.dumps({"step": state["step"], "loss": sum(recent) / len(recent),
                                         "elapsed": round(state["elapsed"], 2)}) + "\n")
            if cfg.save_every and state["step"] % cfg.save_every == 0:
                save()
            if state["step"] in cfg.snapshot_steps and is_main:
                from .checkpoint import save_pretrained

                save_pretrained(out / "snapshots" / f"step_{state['step']:07d}", ema,
                                {**full_config, "summary": _summary(state, raw_model)})
            if cfg.sample_every and state["step"] % cfg.sample_every == 0:
                preview()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        restore_signals()
    bar.close()
    state["rank_checksums"] = weight_checksums(accelerator, raw_model)
    save()
    if is_main:
        msg = (f"interrupted at step {state['step']}: saved a resumable checkpoint to {out} "
               f"(continue with --resume)") if interrupted else \
              f"trained {state['step']} steps in {state['elapsed'] / 60:.1f} min; checkpoint: {out}"
        print(msg, file=sys.stderr)
    if interrupted:
        raise KeyboardInterrupt
    if state["step"] > 0 and (not cfg.sample_every or state["step"] % cfg.sample_every):
        preview()
    accelerator.end_training()
    return out


def _interrupt_on_signals():
    """Make SIGINT and SIGTERM (schedulers, preemption) raise KeyboardInterrupt, so the loop saves a
    resumable checkpoint; returns a function restoring the previous handlers."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    return lambda: [signal.signal(s, h) for s, h in previous.items()]


def _version() -> str:
    from . import __version__

    return __version__


# ---------------------------------------------------------------------------------------------
# command line

def config_from_args(config_file: Optional[str], overrides: dict) -> TrainConfig:
    """A recipe file (YAML/JSON) with command-line flags taking precedence."""
    from .config import config_from_dict, load_yaml_or_json

    base = load_yaml_or_json(config_file) if config_file else {}
    base.update({k: v for k, v in overrides.items() if v is not None})
    return config_from_dict(TrainConfig, base, where="train config")


def main(argv: Optional[list[str]] = None) -> int:
    """`python -m vidiff.train ...` (what `accelerate launch -m vidiff.train` runs)."""
    from .cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
