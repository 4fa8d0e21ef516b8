"""The `vidiff` command line.

Each area's commands live in one module of this package, which defines `register(app)`; the
modules are listed explicitly in `COMMANDS`. They parse arguments and call library functions,
imported when a command runs, so `vidiff --help` and usage errors never load torch.

Errors caused by input are printed as one line `error: ...` with exit code 2, never a traceback:
`VidiffError` from the library and the usage errors of the command-line parser (an unknown option,
a missing argument, a value of the wrong type), the latter with a hint naming the command's --help.
"""
from __future__ import annotations

import importlib
import sys

import typer

from ..utils import VidiffError
from . import (data, distill, dynamics, edit, evaluate, export, models, ops, plan, sample, stylize, t2v_zero, train,
               ui, upsample, vae)

# typer >= 0.29 ships its own copy of click; its exception classes sit beside typer.BadParameter
_click_exceptions = importlib.import_module(typer.BadParameter.__module__)
ClickException = _click_exceptions.ClickException
UsageError = _click_exceptions.UsageError
NoArgsIsHelpError = getattr(_click_exceptions, "NoArgsIsHelpError", ())

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="vidiff: train, sample, control and evaluate video diffusion models.",
)

# the order of `vidiff --help`
COMMANDS = (sample, ops, upsample, t2v_zero, edit, stylize, export, train, distill, vae, models, plan, data, evaluate,
            dynamics, ui)
for _module in COMMANDS:
    _module.register(app)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vidiff` script; returns the exit code."""
    try:
        # with standalone_mode=False the parser returns the code of a typer.Exit instead of raising it
        rv = app(args=argv, prog_name="vidiff", standalone_mode=False)
    except VidiffError as e:
        print(f"error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except NoArgsIsHelpError as e:  # a command group called without a sub-command: its help
        print(e.format_message(), file=sys.stderr)
        return 2
    except UsageError as e:
        print(f"error: {_one_line(e.format_message())}", file=sys.stderr)
        if e.ctx is not None:
            print(f"try '{e.ctx.command_path} --help'", file=sys.stderr)
        return 2
    except ClickException as e:
        print(f"error: {_one_line(e.format_message())}", file=sys.stderr)
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        return 130
    return rv if isinstance(rv, int) else 0
