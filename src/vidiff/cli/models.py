"""`vidiff models`: the backbone presets with parameter count and GFLOPs per forward."""
from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..utils import VidiffError


def models(
    frames: Annotated[int, typer.Option(min=1, help="frames F of the clip the FLOPs are counted for")] = 16,
    size: Annotated[int, typer.Option(min=1, help="height = width of the clip")] = 32,
):
    """List the backbone presets with parameter count and GFLOPs per forward (B=1) at (F, size, size)."""
    from ..models.presets import PRESETS
    from ..models.stats import preset_stats

    table = Table(title=f"backbone presets at F={frames}, {size}x{size} (B=1)")
    for col in ("preset", "arch", "temporal", "params (M)", "GFLOPs / forward"):
        table.add_column(col, justify="left" if col in ("preset", "arch", "temporal") else "right")
    for name, cfg in PRESETS.items():
        kind = getattr(cfg, "space_time", cfg.temporal) if cfg.arch == "dit" else cfg.temporal
        try:
            params, gflops = preset_stats(name, frames, size)
            table.add_row(name, cfg.arch, kind, f"{params / 1e6:.2f}", f"{gflops:.2f}")
        except VidiffError as e:
            table.add_row(name, cfg.arch, kind, "-", f"n/a: {e}")
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("models")(models)
