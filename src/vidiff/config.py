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


def config_from_dict(cls: type[T], data: dict, where: str | None = None) -> T:
    """Build dataclass `cls` from a dict; unknown keys and wrong types raise a one-line VidiffError."""
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
        return cls(**kwargs)
    except TypeError as e:
        raise VidiffError(f"bad config for {where}: {e}") from None


def save_config(cfg: Any, path: str | Path, **extra: Any) -> None:
    """Write a dataclass config (plus extra top-level entries) as JSON, atomically."""
    d = {**config_to_dict(cfg), **extra}
    atomic_write_text(path, json.dumps(d, indent=2, sort_keys=True) + "\n")


def load_yaml_or_json(path: str | Path) -> dict:
    """Read a YAML or JSON mapping, with a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise VidiffError(f"config file not found: {path}")
    text = path.read_text()
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
