"""The ``lrnet`` command: one subcommand per workflow step, each run by ``main(args)`` of its module.

The arguments of the commands whose module imports torch are declared here, so that
``lrnet --help`` and ``lrnet COMMAND --help`` answer without importing torch; the other modules
(no torch at import) declare theirs in ``add_arguments(parser)``.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import pathlib
import sys
import typing
from collections.abc import Callable, Sequence

from lrnet._errors import LrnetError, user_message
from lrnet.inference.outputs import cannot_write

# Subcommand -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("lrnet.demo", "generate synthetic data, train, evaluate, predict and write a report"),
    "train": ("lrnet.train", "train a model from a YAML config with key=value overrides"),
    "evaluate": ("lrnet.evaluate", "score every stage of a checkpoint on a dataset split"),
    "predict": ("lrnet.commands.predict", "label images and draw the coarse-to-fine panels"),
    "models": ("lrnet.commands.models", "list the trained models that ship with lrnet (the zoo)"),
    "export": ("lrnet.commands.export", "export a checkpoint to ONNX"),
    "report": ("lrnet.report", "write the one-file HTML report of a run folder"),
    "save-pretrained": (
        "lrnet.commands.save_pretrained",
        "write a checkpoint as a folder to share: weights, config.json and a model card",
    ),
    "app": ("lrnet.app", "look at a model's coarse-to-fine label maps in the browser"),
    "summary": ("lrnet.summary", "parameters and FLOPs of the models at an input size"),
    "check-dataset": ("lrnet.data.check", "look for unreadable files and bad labels in a dataset"),
    "class-weights": ("lrnet.data.class_weights", "class-balancing weights for a training split"),
}


def _dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """What the dataset tools share: ``dataset root [--splits ...] [--sbd-root DIR]``."""
    from lrnet.config import DatasetName

    parser.add_argument("dataset", choices=typing.get_args(DatasetName), help="dataset name")
    parser.add_argument("root", help="dataset root folder")
    parser.add_argument("--sbd-root", default=None, help="SBD root (voc split trainaug)")


def _train(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config, or the name of a shipped one (camvid_cpu)")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="e.g. optim.lr=0.01 data.batch_size=4"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue a killed run from last.pt in run.out_dir; the optimiser, schedule, seed "
        "and model settings must stay the run's (a change is refused: use --load-from for a new "
        "run), optim.iterations and the data may change",
    )
    parser.add_argument("--resume-from", metavar="CKPT", help="continue a run from this checkpoint")
    parser.add_argument(
        "--load-from", metavar="CKPT", help="start a fresh run from all the weights of CKPT"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the run already in run.out_dir"
    )


def _summary(parser: argparse.ArgumentParser) -> None:
    from lrnet.config import EncoderName, ModelName

    models = list(typing.get_args(ModelName))
    parser.add_argument("--models", nargs="+", default=models, choices=models)
    parser.add_argument("--num-classes", type=int, default=11)
    parser.add_argument("--encoder", default="vgg16_bn", choices=typing.get_args(EncoderName))
    parser.add_argument("--width", type=float, default=1.0, help="encoder width multiplier")
    parser.add_argument("--size", type=int, nargs=2, default=[360, 480], metavar=("H", "W"))


def _check_dataset(parser: argparse.ArgumentParser) -> None:
    _dataset_arguments(parser)
    parser.add_argument(
        "--splits",
        nargs="+",
        help="splits to check (default: every split of the dataset found under the root)",
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="parallel reader processes (default: 0, none)"
    )


def _class_weights(parser: argparse.ArgumentParser) -> None:
    from lrnet.config import ClassWeightMethod

    _dataset_arguments(parser)
    parser.add_argument(
        "--splits",
        nargs="+",
        default=["train"],
        help="splits whose masks are counted together (default: train)",
    )
    parser.add_argument(
        "--method",
        choices=[*typing.get_args(ClassWeightMethod), "all"],
        default="median_frequency",
        help="weighting scheme; 'all' prints a table of every method (default: median_frequency)",
    )
    parser.add_argument(
        "--void-in-median",
        action="store_true",
        help="median_frequency: count void as a class when taking the median "
        "(as SegNet's 12 CamVid weights)",
    )


def _evaluate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        nargs="?",
        help="a .pt checkpoint, a save_pretrained folder, a zoo name (lrnet models) or a Hub repo "
        "id (user/repo); or give --model",
    )
    parser.add_argument(
        "--model",
        metavar="MODEL",
        help="the model to score instead of the positional checkpoint, e.g. camvid-lite",
    )
    parser.add_argument(
        "--data", metavar="ROOT", help="dataset root (default: the checkpoint's data.root)"
    )
    parser.add_argument("--dataset", help="dataset kind (default: the checkpoint's data.dataset)")
    parser.add_argument("--split", help="split to score (default: the checkpoint's data.val_split)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--eval-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="size the model runs at (default: the config's)",
    )
    parser.add_argument("--flip", action="store_true", help="test-time horizontal flip")
    parser.add_argument(
        "--scales", type=float, nargs="+", default=[1.0], help="test-time scales, e.g. 0.75 1 1.25"
    )
    parser.add_argument("--out", type=pathlib.Path, help="write the results as JSON here")
    from lrnet.inference.outputs import add_overwrite_argument

    add_overwrite_argument(parser, "an --out file")
    from lrnet.commands.common import add_backend_arguments

    add_backend_arguments(parser)


# The arguments of the commands whose module imports torch (see the module docstring).
ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "train": _train,
    "evaluate": _evaluate,
    "summary": _summary,
    "check-dataset": _check_dataset,
    "class-weights": _class_weights,
}


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """Declare command ``name``'s arguments on ``parser`` (importing its module only if light)."""
    if name in ARGUMENTS:
        ARGUMENTS[name](parser)
    else:
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
