"""``lrnet class-weights``: class-balancing weights for a split (``lrnet.data.class_weights``)."""

from __future__ import annotations

import argparse
import typing

from lrnet.cli.common import add_dataset_arguments
from lrnet.config import ClassWeightMethod


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``lrnet class-weights``."""
    add_dataset_arguments(parser)
    parser.add_argument(
        "--splits", nargs="+", default=["train"], help="splits counted together (default: train)"
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
        help="median_frequency: count void as a class in the median (SegNet's 12 CamVid weights)",
    )


def main(args: argparse.Namespace) -> int:
    """Print the class weights of the chosen splits and a config snippet."""
    from lrnet.data import build_dataset  # imports torch
    from lrnet.data.class_weights import (
        METHODS,
        format_yaml,
        pixel_statistics,
        weights_from_statistics,
    )

    options = {"sbd_root": args.sbd_root} if args.sbd_root else {}
    datasets = [build_dataset(args.dataset, args.root, s, **options) for s in args.splits]
    classes = datasets[-1].classes
    stats = pixel_statistics(datasets[0])
    for dataset in datasets[1:]:
        stats.merge(pixel_statistics(dataset))
    methods = list(METHODS) if args.method == "all" else [args.method]
    table = {
        m: weights_from_statistics(stats, m, void_in_median=args.void_in_median) for m in methods
    }
    total = stats.pixels.sum()
    print(
        f"# {args.dataset} {'+'.join(args.splits)}: {stats.num_images} masks, "
        f"{stats.void_pixels / (total + stats.void_pixels):.2%} void"
    )
    width = max(len(c) for c in classes)
    print(f"# {'class':<{width}}  {'pixels':>8} " + " ".join(f"{m:>17}" for m in methods))
    for c, name in enumerate(classes):
        row = " ".join(f"{table[m][c]:>17.4f}" for m in methods)
        print(f"# {name:<{width}}  {stats.pixels[c] / total:>8.2%} {row}")
    for m in methods:
        if len(methods) > 1:
            print(f"# {m}")
        print(format_yaml(table[m]))
    return 0
