"""The `vidiff` command line.

Each area's commands live in one module of this package, which defines `register(app)`; the
modules are listed explicitly in `COMMANDS`. They parse arguments and call library functions
(imported when a command runs, so `vidiff --help` and usage errors never load torch).

Errors caused by input are printed as one line `error: ...` with exit code 2, never a traceback:
`VidiffError` from the library and the usage errors of the command-line parser (an unknown option,
a missing argument, a value of the wrong type).
"""
from __future__ import annotations

import importlib
import sys

import typer

from ..pipelines import cli as _sample_cli
from ..pipelines import ops_cli as _ops_cli
from ..pipelines import upsample_cli as _upsample_cli
from ..models import cli as _models_cli
from ..data import cli as _data_cli
from ..metrics import cli as _metrics_cli
from ..dynamics import cli as _dynamics_cli
from ..utils import VidiffError
from . import distill, train

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

COMMANDS = (_sample_cli, _ops_cli, _upsample_cli, distill, train, _models_cli, _data_cli, _metrics_cli,
            _dynamics_cli)
for _module in COMMANDS:
    _module.register(app)


def _usage_error(e: "UsageError") -> int:
    """One line `error: MESSAGE` and a hint naming the command's --help; exit code 2."""
    message = " ".join(e.format_message().split())
    print(f"error: {message}", file=sys.stderr)
    if e.ctx is not None:
        print(f"try '{e.ctx.command_path} --help'", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vidiff` script; returns the exit code."""
    try:
        # with standalone_mode=False the parser returns the code of a typer.Exit instead of raising it
        rv = app(args=argv, prog_name="vidiff", standalone_mode=False)
    except VidiffError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except NoArgsIsHelpError as e:  # a command group called without a sub-command: its help
        print(e.format_message(), file=sys.stderr)
        return 2
    except UsageError as e:
        return _usage_error(e)
    except ClickException as e:
        print(f"error: {' '.join(e.format_message().split())}", file=sys.stderr)
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        return 130
    return rv if isinstance(rv, int) else 0
