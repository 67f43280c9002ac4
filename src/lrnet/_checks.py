"""Argument checks shared by the Python API and the command line: one message per bad value."""

from __future__ import annotations

import argparse
import math
import numbers
import re
from collections.abc import Iterable
from typing import Any

from lrnet._errors import ArgumentError, ArgumentTypeError


def whole_number(name: str, value: Any, minimum: int = 0) -> int:
    """``value`` as an int of at least ``minimum`` (else ``ArgumentError``); a float, a bool or a
    string is an ``ArgumentTypeError`` (``True`` and ``3.0`` are not class counts)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(
            f"{name} must be a whole number >= {minimum}, got {type(value).__name__} {value!r}"
        )
    if value < minimum:
        raise ArgumentError(f"{name} must be a whole number >= {minimum}, got {value}")
    return int(value)


def size_pair(name: str, value: Any, minimum: int) -> tuple[int, int]:
    """``value`` as ``(height, width)``: two whole numbers of at least ``minimum``."""
    try:
        pair = tuple(value)
    except TypeError:
        raise ArgumentTypeError(
            f"{name} must be (height, width), whole numbers >= {minimum}, got "
            f"{type(value).__name__} {_value(value)}"
        ) from None
    if len(pair) != 2:
        raise ArgumentError(
            f"{name} must be (height, width), whole numbers >= {minimum}, got {_value(pair)}"
        )
    return whole_number(f"{name}[0]", pair[0], minimum), whole_number(
        f"{name}[1]", pair[1], minimum
    )


def class_names(name: str, value: Any) -> list[Any]:
    """``value`` as a list of class names; a string (its letters are no classes) is a TypeError."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ArgumentTypeError(
            f"{name} must be a list of class names, got {type(value).__name__} {_value(value)}"
        )
    return list(value)


# The devices lrnet runs on, in the words of its messages.
DEVICES = "'cpu', 'cuda', 'cuda:N' (a CUDA GPU) or 'mps' (an Apple GPU), where this machine has it"
_DEVICE = re.compile(r"(cpu|cuda|mps)(?::(\d+))?")


def device_name(name: str, value: Any) -> str:
    """``value`` (a string or a ``torch.device``) as the name of a device lrnet can run on here;
    ``cpu`` is told without importing torch, a GPU is asked of torch, which then runs on it."""
    if type(value).__name__ == "device" and type(value).__module__ == "torch":
        value = str(value)
    if not isinstance(value, str):
        raise ArgumentTypeError(
            f"{name} must be {DEVICES}; got {type(value).__name__} {_value(value)}"
        )
    found = _DEVICE.fullmatch(value)
    if found is None:
        raise ArgumentError(f"{name} {value[:60]!r} is not a device lrnet runs on: give {DEVICES}")
    missing = _absent(found.group(1), found.group(2))
    if missing is not None:
        raise ArgumentError(f"{name} {value!r} cannot run here: {missing}; give {DEVICES}")
    return value


def _absent(kind: str, index: str | None) -> str | None:
    """Why this machine has no device ``kind`` (numbered ``index``), or ``None`` when it has."""
    if kind in ("cpu", "mps") and index not in (None, "0"):
        return f"there is one {kind} device, {kind} (or {kind}:0)"
    if kind == "cpu":
        return None
    import torch  # a GPU was asked for: torch runs on it, so asking costs nothing more

    if kind == "mps":
        return None if torch.backends.mps.is_available() else "PyTorch has no MPS (Apple GPU) here"
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return "PyTorch finds no CUDA GPU on this machine"
    if index is not None and int(index) >= count:
        return f"this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}"
    return None


def palette_colors(name: str, palette: Any, count: int | None = None) -> list[tuple[int, int, int]]:
    """``palette`` as RGB triples of ints in 0-255 (at least ``count`` of them when given)."""
    try:
        colors = [tuple(color) for color in palette]
    except TypeError:
        raise ArgumentTypeError(
            f"{name} must be a list of (r, g, b) colours, got {type(palette).__name__}"
        ) from None
    for index, color in enumerate(colors):
        ints = all(isinstance(v, int) or _is_integer_scalar(v) for v in color)
        if len(color) != 3 or not ints or not all(0 <= int(v) <= 255 for v in color):
            raise ArgumentError(
                f"{name}[{index}] is {_value(color)}; each colour is (r, g, b) with whole "
                "numbers in 0-255"
            )
    if count is not None and len(colors) < count:
        raise ArgumentError(f"{name} has {len(colors)} colours for {count} classes; give one each")
    return [(int(c[0]), int(c[1]), int(c[2])) for c in colors]


def _is_integer_scalar(value: Any) -> bool:
    """A numpy integer (``np.uint8(3)``): what palettes read from arrays hold."""
    return (
        hasattr(value, "dtype")
        and getattr(value.dtype, "kind", "") in "iu"
        and not isinstance(value, bool)
    )


def _value(value: Any) -> str:
    """``value``'s repr, cut to 60 characters (a message quotes values in part)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0 (``--panels -1`` is an error, not zero panels)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is below 0; give 0 or more")
    return value


def port_number(text: str) -> int:
    """argparse type: a TCP port, 0 (any free one) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port: give 0 to 65535")
    return value


MIN_FPS, MAX_FPS = 0.01, 1000.0  # a frame per 100 s to 1000 frames/s: what an .mp4 holds


def frames_per_second(name: str, value: Any) -> float:
    """``value`` (an int, a float, a ``Fraction``) as frames/s, ``MIN_FPS`` to ``MAX_FPS``
    (1e-300 rounded to a rate of 0, 1e300 overflowed the encoder's time base)."""
    shown = _value(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(
            f"{name} must be a number of frames/s, got {type(value).__name__} {shown}"
        )
    try:
        rate = float(value)
    except OverflowError:  # an int past float's range
        rate = math.inf
    if not MIN_FPS <= rate <= MAX_FPS:  # NaN fails both comparisons
        raise ArgumentError(f"{name} {_out_of_range(shown)}")
    return rate


def _out_of_range(rate: str) -> str:
    return f"{rate} frames/s is out of range: give {MIN_FPS:g} to {MAX_FPS:g}"


def frame_rate(text: str) -> float:
    """argparse type: ``--fps``, frames/s by ``frames_per_second``'s rule."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of frames/s") from None
    try:
        return frames_per_second("--fps", value)
    except ArgumentError:  # the value as typed: 1e300, not 1e+300
        raise argparse.ArgumentTypeError(_out_of_range(text)) from None
