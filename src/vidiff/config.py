"""Typed configs: frozen dataclasses <-> JSON/YAML, with clear errors for unknown or bad keys."""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from .utils import VidiffError, atomic_write_text

T = TypeVar("T")


def config_to_dict(cfg: Any) -> dict:
    """A dataclass (possibly nested) as a plain JSON-able dict."""
    if not dataclasses.is_dataclass(cfg):
        raise TypeError(f"expected a dataclass, got {type(cfg).__name__}")
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, where)
            except VidiffError as e:  # try the next member of the union
                errors.append(str(e))
        raise VidiffError(errors[0] if errors else f"bad value for {where}: {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise VidiffError(f"bad value for {where}: expected a mapping, got {value!r}")
        return config_from_dict(tp, value, where=where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise VidiffError(f"bad value for {where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise VidiffError(f"bad value for {where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(a, v, where) for a, v in zip(args, value))
        inner = args[0] if args else Any
        out = [_coerce(inner, v, where) for v in value]
        return tuple(out) if origin is tuple else out
    if origin is typing.Literal:
        if value not in args:
            raise VidiffError(f"bad value for {where}: {value!r}; choose one of {list(args)}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise VidiffError(f"bad value for {where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise VidiffError(f"bad value for {where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise VidiffError(f"bad value for {where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise VidiffError(f"bad value for {where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise VidiffError(f"bad value for {where}: expected a string, got {value!r}")
        return value
    return value


# Ranges of numeric fields that mean the same in every config (a recipe, a checkpoint's "video", a
# motion model): name -> (lowest allowed, highest allowed or None, strictly above the lowest). A
# dataclass field can declare its own range as `field(metadata={"range": (lo, hi, strict)})`.
FIELD_RANGES: dict[str, tuple[float, float | None, bool]] = {
    "batch": (1, None, False), "steps": (1, None, False), "frames": (1, None, False), "size": (1, None, False),
    "stride": (1, None, False), "channels": (1, None, False), "fps": (0, None, True), "lr": (0, None, True),
    "minutes": (0, None, True), "warmup": (0, None, False), "weight_decay": (0, None, False),
    "grad_clip": (0, None, False), "ema_decay": (0, 1, False), "cond_drop": (0, 1, False),
    "self_cond": (0, 1, False), "lr_min_ratio": (0, 1, False), "log_every": (1, None, False),
    "save_every": (1, None, False), "sample_every": (1, None, False), "sample_steps": (1, None, False),
    "num_samples": (0, None, False), "noise_alpha": (0, None, False), "period": (1, None, False),
    "k": (1, None, False),
}


def check_ranges(cfg: Any, where: str | None = None) -> None:
    """Refuse a numeric field outside its range (FIELD_RANGES or the field's metadata["range"]) with one
    line naming the command-line option and the config key, e.g. "--batch must be at least 1"."""
    where = where or type(cfg).__name__
    for f in dataclasses.fields(cfg):
        rng = f.metadata.get("range", FIELD_RANGES.get(f.name))
        value = getattr(cfg, f.name)
        if rng is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        lo, hi, strict = rng
        if (value <= lo if strict else value < lo) or (hi is not None and value > hi):
            want = ((f"greater than {lo:g}" if strict else f"at least {lo:g}")
                    + (f" and at most {hi:g}" if hi is not None else ""))
            raise VidiffError(f"--{f.name.replace('_', '-')} must be {want}; got {value:g} ({where}.{f.name})")


def config_from_dict(cls: type[T], data: dict, where: str | None = None) -> T:
    """Build dataclass `cls` from a dict; unknown keys, wrong types and values outside FIELD_RANGES raise a
    one-line VidiffError."""
    where = where or cls.__name__
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise VidiffError(
            f"unknown config key(s) {unknown} in {where}; valid keys: {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        cfg = cls(**kwargs)
    except TypeError as e:
        raise VidiffError(f"bad config for {where}: {e}") from None
    check_ranges(cfg, where)
    return cfg


def save_config(cfg: Any, path: str | Path, **extra: Any) -> None:
    """Write a dataclass config (plus extra top-level entries) as JSON, atomically."""
    d = {**config_to_dict(cfg), **extra}
    atomic_write_text(path, json.dumps(d, indent=2, sort_keys=True) + "\n")


def load_yaml_or_json(path: str | Path) -> dict:
    """Read a YAML or JSON mapping, with a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise VidiffError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise VidiffError(f"cannot read config {path}: {type(e).__name__}; give a YAML or JSON text file") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:  # noqa: BLE001 - parse errors of either format
        raise VidiffError(f"cannot parse config {path}: {e}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise VidiffError(f"config {path} must hold a mapping of keys to values")
    return data


def recipe_from_args(cls: type[T], config_file: str | None, overrides: dict, where: str) -> T:
    """A recipe file (YAML/JSON) as `cls`, with the command line's flags (not None) taking precedence."""
    base = load_yaml_or_json(config_file) if config_file else {}
    base.update({k: v for k, v in overrides.items() if v is not None})
    return config_from_dict(cls, base, where=where)
