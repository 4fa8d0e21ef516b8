"""Usage errors of every command and sub-command, run as a user runs them (a subprocess): an unknown
option, missing required arguments, and a number that is not one each print one line `error: ...`
(plus at most a `try 'vidiff CMD --help'` hint), no traceback, exit code 2. The commands are
enumerated from the app, so a new command is covered without editing this file."""
from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import typer

from vidiff.cli import app

NUMBER_TYPES = ("integer", "float", "integer range", "float range")


def _walk(command, path: tuple[str, ...] = ()):
    """(path, command) for every command and group under `command`, the root excluded."""
    if path:
        yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _walk(sub, path + (name,))


COMMANDS = list(_walk(typer.main.get_command(app)))
LEAVES = [(p, c) for p, c in COMMANDS if not hasattr(c, "commands")]


def _is_number(param) -> bool:
    """An int or float parameter (typer >= 0.29 describes its type; click-based typers name a click type)."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:
        return descriptor.annotation in (int, float)
    return getattr(param.type, "name", "") in NUMBER_TYPES


def _fillers(command, but) -> list[str]:
    """Values for the required parameters of `command` other than `but`, so that parsing gets as far as
    the value of `but`."""
    args = []
    for p in command.params:
        if not p.required or p is but:
            continue
        value = "1" if _is_number(p) else "1,1,1,1" if p.name == "poke" else "x.mp4"
        args += [value] if p.param_type_name == "argument" else [p.opts[0], value]
    return args


def _cases():
    for path, command in COMMANDS:
        yield pytest.param([*path, "--bogus"], "--bogus", id=" ".join(path) + " --bogus")
    for path, command in LEAVES:
        if any(p.required for p in command.params):
            yield pytest.param(list(path), "Missing", id=" ".join(path) + " (nothing)")
        number = next((p for p in command.params if _is_number(p) and p.param_type_name == "option"), None)
        if number is not None:  # first on the line: parsed before the fillers
            yield pytest.param([*path, number.opts[0], "abc", *_fillers(command, number)], number.opts[0],
                               id=f"{' '.join(path)} {number.opts[0]} abc")


CASES = list(_cases())


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "vidiff.cli", *argv], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.fixture(scope="module")
def results():
    """Every case run once, two at a time (each is a fresh interpreter parsing one command line)."""
    with ThreadPoolExecutor(2) as pool:
        return dict(zip((tuple(c.values[0]) for c in CASES), pool.map(_run, (c.values[0] for c in CASES))))


def test_every_command_is_covered():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"sample", "export", "eval", "data check", "data synth shapes", "dynamics simulate"} <= names
    covered = {tuple(c.values[0][:len(p)]) for c in CASES for p, _ in COMMANDS if c.values[0][:len(p)] == list(p)}
    assert covered == {p for p, _ in COMMANDS}


@pytest.mark.parametrize("argv,needle", CASES)
def test_usage_error_is_one_line(results, argv, needle):
    r = results[tuple(argv)]
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert lines[0].startswith("error: ") and needle in lines[0], r.stderr
    assert len(lines) <= 2 and all(line.startswith("try 'vidiff ") for line in lines[1:]), r.stderr


def test_the_command_line_starts_without_torch():
    """Parsing (and so every usage error and `--help`) needs no torch: commands import it when they run."""
    code = "import sys, vidiff.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_train_help_names_every_condition_kind():
    """`vidiff train --help` lists every condition kind `--condition` accepts."""
    from typer.testing import CliRunner

    from vidiff.conditioning.tasks import KINDS

    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert all(f" {kind} " in text or f"| {kind}" in text for kind in KINDS), text
