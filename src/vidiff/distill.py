"""Progressive distillation (Salimans & Ho 2022, Algorithm 2): halve a model's DDIM steps each round.

    vidiff distill shapes-tiny --data data/shapes --out runs/distill --rounds 3 --start-steps 64 --steps-per-round 2000
    vidiff sample --model runs/distill/steps-8 --steps 8

Round r starts a student from the teacher (round 1: the given model; later: the previous student) and
trains it so that ONE deterministic DDIM step of the student from z_t to t'' = t − 1/N equals TWO DDIM
steps of the teacher (t → t' = t − 1/2N → t''), N the student's step count, t = i/N, i ~ U{1, …, N}:

    z_t' = α_t' x̂_η(z_t) + (σ_t'/σ_t)(z_t − α_t x̂_η(z_t)),   z_t'' likewise from z_t',
    x̃ = (z_t'' − (σ_t''/σ_t) z_t) / (α_t'' − (σ_t''/σ_t) α_t),
    L = max(α_t²/σ_t², 1) ‖x̃ − x̂_θ(z_t)‖²        ("truncated SNR" weighting).

The teacher's steps use `vidiff.diffusion.ddim_step` (η = 0: z_s = α_s x̂ + σ_s ε̂) on the `Denoiser`'s
consistent prediction; x̃ inverts that same step (it is not a DDIM update, so it lives here). The grid
t = i/N is the samplers' "uniform" spacing, ending at t = 0 where α = 1, σ = 0, so the student of round r
is sampled with `--steps N --sampler ddim`. Each round is saved as a checkpoint folder OUT/steps-N
(model.safetensors + config.json with a "distill" section, its losses.json, log.jsonl and the round's resumable
`train_state/`; `--resume` continues an interrupted run: finished rounds are loaded, the current one resumes
exactly). The learning rate decays linearly to 0 within each round; the student is saved as trained (no EMA).
Every round runs on the trainer core (`vidiff.training`).

Guided distillation (Meng et al. 2023, "On distillation of guided diffusion models"): a teacher that
ships an autoguidance guide (`vidiff export --guide`) is distilled *with* its guidance — the
round-1 targets come from the guided teacher x̂ = x̂_θ + w (x̂_θ − x̂_guide) (`--autoguidance W`; default:
the checkpoint's own weight; 0: the plain teacher) — so the students sample the guided model with one
forward per step and ship without a guide.
"""
from __future__ import annotations

import copy
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor

from .checkpoint import save_pretrained
from .conditioning.tasks import training_cond
from .conditioning.text import get_text_encoder
from .config import config_from_dict, config_to_dict
from .data.dataset import VideoDataset
from .diffusion import Denoiser, ddim_step
from .diffusion.noise import randn
from .diffusion.param import broadcast
from .pipelines import LatentVideoPipeline, load_pipeline, resolve_model
from .pipelines.base import is_self_conditioned
from .training import LoopConfig, OptimizerSpec, StepBatches, Task, Trainer, make_accelerator, step_seed
from .training import state as train_state
from .training.loop import summary
from .utils import VidiffError, atomic_write_text

__all__ = ["DistillConfig", "distill", "distill_loss", "two_step_target", "grid_alpha_sigma"]


@dataclass(frozen=True)
class DistillConfig:
    """A progressive-distillation run: teacher, data, the step counts and the per-round budget."""

    teacher: str
    data: str
    out: str
    start_steps: int = 64
    rounds: int = 3
    steps_per_round: Optional[int] = None
    minutes_per_round: Optional[float] = None
    batch: int = 8
    lr: float = 1e-4
    grad_clip: float = 1.0
    stride: int = 1
    seed: int = 0
    autoguidance: Optional[float] = None  # weight of the teacher's guide model in round 1 (None: its default, 0: off)
    log_every: int = 10
    cache: bool = True
    device: str = "auto"


# --- the target and the loss (Algorithm 2) -------------------------------------------------------

