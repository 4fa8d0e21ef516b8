"""`vidiff distill`: progressive distillation (Salimans & Ho 2022) of a model into fewer sampling steps."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from .options import Out, Seed


def register(app: typer.Typer) -> None:
    @app.command("distill")
    def distill_cmd(
        teacher: Annotated[str, typer.Argument(help="bundled model name or checkpoint folder to distil")],
        data: Annotated[str, typer.Option(help="folder of training videos (like the teacher's)")],
        out: Out,
        rounds: int = typer.Option(3, min=1, help="halvings of the step count"),
        start_steps: int = typer.Option(64, "--start-steps", min=2, help="DDIM steps of the teacher"),
        steps_per_round: Optional[int] = typer.Option(None, "--steps-per-round", min=1, help="updates per round"),
        minutes_per_round: Optional[float] = typer.Option(None, "--minutes-per-round", min=0.0,
                                                          help="wall clock per round"),
        batch: int = typer.Option(8, min=1), lr: float = typer.Option(1e-4),
        stride: int = typer.Option(1, min=1, help="frame stride when sampling clips"),
        seed: Seed = 0, device: str = typer.Option("auto", help="auto | cpu | cuda"),
        autoguidance: Optional[float] = typer.Option(
            None, "--autoguidance", help="distil the teacher guided by its guide model with this weight "
                                         "(default: the checkpoint's own; 0: unguided)"),
        resume: bool = typer.Option(False, help="continue the distillation in --out exactly where it stopped "
                                                "(finished rounds are kept)"),
    ):
        """Progressive distillation (Salimans & Ho 2022): halve the DDIM steps of a model each round; round r
        is saved as OUT/steps-N (sample it with --steps N --sampler ddim)."""
        from ..distill import distill  # torch: loaded when the command runs

        try:
            folders = distill(teacher, str(out), data=data, start_steps=start_steps, rounds=rounds,
                              steps_per_round=steps_per_round, minutes_per_round=minutes_per_round, batch=batch,
                              lr=lr, stride=stride, seed=seed, device=device, autoguidance=autoguidance,
                              resume=resume)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        for f in folders:
            typer.echo(f"wrote {f}")
