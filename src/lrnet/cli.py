"""The ``lrnet`` command: one subcommand per workflow step, each defined in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from lrnet._errors import LrnetError, user_message

# Subcommand -> (module, one-line help). Each module defines ``add_arguments(parser)`` and
# ``main(args) -> int``; modules are imported only when their command runs, so --help is quick.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("lrnet.demo", "generate synthetic data, train, evaluate, predict and write a report"),
    "train": ("lrnet.train", "train a model from a YAML config with key=value overrides"),
    "evaluate": ("lrnet.evaluate", "score every stage of a checkpoint on a dataset split"),
    "predict": ("lrnet.predict", "label images and draw the coarse-to-fine panels"),
    "export": ("lrnet.export", "export a checkpoint to ONNX"),
    "summary": ("lrnet.summary", "parameters and FLOPs of the models at an input size"),
    "check-dataset": ("lrnet.data.check", "look for unreadable files and bad labels in a dataset"),
    "class-weights": ("lrnet.data.class_weights", "class-balancing weights for a training split"),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="lrnet",
        description="Label Refinement Network: coarse-to-fine semantic segmentation.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lrnet`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Import only the chosen command's module: `lrnet train` should not pay for onnx imports.
    if argv and argv[0] in COMMANDS:
        module = importlib.import_module(COMMANDS[argv[0]][0])
        parser = argparse.ArgumentParser(prog=f"lrnet {argv[0]}", description=COMMANDS[argv[0]][1])
        module.add_arguments(parser)
        args = parser.parse_args(argv[1:])
        run = module.main
    else:
        args = build_parser().parse_args(argv)
        run = args._module.main
    try:
        return int(run(args) or 0)
    except LrnetError as exc:
        print(f"lrnet {argv[0]}: error: {user_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
