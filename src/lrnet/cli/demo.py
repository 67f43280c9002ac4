"""``lrnet demo``: a small LRN trained and scored on synthetic data, a report (``lrnet.demo``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lrnet.cli.common import add_overwrite_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``lrnet demo``."""
    parser.add_argument(
        "--out", type=Path, default=Path("runs/demo"), help="run directory (default: runs/demo)"
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="overrides of the shipped synthetic.yaml"
    )
    add_overwrite_argument(parser, "an earlier run in --out, and files there")


def main(args: argparse.Namespace) -> int:
    """Run the demo into ``--out``; 0 when its report is written."""
    from lrnet.demo import run_demo  # imports torch

    report_path = run_demo(args.out, args.overrides, args.overwrite)
    print(f"\nreport: {report_path.resolve()}")
    return 0
