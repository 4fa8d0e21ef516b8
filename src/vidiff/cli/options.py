"""Options shared by several commands, declared once.

Each alias is a typer option definition; a command uses it as the annotation and gives its own
default, e.g. ``steps: Steps = DEFAULT_STEPS``. Values are checked while the command line is
parsed (a bad ``--sampler`` or ``--steps 0`` is a usage error before any model loads).

This module is imported at start-up by every command, so it imports no torch: the sampler
registry is looked up only when a ``--sampler`` value is checked.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer

DEFAULT_MODEL = "shapes-tiny"
# the sampler and step count `make demo` uses and the README recommends
DEFAULT_SAMPLER = "ddpm"
DEFAULT_STEPS = 50
FORMATS = ("mp4", "gif", "npy")
DEFAULT_FORMATS = "mp4,gif"
DEVICES = "auto | cpu | cuda | cuda:N | mps"


class Formats(tuple):
    """The video formats to write, parsed from ``--format mp4,gif``."""


def parse_formats(spec: "str | Formats") -> Formats:
    """'mp4,gif' -> Formats(('mp4', 'gif')); an unknown or empty list is a usage error."""
    if isinstance(spec, Formats):
        return spec
    fmts = [f.strip().lower() for f in spec.split(",") if f.strip()]
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise typer.BadParameter(f"{spec!r}: use one or more of {', '.join(FORMATS)} (comma-separated)")
    return Formats(dict.fromkeys(fmts))


def sampler_names() -> list[str]:
    """The names `--sampler` accepts (the diffusion sampler registry)."""
    from ..diffusion.samplers import SAMPLERS  # torch: only when a value is checked

    return sorted(SAMPLERS)


def check_sampler(value: Optional[str]) -> Optional[str]:
    """Callback of `--sampler`: an unknown name is a usage error naming the known ones."""
    if value is not None and value not in sampler_names():
        raise typer.BadParameter(f"unknown sampler {value!r}; choose one of {', '.join(sampler_names())}")
    return value


def check_device(value: Optional[str]) -> Optional[str]:
    """Callback of `--device`: auto, cpu, cuda, cuda:N or mps."""
    if value is not None and not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        raise typer.BadParameter(f"unknown device {value!r}; use {DEVICES}")
    return value


def positive(value: Optional[float]) -> Optional[float]:
    """Callback of an option that must be > 0 (a frame rate, a factor)."""
    if value is not None and not value > 0:
        raise typer.BadParameter(f"{value:g} is not positive")
    return value


def fraction(value: Optional[float]) -> Optional[float]:
    """Callback of an option that must lie in [0, 1)."""
    if value is not None and not 0 <= value < 1:
        raise typer.BadParameter(f"{value:g} is not in [0, 1)")
    return value


# --- models and sampling ---------------------------------------------------------------------------
Model = Annotated[str, typer.Option(help="bundled model name or checkpoint folder")]
Steps = Annotated[int, typer.Option(min=1, help="denoising steps")]
OptSteps = Annotated[Optional[int], typer.Option(min=1, help="denoising steps")]
Sampler = Annotated[str, typer.Option(callback=check_sampler,
                                      help="ddpm | ddim | dpmpp_2m | pc (DDPM + Langevin corrector) | ...")]
Seed = Annotated[int, typer.Option(help="the same seed gives the same videos")]
Num = Annotated[int, typer.Option(min=1, help="number of videos")]
Guidance = Annotated[float, typer.Option(help="classifier-free guidance weight w (0 = none)")]
Autoguidance = Annotated[Optional[float], typer.Option(
    help="autoguidance weight: guide with the model's weaker snapshot (Karras et al. 2024); "
         "default: the model's, 0 = off")]
Prompt = Annotated[Optional[str], typer.Option(help="text prompt (text-conditioned models)")]
ClassId = Annotated[Optional[int], typer.Option("--class", help="class id (class-conditioned models)")]
Device = Annotated[str, typer.Option(callback=check_device, help=DEVICES)]

# --- outputs -----------------------------------------------------------------------------------------
Out = Annotated[Path, typer.Option(help="output folder")]
Name = Annotated[str, typer.Option(help="base name of the files written")]
OptName = Annotated[Optional[str], typer.Option(
    help="base name of the files written (default: the input's name and the command, e.g. clip_extended)")]
Format = Annotated[Formats, typer.Option("--format", parser=parse_formats, metavar="FMT[,FMT]",
                                         help="mp4, gif, npy (comma-separated)")]
Scale = Annotated[int, typer.Option(min=1, help="nearest-neighbour upscaling of mp4/gif for viewing")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="replace the files of an earlier run with the same "
                                         "--out and --name (otherwise that is refused)")]

# --- latent models: decoding memory ---------------------------------------------------------------
DecodeChunk = Annotated[Optional[int], typer.Option(
    min=0, help="latent frames decoded at a time, with the decoder's receptive field as context (default 8; "
                "0 = all at once)")]
Tile = Annotated[Optional[int], typer.Option(
    min=0, help="spatial tile of latent pixels decoded at a time, seams blended (default 64; 0 = no tiling)")]