def grid_alpha_sigma(schedule, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
    """(α_t, σ_t) for per-sample grid times t (B,), broadcast to `like`; t = 0 is the data (α = 1, σ = 0),
    the end point the samplers use."""
    a, s = schedule.alpha_sigma(t.double())  # (B,) float64
    end = t == 0
    a, s = torch.where(end, torch.ones_like(a), a), torch.where(end, torch.zeros_like(s), s)
    return broadcast(a.to(like.dtype), like), broadcast(s.to(like.dtype), like)


@torch.no_grad()
def two_step_target(teacher, z: Tensor, i: Tensor, steps: int, schedule, cond: Any = None) -> tuple[Tensor, Tensor]:
    """Algorithm 2 (Salimans & Ho 2022): from z_t at t = i/N (i (B,) in 1..N, N = `steps` student steps)
    take two DDIM steps of the `teacher` denoiser to t'' = (i − 1)/N; return (x̃, z_t''), x̃ being the
    x̂ with which one DDIM step from t lands exactly on z_t''."""
    i = i.to(torch.float64)
    t, t1, t2 = i / steps, (2 * i - 1) / (2 * steps), (i - 1) / steps  # (B,) t > t' > t''
    a, s = grid_alpha_sigma(schedule, t, z)
    a1, s1 = grid_alpha_sigma(schedule, t1, z)
    a2, s2 = grid_alpha_sigma(schedule, t2, z)
    z1 = ddim_step(teacher(z, t.to(z.dtype), schedule, cond), a1, s1)  # z_t' (B, C, F, H, W)
    z2 = ddim_step(teacher(z1, t1.to(z.dtype), schedule, cond), a2, s2)  # z_t''
    x_tilde = (z2 - (s2 / s) * z) / (a2 - (s2 / s) * a)  # (B, C, F, H, W)
    return x_tilde, z2


def distill_loss(student, teacher, x0: Tensor, schedule, steps: int, *, cond: Any = None,
                 generator: torch.Generator | None = None, noise_prior=None) -> Tensor:
    """One batch of Algorithm 2: E_i,ε max(SNR_t, 1) ‖x̃ − x̂_θ(z_t)‖² with t = i/N, i ~ U{1..N};
    `student`, `teacher` are `Denoiser`s, x0 (B, C, F, H, W); ε follows the teacher's `noise_prior`."""
    B = x0.shape[0]
    i = torch.randint(1, steps + 1, (B,), generator=generator).to(x0.device)  # (B,) student step index
    eps = randn(x0.shape, generator, x0)
    if noise_prior is not None:
        eps = noise_prior(eps)
    t = i.double() / steps
    a, s = grid_alpha_sigma(schedule, t, x0)
    z = a * x0 + s * eps  # (B, C, F, H, W)
    x_tilde, _ = two_step_target(teacher, z, i, steps, schedule, cond)
    pred = student(z, t.to(x0.dtype), schedule, cond)  # Prediction with grad
    weight = schedule.logsnr(t).exp().clamp(min=1.0).to(x0.device, torch.float32)  # max(SNR, 1), (B,)
    err = (pred.x0.float() - x_tilde.float()).pow(2).reshape(B, -1).mean(1)  # (B,)
    return (weight * err).mean()


# --- the loop ------------------------------------------------------------------------------------

def distill(teacher: str, out: str, *, data: str, start_steps: int = 64, rounds: int = 3,
            steps_per_round: int | None = None, minutes_per_round: float | None = None, batch: int = 8,
            lr: float = 1e-4, progress: bool = True, resume: bool = False, **options) -> list[Path]:
    """Distil `teacher` (bundled name or checkpoint folder) from `start_steps` DDIM steps to
    start_steps / 2^rounds (Salimans & Ho 2022, Algorithm 2); returns the round folders OUT/steps-N.
    `resume` continues an interrupted run in `out`. `options`: the other fields of `DistillConfig`
    (grad_clip, stride, seed, autoguidance, log_every, cache, device)."""
    cfg = config_from_dict(DistillConfig, dict(teacher=teacher, out=out, data=data, start_steps=start_steps,
                                               rounds=rounds, steps_per_round=steps_per_round,
                                               minutes_per_round=minutes_per_round, batch=batch, lr=lr, **options),
                           where="distill")
    return run_distill(cfg, progress=progress, resume=resume)


def _check(cfg: DistillConfig) -> None:
    if cfg.steps_per_round is None and cfg.minutes_per_round is None:
        raise VidiffError("give a budget per round: --steps-per-round N and/or --minutes-per-round M")
    if cfg.rounds < 1:
        raise VidiffError(f"--rounds must be at least 1; got {cfg.rounds}")
    if cfg.start_steps < 2 or cfg.start_steps % 2 ** cfg.rounds:
        raise VidiffError(f"--start-steps {cfg.start_steps} cannot be halved {cfg.rounds} time(s); use a multiple "
                          f"of {2 ** cfg.rounds} (e.g. 64 for up to 6 rounds)")
    if not cfg.data:
        raise VidiffError("give the training data: --data DIR (a folder of videos like the teacher's)")
    if cfg.batch < 1 or cfg.lr <= 0:
        raise VidiffError(f"--batch must be >= 1 and --lr > 0; got {cfg.batch}, {cfg.lr}")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise VidiffError(f"unknown device {cfg.device!r}; use auto, cpu or cuda")


class DistillTask(Task):
    """One round: the student's loss against two DDIM steps of the frozen teacher (`distill_loss`); the
    export is the round's checkpoint folder (student weights, config with a "distill" section, losses.json)."""

    def __init__(self, teacher, param: str, steps: int, schedule, prior, kinds, text_encoder, cond_drop: float,
                 config: dict, to_x0=None):
        self.teacher, self.param, self.steps, self.schedule, self.prior = teacher, param, steps, schedule, prior
        self.kinds, self.text_encoder, self.cond_drop, self.config = kinds, text_encoder, cond_drop, config
        self.to_x0 = to_x0  # a latent teacher's clips -> its scaled latents

    def losses(self, trainer, batch, step, generator):
        x0 = batch["video"].to(trainer.device)  # (B, C, F, H, W)
        if self.to_x0 is not None:
            x0 = self.to_x0(x0).to(trainer.device)  # (B, C_lat, f, h, w)
        cond = training_cond(self.kinds, x0=x0, class_ids=batch["class_id"], captions=batch["caption"],
                             text_encoder=self.text_encoder, drop_prob=self.cond_drop, generator=generator)
        student = Denoiser(trainer.modules["student"], self.param)
        return {"student": distill_loss(student, self.teacher, x0, self.schedule, self.steps, cond=cond,
                                        generator=generator, noise_prior=self.prior)}

    def export(self, trainer, folder):
        losses = trainer.state["losses"]
        config = {**self.config, "summary": {**summary(trainer.state, {"student": trainer.raw["student"]}),
                                             "first_loss": losses[0] if losses else None}}
        save_pretrained(folder, trainer.raw["student"], config)
        atomic_write_text(Path(folder) / "losses.json", json.dumps(losses) + "\n")


def run_distill(cfg: DistillConfig, progress: bool = True, resume: bool = False) -> list[Path]:
    """Run every round of `cfg`; see `distill`."""
    _check(cfg)
    out = Path(cfg.out)
    if not resume and any(train_state.committed(d) is not None for d in out.glob("steps-*")):
        raise VidiffError(f"{out} already holds a distillation; pass --resume to continue it or choose another --out")
    folder = resolve_model(cfg.teacher)
    pipe = load_pipeline(str(folder))
    if is_self_conditioned(pipe.model):
        raise VidiffError(f"{cfg.teacher} is self-conditioned (it reads its previous x̂₀), which progressive "
                          "distillation does not handle yet; distil a model trained without --self-cond")
    accelerator = make_accelerator(cfg.device)
    device = accelerator.device
    param = pipe.diffusion.parameterization
    if param == "eps":
        print("note: ε-prediction students are unstable at few steps (x̂ = (z − σ ε̂)/α blows up as α → 0; "
              "Salimans & Ho 2022 §4); v-prediction teachers distil best", file=sys.stderr)
    schedule = pipe.diffusion.build_schedule()
    prior = pipe.diffusion.build_noise()
    kinds = pipe.condition
    cond_drop = float(pipe.config.get("conditioning", {}).get("cond_drop", 0.1))
    text_encoder = get_text_encoder() if "text" in kinds else None
    to_x0 = None
    if isinstance(pipe, LatentVideoPipeline):  # clips in the teacher's latent space; the students record its VAE
        pipe.autoencoder.to(device)
        dataset, to_x0 = pipe.clip_dataset(cfg.data, stride=cfg.stride, cache=cfg.cache, seed=cfg.seed,
                                           progress=progress and accelerator.is_main_process)
    else:
        dataset = VideoDataset(cfg.data, frames=pipe.video.frames, size=pipe.video.size, stride=cfg.stride,
                               cache="auto" if cfg.cache else False, seed=cfg.seed,
                               progress=progress and accelerator.is_main_process)
    student = copy.deepcopy(pipe.model).train().requires_grad_(True)
    # guided distillation: round 1 learns the guided teacher; later students inherit its guidance
    ag_spec = pipe.autoguidance_spec(cfg.autoguidance)
    if ag_spec is not None:
        pipe.guide.to(device).requires_grad_(False)
        print(f"round 1 distils the autoguided teacher ({ag_spec}); the students need no guide", file=sys.stderr)
    teacher_steps, teacher_name, folders = cfg.start_steps, str(folder), []
    base = {k: v for k, v in pipe.config.items() if k != "autoguidance"}  # the student ships no guide
    if isinstance(pipe, LatentVideoPipeline) and base.get("latent"):
        base["latent"] = pipe.latent_section()  # where the teacher's autoencoder was found

    for r in range(1, cfg.rounds + 1):
        n = teacher_steps // 2  # the student's DDIM steps
        teacher = copy.deepcopy(student).to(device).eval().requires_grad_(False)
        den_t = Denoiser(teacher, param)
        if r == 1:
            den_t = pipe.with_autoguidance(den_t, ag_spec)
        dest = out / f"steps-{n}"
        config = {**base, "diffusion": config_to_dict(pipe.diffusion), "video": config_to_dict(pipe.video),
                  "distill": {"steps": n, "teacher_steps": teacher_steps, "round": r, "rounds": cfg.rounds,
                              "teacher": teacher_name, "sampler": "ddim", "spacing": "uniform",
                              "weighting": "truncated_snr", "autoguidance": ag_spec,
                              "recipe": config_to_dict(cfg)}}
        task = DistillTask(den_t, param, n, schedule, prior, kinds, text_encoder, cond_drop, config, to_x0)
        seed = step_seed(cfg.seed, r)  # every round draws its own batches and noise
        loop = LoopConfig(steps=cfg.steps_per_round, minutes=cfg.minutes_per_round, seed=seed,
                          log_every=cfg.log_every, device=cfg.device, progress=progress,
                          desc=f"round {r}/{cfg.rounds}: {teacher_steps} -> {n} steps")
        spec = OptimizerSpec("student", lr=cfg.lr, grad_clip=cfg.grad_clip,
                             schedule=lambda step, done: cfg.lr * (1 - done))  # linear decay to 0 over the round
        trainer = Trainer({"student": student}, {"student": spec}, task, config=loop, run_dir=dest,
                          accelerator=accelerator)
        state = trainer.fit(StepBatches(dataset, cfg.batch, seed=seed),
                            resume=resume and train_state.committed(dest) is not None)
        tail = state["losses"][-50:]
        if accelerator.is_main_process:
            print(f"round {r}: distilled {teacher_steps} -> {n} DDIM steps in {state['step']} updates "
                  f"({state['elapsed'] / 60:.1f} min, loss {sum(tail) / len(tail) if tail else None}); "
                  f"checkpoint: {dest} (sample with --steps {n})", file=sys.stderr)
        folders.append(dest)
        teacher_steps, teacher_name = n, str(dest)
    return folders
