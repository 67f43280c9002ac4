"""The ``lrnet`` command: the command table, one module of this package per command.

Each module declares ``add_arguments(parser)`` and runs ``main(args)``. Modules here import no
torch at module level, so ``--help`` answers without it; shared flags live in ``lrnet.cli.common``.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Sequence

from lrnet._errors import LrnetError, user_message
from lrnet._files import cannot_write

# Command -> one-line help; each command is the module of its name (``save-pretrained``:
# ``lrnet.cli.save_pretrained``), imported only when it runs.
_HELP = {
    "demo": "generate synthetic data, train, evaluate, predict and write a report",
    "train": "train a model from a YAML config with key=value overrides",
    "evaluate": "score every stage of a checkpoint on a dataset split",
    "predict": "label images and draw the coarse-to-fine panels",
    "models": "list the trained models that ship with lrnet (the zoo)",
    "export": "export a checkpoint to ONNX",
    "report": "write the one-file HTML report of a run folder",
    "save-pretrained": "write a checkpoint as a folder to share: weights, config.json, model card",
    "app": "look at a model's coarse-to-fine label maps in the browser",
    "summary": "parameters and FLOPs of the models at an input size",
    "check-dataset": "look for unreadable files and bad labels in a dataset",
    "class-weights": "class-balancing weights for a training split",
}
COMMANDS: dict[str, tuple[str, str]] = {
    name: (f"lrnet.cli.{name.replace('-', '_')}", text) for name, text in _HELP.items()
}


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """Declare command ``name``'s arguments on ``parser`` (its module imports no torch)."""
    importlib.import_module(COMMANDS[name][0]).add_arguments(parser)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: the commands and their one-line help (no command module imported)."""
    from lrnet import __version__

    parser = argparse.ArgumentParser(
        prog="lrnet",
        description="Label Refinement Network: coarse-to-fine semantic segmentation.",
        epilog="`lrnet COMMAND --help` describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"lrnet {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        subparsers.add_parser(name, help=help_text, description=help_text, add_help=False)
    return parser


# OSErrors that name a path the user can fix (a read-only or full disk, a file or folder in the
# way): one line for every command, wherever the write was; others keep their traceback (a bug).
_WRITE_ERRNOS = {
    errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM,
    errno.EISDIR, errno.ENOTDIR, errno.EEXIST,
}  # fmt: skip
_OPEN_ERRNOS = {errno.ENOENT, errno.ENAMETOOLONG, errno.ELOOP}
SIGPIPE_STATUS = 141  # what a shell reports for a process killed by SIGPIPE (128 + 13)


def os_error_message(exc: OSError) -> str | None:
    """The one-line message for an ``OSError`` about a path, or None when it names no path."""
    if exc.filename is None or exc.errno not in _WRITE_ERRNOS | _OPEN_ERRNOS:
        return None
    path = os.fsdecode(exc.filename)
    if exc.errno in _WRITE_ERRNOS:
        return str(cannot_write(path, exc))
    return f"cannot open {path}: {exc.strerror}; check the path"


def _quiet_stdout() -> None:
    """Point stdout at /dev/null: the last flush at exit must raise no second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # stdout is no file (a test's capture)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (lives until exit)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``lrnet`` console script. Exit status: 0 done, 2 a usage or input error (one line on
    stderr), 130 interrupted, 141 the reader of stdout went away (``lrnet models | head -1``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        build_parser().parse_args(argv)  # --help, --version or a usage error; exits
        return 2
    # Import only the chosen command's module: `lrnet train` should not pay for onnx imports.
    name = argv[0]
    parser = argparse.ArgumentParser(prog=f"lrnet {name}", description=COMMANDS[name][1])
    add_arguments(name, parser)
    try:
        args = parser.parse_intermixed_args(argv[1:])  # options after positionals too
        status = int(importlib.import_module(COMMANDS[name][0]).main(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return status
    except BrokenPipeError:
        _quiet_stdout()
        return SIGPIPE_STATUS
    except (LrnetError, OSError) as exc:
        message = user_message(exc) if isinstance(exc, LrnetError) else os_error_message(exc)
        if message is None:
            raise
        print(f"lrnet {name}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
