"""Validation of a merged configuration against its types (:mod:`pipeline.config.load.schema`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union

from pipeline.config.schema import _MIN, REMOVED, ConfigError


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            type(None): "null"}.get(tp, str(tp))


def _check(value: Any, tp: Any) -> Any:
    """``value`` converted to ``tp`` (int -> float only), or raise ``TypeError``."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise TypeError
    if origin in (Union, types.UnionType):
        for alt in typing.get_args(tp):
            try:
                return _check(value, alt)
            except TypeError:
                continue
        raise TypeError
    if origin is list:
        if not isinstance(value, list):
            raise TypeError
        return [_check(v, typing.get_args(tp)[0]) for v in value]
    if tp is type(None):
        if value is None:
            return None
        raise TypeError
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise TypeError
    if tp is str:
        if isinstance(value, str):
            return value
        raise TypeError
    raise TypeError


def _validate_record(cls: type, data: Any, where: str, source: str) -> Any:
    """Build ``cls`` from the mapping ``data``: unknown keys, missing keys and bad types are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: '{where}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        dotted = f"{where}.{key}"
        if dotted in REMOVED:
            raise ConfigError(f"{source}: {REMOVED[dotted]}")
        if key not in fields:
            raise ConfigError(f"{source}: unknown key '{dotted}' (known: {', '.join(sorted(fields))})")
    values = {}
    for name, f in fields.items():
        dotted = f"{where}.{name}"
        if name not in data:
            if f.default is dataclasses.MISSING:
                raise ConfigError(f"{source}: missing key '{dotted}' (configs/base.yaml defines every default)")
            continue
        try:
            values[name] = _check(data[name], hints[name])
        except TypeError:
            raise ConfigError(f"{source}: '{dotted}' must be {_type_name(hints[name])}, "
                              f"got {data[name]!r}") from None
        lo = _MIN.get(dotted)
        if lo is not None and isinstance(values[name], int | float) and values[name] < lo:
            raise ConfigError(f"{source}: '{dotted}' must be >= {lo:g}, got {data[name]!r}")
    return cls(**values)
