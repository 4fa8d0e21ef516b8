"""Where a model name such as `shapes-tiny` is found: the model search path.

A name is looked up in these folders, the first match winning:

1. the package's own weights, `vidiff/weights/` (installed with the wheel: the demo model
   `shapes-tiny` with its guide, and the motion model and renderer of `vidiff animate`);
2. each folder listed in `$VIDIFF_MODELS` (separated like `$PATH`);
3. the `models/` folder of the source checkout vidiff runs from (the other bundled models;
   absent from an installed wheel).

A model is a folder `NAME/` holding `config.json` + `model.safetensors`; a cascade is a file
`NAME.yaml`. An unknown name is a one-line error that lists the folders searched and the names found.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .utils import VidiffError

__all__ = ["ENV_VAR", "PACKAGE_MODELS", "CHECKOUT_MODELS", "search_path", "available", "bundled_models",
           "find_model", "find_cascade", "find_autoencoder"]

ENV_VAR = "VIDIFF_MODELS"
PACKAGE_MODELS = Path(__file__).resolve().parent / "weights"
_ROOT = Path(__file__).resolve().parents[2]  # the checkout, when vidiff runs from src/vidiff
CHECKOUT_MODELS: Path | None = (_ROOT / "models" if (_ROOT / "pyproject.toml").is_file()
                                and (_ROOT / "src" / "vidiff").is_dir() else None)
# config sections of the package models that are not video pipelines (vidiff animate's motion model, renderer)
NOT_VIDEO = {"motion_model", "renderer", "vae"}


def search_path() -> list[Path]:
    """The folders searched for a model name, in order: package weights, $VIDIFF_MODELS, checkout models/."""
    dirs = [PACKAGE_MODELS]
    dirs += [Path(p).expanduser() for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p.strip()]
    if CHECKOUT_MODELS is not None:
        dirs.append(CHECKOUT_MODELS)
    return dirs


def _sections(folder: Path) -> set[str] | None:
    """The top-level keys of a checkpoint folder's config.json (None: no readable JSON object there)."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return set(config) if isinstance(config, dict) else None


def _is_video_model(folder: Path) -> bool:
    """A checkpoint folder whose config is a video model's (not the motion model or the renderer)."""
    sections = _sections(folder)
    return sections is not None and not NOT_VIDEO & sections


def _is_autoencoder(folder: Path) -> bool:
    """A vidiff autoencoder folder (`vidiff vae train`'s: a "vae" config section and its weights)."""
    return "vae" in (_sections(folder) or ()) and (folder / "model.safetensors").is_file()


def available(kind: str = "model") -> dict[str, Path]:
    """name -> path of every video model (`kind="model"`), vidiff autoencoder (`kind="autoencoder"`) or
    cascade config (`kind="cascade"`) on the search path; a name found in several folders maps to the first."""
    if kind not in ("model", "autoencoder", "cascade"):
        raise ValueError(f"kind must be 'model', 'autoencoder' or 'cascade', not {kind!r}")
    found: dict[str, Path] = {}
    for folder in search_path():
        if not folder.is_dir():
            continue
        if kind != "cascade":
            wanted = _is_video_model if kind == "model" else _is_autoencoder
            entries = {p.name: p for p in folder.iterdir() if p.is_dir() and wanted(p)}
        else:
            entries = {p.stem: p for p in folder.glob("*.yaml") if p.is_file()}
        for name in sorted(entries):
            found.setdefault(name, entries[name])
    return dict(sorted(found.items()))


def bundled_models() -> list[str]:
    """Names of the video models on the search path."""
    return list(available("model"))


def _not_found(what: str, name: str, kind: str) -> VidiffError:
    """One line: what was asked for, where it was looked for, and what exists."""
    where = ", ".join(f"{d}{'' if d.is_dir() else ' (missing)'}" for d in search_path())
    names = ", ".join(available(kind)) or "none"
    return VidiffError(f"unknown {what} {name!r}: not a {'checkpoint folder' if kind == 'model' else 'file'} "
                       f"and not found in {where}; available: {names} (add folders to ${ENV_VAR})")


def find_model(name: str) -> Path:
    """The folder of the video model called `name` on the search path; unknown names are a one-line error."""
    path = available("model").get(name)
    if path is None:
        raise _not_found("model", name, "model")
    return path


def find_cascade(name: str) -> Path:
    """The NAME.yaml cascade config on the search path; unknown names are a one-line error."""
    path = available("cascade").get(name)
    if path is None:
        raise _not_found("cascade config", name, "cascade")
    return path


def find_autoencoder(spec: str | Path) -> Path:
    """An autoencoder folder (`vidiff vae train`'s, or a diffusers one) given as a path or as a name on the
    search path (e.g. `vae-tiny`); anything else is a one-line error listing the folders searched."""
    path = Path(spec).expanduser()
    if path.exists():
        return path
    if len(path.parts) == 1:
        for folder in search_path():
            if (folder / path.name / "config.json").is_file():
                return folder / path.name
    where = ", ".join(f"{d}{'' if d.is_dir() else ' (missing)'}" for d in search_path())
    raise VidiffError(f"autoencoder {str(spec)!r} not found: not a folder and not a name in {where}; give a "
                      f"vidiff VAE folder (vidiff vae train), a bundled name or a diffusers autoencoder folder")
