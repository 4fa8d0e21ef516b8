"""`vidiff export`: a training run as a model folder, optionally with its autoguidance guide."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def export(
    run: Annotated[Path, typer.Argument(help="the run's folder (its --out): EMA weights + config.json")],
    dest: Annotated[Path, typer.Argument(help="the model folder to write (what `vidiff sample --model` reads)")],
    guide: Annotated[Optional[Path], typer.Option(
        help="checkpoint folder of the weaker guide model for autoguidance, e.g. RUN/snapshots/step_0001500; "
             "shipped as DEST/guide")] = None,
    autoguidance: Annotated[float, typer.Option(help="default autoguidance weight w (with --guide)")] = 1.0,
    autoguidance_high_noise: Annotated[Optional[float], typer.Option(
        help="default weight where log-SNR < --logsnr-split (the noisier steps); default: w")] = None,
    logsnr_split: Annotated[float, typer.Option(
        help="log-SNR below which --autoguidance-high-noise applies")] = 0.0,
):
    """Copy a run's sampling checkpoint (EMA weights + config, no optimizer state) into a model folder."""
    from ..pipelines.export import export_model

    for e in export_model(run, dest, guide=guide, autoguidance=autoguidance,
                          autoguidance_high_noise=autoguidance_high_noise, logsnr_split=logsnr_split):
        typer.echo(f"exported {'guide ' if e.kind == 'guide' else ''}{e.src} -> {e.dest} ({e.mib:.1f} MiB)")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
