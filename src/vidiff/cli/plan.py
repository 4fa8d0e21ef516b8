"""`vidiff plan`: parameters, GFLOPs and peak memory of a training and a sampling step, and whether they fit."""
from __future__ import annotations

from typing import Annotated, Optional

import typer


def plan(
    model: Annotated[str, typer.Option("--model", help="preset name, model name on the search path, checkpoint "
                                       "folder or config.json")],
    frames: Annotated[int, typer.Option(help="frames F of each video")] = 16,
    size: Annotated[int, typer.Option(help="height = width of the videos, in pixels")] = 32,
    batch: Annotated[int, typer.Option(help="videos per step")] = 1,
    latent: Annotated[Optional[str], typer.Option(
        "--latent", help="run the backbone on this autoencoder's latents (vidiff VAE folder, bundled name or "
        "diffusers folder)")] = None,
    grad_ckpt: Annotated[bool, typer.Option("--grad-ckpt", help="with gradient checkpointing")] = False,
    bf16: Annotated[bool, typer.Option("--bf16", help="with bf16 autocast")] = False,
):
    """Print parameters, GFLOPs per step and the peak memory of a training step and of a sampling step, and whether
    each fits this machine's free memory (VIDIFF_MAX_MEMORY caps it); exit code 1 when training does not fit."""
    from ..planner import plan as make_plan

    result = make_plan(model, frames=frames, size=size, batch=batch, latent=latent, grad_ckpt=grad_ckpt, bf16=bf16)
    typer.echo(result.summary())
    if not result.fits_train:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)
