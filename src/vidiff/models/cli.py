"""`vidiff models`: the backbone presets with parameter count and GFLOPs per forward."""
from __future__ import annotations

import typer


def preset_stats(name: str, frames: int, size: int, batch: int = 1) -> tuple[int, float]:
    """(parameters, GFLOPs of one forward at (B, C, F, size, size)), counted on the meta device (no compute)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from . import build_model
    from .layers import count_params
    from .presets import get_preset

    cfg = get_preset(name)
    with torch.device("meta"):
        model = build_model(cfg)
        model.check_size(frames, size, size)
        x = torch.empty(batch, cfg.in_channels, frames, size, size)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x, torch.empty(batch))
    return count_params(model), counter.get_total_flops() / 1e9


def register(app: typer.Typer) -> None:
    @app.command("models")
    def models_cmd(
        frames: int = typer.Option(16, help="frames F of the clip the FLOPs are counted for"),
        size: int = typer.Option(32, help="height = width of the clip"),
    ):
        """List the backbone presets with parameter count and GFLOPs per forward (B=1) at (F, size, size)."""
        from rich.console import Console
        from rich.table import Table

        from ..utils import VidiffError
        from .presets import PRESETS

        if frames < 1 or size < 1:
            raise VidiffError("--frames and --size must be positive")
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
