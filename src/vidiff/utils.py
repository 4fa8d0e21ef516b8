"""Small shared helpers: the user-facing error type, one-line notices, atomic file writes, seeding."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

if TYPE_CHECKING:
    import torch


class VidiffError(ValueError):
    """An error caused by user input; the CLI prints its message as one line (no traceback).

    Messages name the problem and the fix, e.g. "no videos found in DIR: expected .mp4/.gif/...".
    """


def notice(msg: str) -> None:
    """Print a one-line notice for the user on stderr ("note: ..."): a plain line, not a Python warning."""
    print(f"note: {' '.join(str(msg).split())}", file=sys.stderr, flush=True)


def os_error_message(path: str | os.PathLike, e: OSError) -> str:
    """One line for a failed write of `path`: what went wrong and the fix."""
    hint = {errno.ENOSPC: "free some disk space or write elsewhere",
            errno.EDQUOT: "free some disk space or write elsewhere",
            errno.EACCES: "choose a folder you can write to",
            errno.EPERM: "choose a folder you can write to",
            errno.EROFS: "the file system is read-only; write elsewhere",
            errno.EISDIR: "it is a folder; give a file name",
            errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
            errno.EEXIST: "a file is in the way of a folder; choose another path"}.get(e.errno, "check the path")
    return f"cannot write {path}: {e.strerror or type(e).__name__}; {hint}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    A crash, Ctrl-C or full disk leaves either the old file or nothing — never a truncated one.
    A file-system error (no space, no permission, a folder in the way) is a one-line VidiffError.
    """
    path = Path(path)
    if path.is_dir():
        raise VidiffError(f"cannot write {path}: it is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        suffix = path.suffix if suffix is None else suffix
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise VidiffError(os_error_message(path, e)) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp_path, path)
    except OSError as e:
        raise VidiffError(os_error_message(path, e)) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to `path` atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write text to `path` atomically (temp file + rename)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: str | os.PathLike):
    """Parse a JSON file; malformed JSON is a one-line VidiffError naming the file."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise VidiffError(f"{path} is not valid JSON: {e}") from None


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU torch.Generator seeded with `seed`."""
    import torch  # here, not at the top: the CLI imports this module at start-up

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
