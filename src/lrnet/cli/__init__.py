"""The ``lrnet`` command: the command table, one module of this package per command.

Each module declares its arguments in ``add_arguments(parser)`` and runs in ``main(args)``, over
the library. Only this package keeps torch out of its module-level imports, so that
``lrnet --help`` and ``lrnet COMMAND --help`` answer without importing it; ``main`` imports what
it runs. The arguments several commands share are defined once, in ``lrnet.cli.common``.
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

# Subcommand -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "lrnet.cli.demo",
        "generate synthetic data, train, evaluate, predict and write a report",
    ),
    "train": ("lrnet.cli.train", "train a model from a YAML config with key=value overrides"),
    "evaluate": ("lrnet.cli.evaluate", "score every stage of a checkpoint on a dataset split"),
    "predict": ("lrnet.cli.predict", "label images and draw the coarse-to-fine panels"),
    "models": ("lrnet.cli.models", "list the trained models that ship with lrnet (the zoo)"),
    "export": ("lrnet.cli.export", "export a checkpoint to ONNX"),
    "report": ("lrnet.cli.report", "write the one-file HTML report of a run folder"),
    "save-pretrained": (
        "lrnet.cli.save_pretrained",
        "write a checkpoint as a folder to share: weights, config.json and a model card",
    ),
    "app": ("lrnet.cli.app", "look at a model's coarse-to-fine label maps in the browser"),
    "summary": ("lrnet.cli.summary", "parameters and FLOPs of the models at an input size"),
    "check-dataset": (
        "lrnet.cli.check_dataset",
        "look for unreadable files and bad labels in a dataset",
    ),
    "class-weights": ("lrnet.cli.class_weights", "class-balancing weights for a training split"),
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
    """Point stdout at /dev/null: the reader went away (``lrnet models | head -1``), and the
    interpreter's last flush must not raise a second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # stdout is no file (a test's capture)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (lives until exit)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lrnet`` console script.

    Exit status: 0 done, 2 a usage or input error (one line on stderr), 130 interrupted, 141
    the reader of stdout went away (a pipe into ``head``).
    """
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
    except LrnetError as exc:
        print(f"lrnet {name}: error: {user_message(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        message = os_error_message(exc)
        if message is None:
            raise
        print(f"lrnet {name}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
