"""`vidiff` command line. Each area contributes commands from its own module via `register(app)`.

Errors caused by input (VidiffError) are printed as one line, never as a traceback.
"""
from __future__ import annotations

import importlib
import sys

import click
import typer

from .utils import VidiffError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="vidiff: train, sample, control and evaluate video diffusion models.",
)

# Modules that define `register(app: typer.Typer)`; each owns its own commands.
COMMAND_MODULES = (
    "vidiff.pipelines.cli",   # sample (incl. long videos), info
    "vidiff.pipelines.ops_cli",  # extend, interpolate (reconstruction guidance)
    "vidiff.pipelines.upsample_cli",  # upsample, cascade (Imagen Video super-resolution stages)
    "vidiff.distill",         # distill (progressive distillation)
    "vidiff.train",           # train
    "vidiff.models.cli",      # models
    "vidiff.data.cli",        # data synth ...
    "vidiff.metrics.cli",     # eval
    "vidiff.dynamics.cli",    # animate, dynamics extract/simulate/xt
)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # that area has no commands yet
                continue
            raise
        if hasattr(module, "register"):
            module.register(app)


_register_all()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vidiff` script."""
    try:
        # with standalone_mode=False click returns the code of a typer.Exit instead of raising it
        rv = app(args=argv, standalone_mode=False)
    except VidiffError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        return 130
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
