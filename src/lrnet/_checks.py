"""Argument checks shared by the Python API and the command line: one message per bad value."""

from __future__ import annotations

import argparse
import math
import numbers
from collections.abc import Sequence
from typing import Any

from lrnet._errors import ArgumentError, ArgumentTypeError


def whole_number(name: str, value: Any, minimum: int = 0) -> int:
    """``value`` as an int of at least ``minimum``; a float, a bool or a string is a TypeError.

    Raises:
        ArgumentTypeError: not an int (``True`` and ``3.0`` are not class counts).
        ArgumentError: below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(
            f"{name} must be a whole number >= {minimum}, got {type(value).__name__} {value!r}"
        )
    if value < minimum:
        raise ArgumentError(f"{name} must be a whole number >= {minimum}, got {value}")
    return int(value)


def palette_colors(name: str, palette: Any, count: int | None = None) -> list[tuple[int, int, int]]:
    """``palette`` as RGB triples of ints in 0-255 (``count`` of them when given).

    Raises:
        ArgumentTypeError: not a sequence of sequences of ints.
        ArgumentError: a colour that is not three values in 0-255, or the wrong count.
    """
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
                f"{name}[{index}] is {_short(color)}; each colour is (r, g, b) with whole "
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


def _short(value: Sequence[Any]) -> str:
    text = repr(tuple(value))
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
    (1e-300 rounded to a rate of 0, 1e300 overflowed the encoder's time base).

    Raises:
        ArgumentTypeError: not a number (a string, a bool).
        ArgumentError: out of range, NaN or infinite.
    """
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
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
