"""`vidiff distill`: progressive distillation (Salimans & Ho 2022) of a model into fewer sampling steps."""
from __future__ import annotations

from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("distill")
    def distill_cmd(
        teacher: str = typer.Argument(..., help="bundled model name or checkpoint folder to distil"),
        data: str = typer.Option(..., help="folder of training videos (like the teacher's)"),
        out: str = typer.Option(..., help="output folder; round r is saved as OUT/steps-N"),
        rounds: int = typer.Option(3, help="halvings of the step count"),
        start_steps: int = typer.Option(64, "--start-steps", help="DDIM steps of the teacher"),
        steps_per_round: Optional[int] = typer.Option(None, "--steps-per-round", help="updates per round"),
        minutes_per_round: Optional[float] = typer.Option(None, "--minutes-per-round", help="wall clock per round"),
        batch: int = typer.Option(8), lr: float = typer.Option(1e-4),
        stride: int = typer.Option(1, help="frame stride when sampling clips"),
        seed: int = typer.Option(0), device: str = typer.Option("auto", help="auto | cpu | cuda"),
        autoguidance: Optional[float] = typer.Option(
            None, "--autoguidance", help="distil the teacher guided by its guide model with this weight "
                                         "(default: the checkpoint's own; 0: unguided)"),
    ):
        """Progressive distillation (Salimans & Ho 2022): halve the DDIM steps of a model each round."""
        from ..distill import distill  # torch: loaded when the command runs

        folders = distill(teacher, out, data=data, start_steps=start_steps, rounds=rounds,
                          steps_per_round=steps_per_round, minutes_per_round=minutes_per_round, batch=batch,
                          lr=lr, stride=stride, seed=seed, device=device,
                          autoguidance=autoguidance)
        for f in folders:
            typer.echo(f"wrote {f}")
