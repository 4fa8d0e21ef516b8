"""`python -m vidiff.train ...` (what `accelerate launch -m vidiff.train` runs) and `vidiff.train.train(cfg)`:
the video diffusion recipe of `vidiff.training.diffusion_task` with previews drawn by the sampling pipeline.

    accelerate launch --multi_gpu --num_processes 2 -m vidiff.train --data DIR --out runs/ddp --steps 1000
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from .pipelines import sample_videos
from .training.diffusion_task import TrainConfig, build_model_for, config_from_args, lr_at
from .training.diffusion_task import train as train_diffusion
from .training.surgery import init_weights_from, widen_input_channels

__all__ = ["TrainConfig", "train", "build_model_for", "config_from_args", "lr_at", "init_weights_from",
           "widen_input_channels", "main"]


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    """Train a video diffusion model (GIF previews every `sample_every` steps); returns the run folder."""
    return train_diffusion(cfg, resume=resume, sample_fn=sample_videos)


def main(argv: Optional[list[str]] = None) -> int:
    """`python -m vidiff.train ...`: the `vidiff train` command."""
    from .cli import main as cli_main  # the command line sits above this module

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
