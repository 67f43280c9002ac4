"""The one exception type for mistakes a user can fix, and how the CLI prints it."""

from __future__ import annotations


class LrnetError(Exception):
    """An error in the user's input (a file, a value, a config key) with a message saying what to
    do; the CLI prints the message alone, without a traceback."""


def user_message(exc: BaseException) -> str:
    """The message of ``exc`` without the traceback a DataLoader worker wraps around it."""
    text = str(exc)
    marker = "Original Traceback (most recent call last):"
    if marker in text:  # the traceback's last line is "module.Class: message"
        last = text.rstrip().splitlines()[-1]
        _, sep, message = last.partition(": ")
        return message if sep else last
    return text


class ArgumentError(LrnetError, ValueError):
    """A bad value given to a function of the Python API (a negative size, a palette colour
    outside 0-255): a ``ValueError`` for Python callers, one line in the CLI."""


class ArgumentTypeError(LrnetError, TypeError):
    """An argument of the wrong type (a float or a bool as a class count): a ``TypeError`` for
    Python callers, one line in the CLI."""
