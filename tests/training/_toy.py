"""A toy task for the trainer core: noisy regression with a small MLP (dropout included, so the global
RNG matters), fed from a map-style dataset through `StepBatches`."""
from __future__ import annotations

import torch
from torch import nn

from vidiff.checkpoint import save_pretrained
from vidiff.training import LoopConfig, OptimizerSpec, StepBatches, Task, Trainer
from vidiff.training.loop import summary

W_TRUE = torch.tensor([1.0, -2.0, 3.0, 0.5])


class Points(torch.utils.data.Dataset):
    """32 points x ~ N(0, I) in R^4 with y = x · w_true."""

    def __init__(self, n: int = 32):
        self.x = torch.randn(n, 4, generator=torch.Generator().manual_seed(0))
        self.y = self.x @ W_TRUE

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "y": self.y[i]}


def make_model(width: int = 16) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, width), nn.Tanh(), nn.Dropout(0.1), nn.Linear(width, 1))


class Regression(Task):
    """MSE of the model on inputs jittered with noise from the step's generator."""

    def __init__(self, nan_at: int | None = None):
        self.nan_at = nan_at

    def losses(self, trainer, batch, step, generator):
        x = batch["x"] + 0.1 * torch.randn(batch["x"].shape, generator=generator)
        loss = (trainer.modules["model"](x).squeeze(-1) - batch["y"]).pow(2).mean()
        if step == self.nan_at:
            loss = loss * float("nan")
        return {"model": loss}

    def export(self, trainer, folder):
        save_pretrained(folder, trainer.ema["model"], {"summary": summary(trainer.state, trainer.raw)})


def run(run_dir, steps: int, *, resume: bool = False, save_every: int = 2, task: Task | None = None,
        width: int = 16, **loop) -> dict:
    """Train the toy regression for `steps` (total) in `run_dir`; returns the final state."""
    trainer = Trainer({"model": make_model(width)}, {"model": OptimizerSpec("model", lr=3e-2, grad_clip=1.0)},
                      task or Regression(), run_dir=run_dir, ema={"model": 0.9},
                      config=LoopConfig(steps=steps, save_every=save_every, log_every=1, progress=False,
                                        device="cpu", **loop))
    return trainer.fit(StepBatches(Points(), 4, seed=0), resume=resume)
