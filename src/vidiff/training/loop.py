"""The one training loop of vidiff, on Hugging Face accelerate: a `Task` turns a batch into losses, the
`Trainer` does the rest.

    trainer = Trainer({"model": net}, {"model": OptimizerSpec("model", lr=1e-4, grad_clip=1.0)}, task,
                      run_dir="runs/x", config=LoopConfig(steps=1000, save_every=500), ema={"model": 0.999})
    state = trainer.fit(StepBatches(dataset, batch=8, seed=0), resume=False)

What the loop owns, once for every trainer of the package:
- a budget in steps and/or minutes, counted over resumes, and a progress bar;
- per-step randomness: the task draws from `step_generator(seed, step, rank)`, batches come from
  `StepBatches` (a pure function of the same triple), the global torch RNG is reseeded each step — so a
  resumed run reproduces the uninterrupted one bit for bit on CPU;
- several named modules and optimizers in one state (an autoencoder and its discriminator), each
  optimizer stepping on its own loss, in the order the task returns them; frozen parameters (`trainable`)
  get no gradient and no optimizer state and stay bit-identical;
- EMA copies, the learning-rate schedule, gradient clipping;
- log.jsonl, loss.png, previews and snapshots through the task's hooks;
- the checkpoint as one unit (`state.py`) every `save_every` steps, at the end, and on SIGINT/SIGTERM
  (then `KeyboardInterrupt` is raised: the CLI exits with code 130);
- a non-finite loss stops the run with one line and no save, so the last good checkpoint is kept.
"""
from __future__ import annotations

import copy
import hashlib
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from ..checkpoint import dumps_json
from ..utils import VidiffError, atomic_path
from . import state as train_state
from .data import GLOBAL_STREAM, StepBatches, batches_from, step_generator, step_seed
from .surgery import freeze

try:
    import fcntl  # the run folder's lock; absent on Windows, where runs are not locked
except ImportError:  # pragma: no cover
    fcntl = None

OPTIMIZERS = ("adamw", "adam")


@dataclass(frozen=True)
class LoopConfig:
    """The loop's budget and bookkeeping (a recipe's own settings live in its task)."""

    steps: int | None = None
    minutes: float | None = None  # wall clock, total over resumes
    seed: int = 0
    log_every: int = 10
    save_every: int = 0  # 0: only at the end (and on interrupt)
    sample_every: int = 0  # the task's preview; 0: only at the end
    snapshot_steps: tuple[int, ...] = ()  # the task's export of these steps kept in RUN/snapshots/step_N
    bf16: bool = False
    device: str = "auto"  # auto | cpu | cuda
    progress: bool = True
    desc: str = "training"


@dataclass
class OptimizerSpec:
    """An optimizer over the trainable parameters of named modules; `schedule(step, done)` gives the
    learning rate of a step (`done`: the share of the budget used, in [0, 1]); None keeps `lr`."""

    modules: str | tuple[str, ...]
    lr: float
    kind: str = "adamw"
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 0.0
    schedule: Callable[[int, float], float] | None = None

    @property
    def module_names(self) -> tuple[str, ...]:
        return (self.modules,) if isinstance(self.modules, str) else tuple(self.modules)


