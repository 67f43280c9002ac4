"""Config values checked against their fields' type annotations, and annotations named in words."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

from lrnet._errors import LrnetError
from lrnet._yaml import quote


def coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check ``value`` against a field's type annotation, converting ints to floats and the like."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            raise LrnetError(f"{key}={quote(value)} is not one of {', '.join(map(str, allowed))}")
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(value, option, key)
            except LrnetError as exc:
                errors.append(str(exc))
        raise LrnetError(errors[0] if errors else f"{key}: invalid value {quote(value)}")
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            raise LrnetError(f"{key} must be a list, got {quote(value)}")
        return [coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise LrnetError(f"{key} must be a mapping, got {quote(value)}")
        return dict(value)
    if annotation is Any:
        return value
    if annotation is float and isinstance(value, str):
        try:  # PyYAML reads "1e-3" (no dot) as a string
            value = float(value)
        except ValueError:
            raise LrnetError(f"{key} must be a number, got {quote(value)}") from None
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is bool and not isinstance(value, bool):
        raise LrnetError(f"{key} must be true or false, got {quote(value)}")
    if (isinstance(value, bool) and annotation is not bool) or not isinstance(value, annotation):
        raise LrnetError(f"{key} must be {annotation.__name__}, got {quote(value)}")
    return value


def type_name(annotation: Any) -> str:
    """``int or null``, ``one of: a, b``, ``list[int]`` ..."""
    if typing.get_origin(annotation) is Literal:
        return "one of: " + ", ".join(map(str, typing.get_args(annotation)))
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        parts = [a for a in typing.get_args(annotation) if a is not type(None)]
        names = " or ".join(type_name(a) for a in parts)
        return names + (" or null" if len(parts) < len(typing.get_args(annotation)) else "")
    if typing.get_args(annotation):
        return str(annotation).replace("typing.", "")
    return str(getattr(annotation, "__name__", annotation))
