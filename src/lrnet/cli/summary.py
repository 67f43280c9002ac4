"""``lrnet summary``: parameters and FLOPs of the models at an input size (``lrnet.summary``)."""

from __future__ import annotations

import argparse
import typing

from lrnet.config import EncoderName, ModelName


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``lrnet summary``."""
    models = list(typing.get_args(ModelName))
    parser.add_argument("--models", nargs="+", default=models, choices=models)
    parser.add_argument("--num-classes", type=int, default=11)
    parser.add_argument("--encoder", default="vgg16_bn", choices=typing.get_args(EncoderName))
    parser.add_argument("--width", type=float, default=1.0, help="encoder width multiplier")
    parser.add_argument("--size", type=int, nargs=2, default=[360, 480], metavar=("H", "W"))


def main(args: argparse.Namespace) -> int:
    """Print the table of the chosen models at ``--size``; 0 when done."""
    from lrnet.models import build_model  # imports torch
    from lrnet.summary import format_table, summarize

    height, width = args.size
    rows = [
        summarize(
            build_model(name, args.num_classes, encoder=args.encoder, width=args.width),
            height,
            width,
            name,
        )
        for name in args.models
    ]
    print(format_table(rows, height, width))
    return 0
