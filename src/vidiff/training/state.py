"""The resumable training state of a run, written and read as ONE unit.

    RUN/train_state/LATEST              "step_0001500": the committed state (replaced atomically, last)
    RUN/train_state/step_0001500/       MODULE.safetensors, MODULE.ema.safetensors, OPTIMIZER.optimizer.pt,
                                        state.json {"step", "files": {name: sha256}, elapsed, losses, ...}

A save writes every part into a fresh hidden folder, renames it to `step_NNNNNNN` and only then points
`LATEST` at it; the previous state is removed after that. A crash at any point therefore leaves `LATEST`
on a complete state (the previous or the new one), never a mix. Resuming checks that every part carries
the step of `LATEST` and the checksum recorded in its state.json, and refuses with one line otherwise.
What a crash leaves behind (hidden temporary folders and files, uncommitted step folders) is removed
when the next run starts (`clean_orphans`).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Callable

import torch
from safetensors import safe_open

from ..checkpoint import dumps_json, load_state_dict, save_state_dict
from ..utils import VidiffError, atomic_write_text

STATE_DIR = "train_state"
POINTER = "LATEST"
STATE_FILE = "state.json"
FORMAT = 2  # format 1: the single-folder train_state/ written file by file (no pointer, no checksums)
_STEP_DIR = re.compile(r"step_(\d{7,})")


# --- the write points (each one a place where a crash may interrupt a save) ------------------------------

def _write(path: Path, writer: Callable[[Path], None]) -> None:
    """Write one part of a state with `writer(path)` and flush it to disk."""
    writer(path)
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _rename(src: Path, dst: Path) -> None:
    os.replace(src, dst)
    _fsync_dir(dst.parent)


def _point(ts: Path, name: str) -> None:
    """Commit: `LATEST` names the step folder `name` (an atomic replace)."""
    atomic_write_text(ts / POINTER, name + "\n")
    _fsync_dir(ts)


def _remove(path: Path) -> None:
    """Delete a superseded step folder."""
    shutil.rmtree(path, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync folders
    finally:
        os.close(fd)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- saving ------------------------------------------------------------------------------------------------

def step_name(step: int) -> str:
    return f"step_{step:07d}"


def committed(run_dir: str | Path) -> Path | None:
    """The step folder `LATEST` points at (None when no state was committed yet)."""
    ts = Path(run_dir) / STATE_DIR
    try:
        name = (ts / POINTER).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return ts / name


def save_state(run_dir: str | Path, step: int, *, modules: dict[str, torch.nn.Module],
               emas: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer],
               meta: dict) -> Path:
    """Write the state of `step` as one unit and commit it; returns its folder. `meta` (elapsed, losses,
    ...) goes into state.json. A state already committed at `step` is kept as it is."""
    ts = Path(run_dir) / STATE_DIR
    name = step_name(step)
    final = ts / name
    if committed(run_dir) == final and final.is_dir():
        return final
    tmp = ts / f".tmp-{name}-{os.getpid()}"
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        files = {}
        parts = [(f"{n}.safetensors", m) for n, m in modules.items()]
        parts += [(f"{n}.ema.safetensors", m) for n, m in emas.items()]
        for fname, module in parts:
            _write(tmp / fname, lambda p, m=module: save_state_dict(p, m.state_dict(), {"step": step}))
        for n, opt in optimizers.items():
            _write(tmp / f"{n}.optimizer.pt",
                   lambda p, o=opt: torch.save({"step": step, "state": o.state_dict()}, p))
        for f in sorted(tmp.iterdir()):
            files[f.name] = sha256(f)
        state = {"format": FORMAT, **meta, "step": step, "files": files}
        _write(tmp / STATE_FILE, lambda p: p.write_text(dumps_json(state)))
        if final.exists():  # an uncommitted folder of this step, left by a crash
            shutil.rmtree(final)
        _rename(tmp, final)
        _point(ts, name)
    except Exception as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            before = committed(run_dir)
            kept = f"the state of {before.name} is kept" if before is not None else "no state was saved before"
            raise VidiffError(f"cannot save the training state in {ts}: {e.strerror or e}; {kept} — free some "
                              "disk space or check the folder's permissions, then resume") from None
        raise
    for old in ts.iterdir():  # the previous state, now superseded (what stays is cleaned at the next start)
        if old.is_dir() and _STEP_DIR.fullmatch(old.name) and old.name != name:
            try:
                _remove(old)
            except OSError:
                pass
    return final


# --- cleaning up after a crash -------------------------------------------------------------------------------

def clean_orphans(run_dir: str | Path) -> list[Path]:
    """Remove what an interrupted save leaves: hidden temporary folders and files (`atomic_path`'s
    `.NAME.*.tmp*`) in the run folder and step folders `LATEST` does not point at; returns them."""
    run_dir = Path(run_dir)
    ts = run_dir / STATE_DIR
    removed = []
    keep = committed(run_dir)
    if ts.is_dir() and not (ts / "state.json").is_file():  # (the old single-folder layout is left alone)
        for d in ts.iterdir():
            if d.is_dir() and (d.name.startswith(".tmp-") or (_STEP_DIR.fullmatch(d.name) and d != keep)):
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
    if run_dir.is_dir():
        for f in run_dir.rglob(".*.tmp*"):
            if f.is_file():
                f.unlink(missing_ok=True)
                removed.append(f)
    return removed


def truncate_log(path: str | Path, step: int) -> None:
    """Keep the lines of a log.jsonl whose "step" is at most `step` (and drop a half-written last line),
    so a resumed run does not repeat the steps it trains again."""
    path = Path(path)
    if not path.is_file():
        return
    kept, changed = [], False
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
            ok = isinstance(entry, dict) and int(entry.get("step", 0)) <= step
        except (ValueError, TypeError):
            ok = False
        if ok:
            kept.append(line)
        else:
            changed = True
    if changed:
        atomic_write_text(path, "".join(k + "\n" for k in kept))


# --- resuming --------------------------------------------------------------------------------------------

def _damaged(ts: Path, what: str) -> VidiffError:
    return VidiffError(f"cannot resume: {what}; the training state in {ts} is damaged — start a new run "
                       f"(another --out), e.g. from its weights with --init-from {ts.parent}")


def read_state(run_dir: str | Path) -> tuple[Path, dict]:
    """The committed step folder and its state.json, with every file's checksum verified; one-line
    errors name the damaged file and what to do."""
    run_dir = Path(run_dir)
    ts = run_dir / STATE_DIR
    if not ts.is_dir():
        raise VidiffError(f"cannot resume: {ts} not found; start without --resume")
    if not (ts / POINTER).is_file():
        if (ts / STATE_FILE).is_file():
            raise VidiffError(f"cannot resume: {ts} was written by an older vidiff (no {POINTER} pointer, no "
                              f"checksums) and cannot be verified; start a new run from its weights with "
                              f"--init-from {run_dir} and another --out")
        raise VidiffError(f"cannot resume: {ts} holds no complete training state (the run stopped before its "
                          "first save); start without --resume")
    name = (ts / POINTER).read_text().strip()
    folder = ts / name
    m = _STEP_DIR.fullmatch(name)
    if not m or not folder.is_dir():
        raise _damaged(ts, f"{ts / POINTER} names {name!r}, which is not a step folder there")
    try:
        state = json.loads((folder / STATE_FILE).read_text())
        step, files = int(state["step"]), dict(state["files"])
    except (OSError, ValueError, KeyError, TypeError):
        raise _damaged(ts, f"{folder / STATE_FILE} is missing, truncated or not a training state") from None
    if step != int(m.group(1)):
        raise _damaged(ts, f"{folder / STATE_FILE} is of step {step}, its folder of step {int(m.group(1))}")
    for fname, digest in files.items():
        path = folder / fname
        if not path.is_file():
            raise _damaged(ts, f"{path} is missing")
        if sha256(path) != digest:
            raise _damaged(ts, f"{path} does not match the checksum state.json records for step {step}")
    return folder, state


def load_state(run_dir: str | Path, *, modules: dict[str, torch.nn.Module], emas: dict[str, torch.nn.Module],
               optimizers: dict[str, torch.optim.Optimizer]) -> dict:
    """Load the committed state into `modules`, `emas` and `optimizers` (built as the run builds them);
    returns its state.json. Every part must carry the committed step and checksum, and fit what it is
    loaded into, or this is a one-line error."""
    folder, state = read_state(run_dir)
    step = state["step"]
    ts = folder.parent
    want = ([f"{n}.safetensors" for n in modules] + [f"{n}.ema.safetensors" for n in emas]
            + [f"{n}.optimizer.pt" for n in optimizers])
    missing = [f for f in want if f not in state["files"]]
    if missing:
        raise VidiffError(f"cannot resume: {folder} has no {missing[0]}: the run was trained with other "
                          f"modules or optimizers; resume with its own settings (see {Path(run_dir) / 'config.json'})")
    for fname, module in [*((f"{n}.safetensors", m) for n, m in modules.items()),
                          *((f"{n}.ema.safetensors", m) for n, m in emas.items())]:
        path = folder / fname
        with safe_open(str(path), "pt") as f:
            tagged = (f.metadata() or {}).get("step")
        if tagged != str(step):
            raise _damaged(ts, f"{path} is of step {tagged}, the state of step {step}")
        _load_module(module, load_state_dict(path), path, run_dir)
    for n, opt in optimizers.items():
        path = folder / f"{n}.optimizer.pt"
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            tagged, sd = saved["step"], saved["state"]
        except Exception:  # noqa: BLE001 - a damaged pickle raises many types
            raise _damaged(ts, f"{path} cannot be read") from None
        if tagged != step:
            raise _damaged(ts, f"{path} is of step {tagged}, the state of step {step}")
        try:
            opt.load_state_dict(sd)
        except (ValueError, KeyError, RuntimeError):
            raise VidiffError(f"cannot resume: {path} holds the optimizer of other parameters than this run "
                              f"trains; resume with the run's own --model/--train settings (see "
                              f"{Path(run_dir) / 'config.json'}) or choose another --out") from None
    return state


def _load_module(module: torch.nn.Module, sd: dict[str, torch.Tensor], path: Path, run_dir) -> None:
    """`module.load_state_dict(sd)`, with a mismatch told in one line naming the first differing tensor."""
    own = module.state_dict()
    diff = next((f"{k} is missing there" for k in own if k not in sd), None)
    diff = diff or next((f"it has {k}, which this network lacks" for k in sd if k not in own), None)
    diff = diff or next((f"{k} is {tuple(sd[k].shape)} there, {tuple(v.shape)} here"
                         for k, v in own.items() if tuple(sd[k].shape) != tuple(v.shape)), None)
    if diff:
        raise VidiffError(f"cannot resume: {path} holds another network than this run builds ({diff}); resume "
                          f"with the run's own --model/--config (see {Path(run_dir) / 'config.json'}) or choose "
                          "another --out")
    module.load_state_dict(sd)