class Task:
    """What a trainer trains: `losses` turns a batch into {optimizer name: loss} (applied in that order;
    the first optimizer's loss is required every step, the others may be left out, e.g. before a
    discriminator's warm-up ends). The hooks are optional."""

    def losses(self, trainer: "Trainer", batch: Any, step: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def setup(self, trainer: "Trainer") -> None:
        """Called once the modules are on their device and in train mode (e.g. to put frozen parts in eval)."""

    def export(self, trainer: "Trainer", folder: Path) -> None:
        """Write what users load (e.g. the EMA weights + config.json) into `folder`; main process only."""

    def preview(self, trainer: "Trainer") -> None:
        """Write a preview (e.g. RUN/samples/step_N.gif); main process only."""

    def state_dict(self) -> dict:
        """Extra JSON-able state of the task to resume with."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def check_budget(steps: int | None, minutes: float | None) -> None:
    """One-line errors for a training budget that cannot run: none given, or not positive."""
    if steps is None and minutes is None:
        raise VidiffError("give a training budget: --steps N or --minutes M")
    if steps is not None and steps < 1:
        raise VidiffError(f"--steps must be at least 1; got {steps}")
    if minutes is not None and not minutes > 0:
        raise VidiffError(f"--minutes must be > 0; got {minutes}")


def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay · ema + (1 − decay) · model for trainable parameters (frozen ones are equal already);
    buffers are copied."""
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            if p.requires_grad:
                e.lerp_(p.detach().to(e.dtype), 1 - decay)
        for e, b in zip(ema.buffers(), model.buffers()):
            e.copy_(b)


def ema_decay_at(decay: float, step: int) -> float:
    """The EMA decay of a step: min(decay, (1 + step) / (10 + step)), short memory early in training."""
    return min(decay, (1 + step) / (10 + step))


def make_accelerator(device: str = "auto", bf16: bool = False):
    """An `accelerate.Accelerator` on CUDA when present (device "auto") or asked for, else on CPU; launched
    with several processes it sets up DDP (NCCL on GPUs, gloo on CPUs)."""
    from accelerate import Accelerator  # heavy: only when a run starts

    if device not in ("auto", "cpu", "cuda"):
        raise VidiffError(f"unknown device {device!r}; use auto, cpu or cuda")
    use_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    # cpu=True is what makes accelerate set up gloo DDP when launched with several processes
    return Accelerator(mixed_precision="bf16" if bf16 else "no", cpu=use_cpu)


def make_optimizer(spec: OptimizerSpec, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if spec.kind not in OPTIMIZERS:
        raise VidiffError(f"unknown optimizer {spec.kind!r}; choose one of {', '.join(OPTIMIZERS)}")
    if not spec.lr > 0:
        raise VidiffError(f"the learning rate must be > 0; got {spec.lr}")
    cls = torch.optim.AdamW if spec.kind == "adamw" else torch.optim.Adam
    return cls(params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)


def weight_checksum(model: nn.Module) -> int:
    """A 63-bit hash of a module's weights (every rank's are equal under DDP)."""
    h = hashlib.sha256()
    for p in model.state_dict().values():
        h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return int.from_bytes(h.digest()[:8], "little") >> 1


def plot_loss(losses: list[float], path: Path) -> None:
    """Loss curve (raw and smoothed) as PNG."""
    import matplotlib  # heavy, optional: only when a curve is drawn

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
    if losses and min(losses) > 0:
        ax.set_yscale("log")
    ax.legend()
    fig.subplots_adjust(left=0.17, right=0.97, bottom=0.14, top=0.96)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def summary(state: dict, modules: dict[str, nn.Module]) -> dict:
    """Steps, minutes, the mean of the last 50 losses and parameter counts, for config.json."""
    tail = state.get("losses", [])[-50:]
    return {"steps": state["step"], "elapsed_s": round(state["elapsed"], 1),
            "final_loss": (sum(tail) / len(tail)) if tail else None,
            "params": sum(p.numel() for m in modules.values() for p in m.parameters())}


class Trainer:
    """Trains named `modules` with `optimizers` on a `task`'s losses; see the module docstring.

    `ema` maps module names to EMA decays; `trainable` says which parameters train: a predicate on
    ("module.parameter" name, parameter), a list of such names (or of their prefixes ending in "."), or
    None for every parameter that requires grad. `run_dir` None trains in memory (no state, no logs).
    After `fit`, `trainer.raw[name]` and `trainer.ema[name]` hold the trained modules."""

    def __init__(self, modules: dict[str, nn.Module], optimizers: dict[str, OptimizerSpec], task: Task, *,
                 config: LoopConfig, run_dir: str | Path | None = None, ema: dict[str, float] | None = None,
                 trainable: Callable[[str, nn.Parameter], bool] | Iterable[str] | None = None,
                 callback: Callable[[int, dict[str, float]], None] | None = None, accelerator=None):
        if config.steps is None and config.minutes is None:
            raise VidiffError("give a training budget: --steps N or --minutes M")
        if (config.steps is not None and config.steps < 0) or (config.minutes is not None and config.minutes < 0):
            raise VidiffError(f"the budget must be >= 0; got steps={config.steps}, minutes={config.minutes}")
        if config.device not in ("auto", "cpu", "cuda"):
            raise VidiffError(f"unknown device {config.device!r}; use auto, cpu or cuda")
        if not optimizers:
            raise VidiffError("a trainer needs at least one optimizer")
        for name, spec in optimizers.items():
            unknown = [m for m in spec.module_names if m not in modules]
            if unknown:
                raise VidiffError(f"optimizer {name!r} names unknown module(s) {unknown}; modules: {sorted(modules)}")
        self.config, self.task, self.callback = config, task, callback
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.raw = dict(modules)
        self.specs = dict(optimizers)
        self.ema_decay = dict(ema or {})
        self.trainable = trainable
        self.state: dict = {"step": 0, "elapsed": 0.0, "losses": []}
        self.accelerator = accelerator
        self._saving = self._pending_interrupt = False

    # --- set-up -------------------------------------------------------------------------------------

    def _setup(self, resume: bool) -> None:
        if self.accelerator is None:
            self.accelerator = make_accelerator(self.config.device, self.config.bf16)
        acc = self.accelerator
        self.device, self.rank, self.is_main = acc.device, acc.process_index, acc.is_main_process
        if self.run_dir is not None:
            self._claim_run_dir(resume)
        self._restore_grad = freeze(self.raw, self.trainable)
        self.params = {}
        for name, spec in self.specs.items():
            params = [p for m in spec.module_names for p in self.raw[m].parameters() if p.requires_grad]
            if not params:
                raise VidiffError(f"optimizer {name!r} has no trainable parameters in {list(spec.module_names)}")
            self.params[name] = params
        self.ema = {n: copy.deepcopy(self.raw[n]).requires_grad_(False) for n in self.ema_decay}
        optimizers = {n: make_optimizer(s, self.params[n]) for n, s in self.specs.items()}
        if resume:
            saved = train_state.load_state(self.run_dir, modules=self.raw, emas=self.ema, optimizers=optimizers)
            self.state = {k: v for k, v in saved.items() if k not in ("files", "format")}
            self.task.load_state_dict(saved.get("task", {}))
        for m in self.ema.values():
            m.to(self.device)
        # modules with trainable parameters are prepared (DDP under several processes); the others only moved
        trained = sorted({m for s in self.specs.values() for m in s.module_names})
        prepared = acc.prepare(*[self.raw[m] for m in trained], *optimizers.values())
        self.modules = {n: (prepared[trained.index(n)] if n in trained else m.to(self.device))
                        for n, m in self.raw.items()}
        self.optimizers = dict(zip(optimizers, prepared[len(trained):]))
        for m in self.modules.values():
            m.train()
        self.task.setup(self)
        if self.run_dir is not None and self.is_main:
            train_state.truncate_log(self.run_dir / "log.jsonl", self.state["step"])
        acc.wait_for_everyone()

    def _claim_run_dir(self, resume: bool) -> None:
        """Lock the run folder for this run, refuse to overwrite a run, and clean what a crash left
        (the main process decides; every process raises the same error, so DDP never hangs)."""
        run, error = self.run_dir, None
        if self.is_main:
            try:
                self._lock_and_clean(run, resume)
            except VidiffError as e:
                error = e
        if self._agree(error is not None):
            raise error or VidiffError(f"the main process refused the run folder {run}")
        self.accelerator.wait_for_everyone()

    def _lock_and_clean(self, run: Path, resume: bool) -> None:
        has_state = train_state.committed(run) is not None or (run / train_state.STATE_DIR / "state.json").is_file()
        if has_state and not resume:
            raise VidiffError(f"{run} already holds a run; pass --resume to continue it or choose another --out")
        try:
            run.mkdir(parents=True, exist_ok=True)
            self._lock = open(run / ".lock", "a")
        except OSError as e:
            raise VidiffError(f"cannot write to {run}: {e.strerror}; choose another --out") from None
        if fcntl is not None:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise VidiffError(f"another training is writing to {run}; wait for it to end or choose another "
                                  "--out") from None
        train_state.clean_orphans(run)

    # --- the loop -------------------------------------------------------------------------------------

    def fit(self, batches: StepBatches | Iterable, resume: bool = False) -> dict:
        """Train until the budget is spent; returns the final state (step, elapsed, losses, ...)."""
        if resume and self.run_dir is None:
            raise VidiffError("resuming needs a run folder")
        try:
            self._setup(resume)
            return self._fit(batches)
        finally:
            for p, flag in getattr(self, "_restore_grad", []):
                p.requires_grad_(flag)
            if getattr(self, "_lock", None) is not None:
                self._lock.close()

    def _fit(self, batches) -> dict:
        cfg, acc, state = self.config, self.accelerator, self.state
        total = cfg.steps
        budget_s = cfg.minutes * 60 if cfg.minutes is not None else math.inf
        main_opt = next(iter(self.specs))
        it = batches_from(batches, state["step"], self.rank)
        bar = tqdm(total=total, initial=state["step"], disable=not (cfg.progress and self.is_main), unit="step",
                   desc=cfg.desc, dynamic_ncols=True)
        t_start = time.perf_counter() - state["elapsed"]
        interrupted, last_preview = False, -1
        restore_signals = self._interrupt_on_signals()
        try:
            while True:
                step = state["step"]
                elapsed = time.perf_counter() - t_start
                stop = (total is not None and step >= total) or elapsed >= budget_s
                if self._agree(stop):  # every rank takes the same decision, or DDP would hang
                    break
                done = max(step / total if total else 0.0, elapsed / budget_s)
                batch = next(it)
                self._seed_global_rng(step_seed(cfg.seed, step, self.rank, GLOBAL_STREAM))
                g = step_generator(cfg.seed, step, self.rank)
                for name, opt in self.optimizers.items():
                    spec = self.specs[name]
                    lr = spec.schedule(step, done) if spec.schedule else spec.lr
                    for group in opt.param_groups:
                        group["lr"] = lr
                with acc.autocast():
                    losses = self.task.losses(self, batch, step, g)
                if main_opt not in losses or any(n not in self.specs for n in losses):
                    raise VidiffError(f"the task returned losses for {sorted(losses)}; it must give {main_opt!r} "
                                      f"every step and name only optimizers ({sorted(self.specs)})")
                values = {n: acc.reduce(v.detach().float(), "mean").item() for n, v in losses.items()}
                bad = next((n for n, v in values.items() if not math.isfinite(v)), None)
                if bad is not None:
                    raise self._diverged(bad, values[bad], step)
                for name, loss in losses.items():
                    opt = self.optimizers[name]
                    opt.zero_grad(set_to_none=True)
                    acc.backward(loss)
                    if self.specs[name].grad_clip:
                        acc.clip_grad_norm_(self.params[name], self.specs[name].grad_clip)
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                for name, module in self.ema.items():
                    update_ema(module, self.raw[name], ema_decay_at(self.ema_decay[name], step))
                self._record(values, main_opt)
                state["step"] = step + 1
                state["elapsed"] = time.perf_counter() - t_start
                bar.update(1)
                if self.callback is not None:
                    self.callback(step, values)
                if state["step"] % max(1, cfg.log_every) == 0:
                    bar.set_postfix(loss=f"{self._recent(cfg.log_every):.4f}")
                    self._log()
                if cfg.save_every and state["step"] % cfg.save_every == 0:
                    self.save()
                if state["step"] in cfg.snapshot_steps and self.is_main and self.run_dir is not None:
                    self.task.export(self, self.run_dir / "snapshots" / train_state.step_name(state["step"]))
                if cfg.sample_every and state["step"] % cfg.sample_every == 0 and self.is_main:
                    self.task.preview(self)
                    last_preview = state["step"]
        except KeyboardInterrupt:
            interrupted = True
        finally:
            restore_signals()
            bar.close()
        self.save()
        if self.is_main and self.run_dir is not None:
            if interrupted:
                print(f"interrupted at step {state['step']}: saved a resumable checkpoint to {self.run_dir} "
                      "(continue with --resume)", file=sys.stderr)
            else:
                print(f"trained {state['step']} steps in {state['elapsed'] / 60:.1f} min; checkpoint: "
                      f"{self.run_dir}", file=sys.stderr)
        if interrupted:
            raise KeyboardInterrupt
        if self.is_main and state["step"] > 0 and last_preview != state["step"]:
            self.task.preview(self)
        acc.wait_for_everyone()
        return state

    def _seed_global_rng(self, seed: int) -> None:
        """Reseed the global RNG of the CPU and of the training device (dropout and other draws without a
        generator), cheaper than `torch.manual_seed`, which also reaches every lazy accelerator backend."""
        torch.default_generator.manual_seed(seed)
        if self.device.type == "cuda":
            torch.cuda.manual_seed(seed)

    def _agree(self, flag: bool) -> bool:
        """True on every rank when `flag` is True on any."""
        if self.accelerator.num_processes == 1:
            return flag
        t = torch.tensor(float(flag), device=self.device)
        return bool(self.accelerator.reduce(t, "sum").item() > 0)

    def _record(self, values: dict[str, float], main_opt: str) -> None:
        self.state["losses"].append(values[main_opt])
        if len(self.specs) > 1:
            other = self.state.setdefault("other_losses", {n: [] for n in self.specs if n != main_opt})
            for n, seq in other.items():
                seq.append(values.get(n))

    def _recent(self, k: int, seq: list | None = None) -> float:
        vals = [v for v in (self.state["losses"] if seq is None else seq)[-max(1, k):] if v is not None]
        return sum(vals) / len(vals) if vals else float("nan")

    def _log(self) -> None:
        if not self.is_main or self.run_dir is None:
            return
        k = self.config.log_every
        entry = {"step": self.state["step"], "loss": self._recent(k), "elapsed": round(self.state["elapsed"], 2)}
        for n, seq in self.state.get("other_losses", {}).items():
            entry[f"loss_{n}"] = self._recent(k, seq)
        with open(self.run_dir / "log.jsonl", "a") as fh:
            fh.write(dumps_json(entry))

    def _diverged(self, name: str, value: float, step: int) -> VidiffError:
        kept = train_state.committed(self.run_dir) if self.run_dir is not None else None
        where = (f"{self.run_dir} keeps the checkpoint of step {int(kept.name[5:])}; resume it with a lower "
                 "learning rate" if kept is not None else "no checkpoint was saved before; start again with a lower "
                 "learning rate")
        if self.config.bf16:
            where += " or without --bf16"
        return VidiffError(f"the {name} loss became {value} at step {step}, so training stopped without saving: "
                           f"{where}")

    # --- saving -----------------------------------------------------------------------------------------

    def save(self) -> None:
        """Commit the training state (all processes call this), then the task's export and loss.png."""
        if self.run_dir is None:
            return
        acc = self.accelerator
        acc.wait_for_everyone()
        meta = {k: v for k, v in self.state.items() if k not in ("step", "files", "format")}
        if acc.num_processes > 1:
            mine = torch.tensor([weight_checksum(next(iter(self.raw.values())))], device=self.device)
            meta["rank_checksums"] = [int(v) for v in acc.gather(mine).tolist()]
            self.state["rank_checksums"] = meta["rank_checksums"]
        meta["task"] = self.task.state_dict()
        if self.is_main:
            self._saving = True
            step_dir = self.run_dir / train_state.STATE_DIR / train_state.step_name(self.state["step"])
            again = train_state.committed(self.run_dir) == step_dir  # saved at this step already
            try:
                train_state.save_state(self.run_dir, self.state["step"], modules=self.raw, emas=self.ema,
                                       optimizers={n: getattr(o, "optimizer", o) for n, o in self.optimizers.items()},
                                       meta=meta)
                try:
                    self.task.export(self, self.run_dir)
                    if self.state["losses"] and not again:
                        plot_loss(self.state["losses"], self.run_dir / "loss.png")
                except OSError as e:
                    raise VidiffError(f"cannot write the checkpoint in {self.run_dir}: {e.strerror or e}; the "
                                      f"training state of step {self.state['step']} is saved — free some disk space "
                                      "or check the folder's permissions, then resume") from None
            finally:
                self._saving = False
            if self._pending_interrupt:
                self._pending_interrupt = False
                raise KeyboardInterrupt
        acc.wait_for_everyone()

    def _interrupt_on_signals(self) -> Callable[[], None]:
        """SIGINT and SIGTERM (schedulers, preemption) raise KeyboardInterrupt, or right after a save that
        is under way, so the loop saves a resumable checkpoint; returns a function restoring the handlers."""
        if self.run_dir is None or threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum, frame):
            if self._saving:
                self._pending_interrupt = True
                return
            raise KeyboardInterrupt

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        return lambda: [signal.signal(s, h) for s, h in previous.items()]
