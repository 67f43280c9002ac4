"""``lrnet check-dataset``: unreadable files and bad labels in a dataset (``lrnet.data.check``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lrnet._errors import LrnetError
from lrnet.cli.common import add_dataset_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``lrnet check-dataset``."""
    add_dataset_arguments(parser)
    parser.add_argument("--splits", nargs="+", help="splits to check (default: all found)")
    parser.add_argument(
        "--workers", type=int, default=0, help="parallel reader processes (default: 0, none)"
    )


def main(args: argparse.Namespace) -> int:
    """Check each split; return 1 if any problem was found, else 0."""
    from lrnet.data import DATASETS, FolderDataset, build_dataset  # imports torch
    from lrnet.data._io import DatasetError, SplitNotFoundError
    from lrnet.data.check import SplitReport, check_split, format_report
    from lrnet.data.dataset import MissingFilesError

    if args.workers < 0:
        raise LrnetError(f"--workers must be 0 or more, got {args.workers}")
    root = Path(args.root)
    options = {"sbd_root": args.sbd_root} if args.sbd_root else {}
    requested = args.splits is not None
    known = getattr(DATASETS[args.dataset], "splits", ())
    splits = list(args.splits if requested else (known or FolderDataset.available_splits(root)))
    problems = checked = 0
    for split in splits:
        name = f"{args.dataset} {split}"
        dataset = None
        try:
            try:
                dataset = build_dataset(args.dataset, root, split, **options)
            except MissingFilesError as exc:
                dataset = exc.dataset  # check the files that are there too; list the others
            report = check_split(dataset, name, args.workers)
        except SplitNotFoundError as exc:
            if not requested:
                print(f"== {name}: not found, skipped ({exc})")
                continue
            report = SplitReport(name=name, error=str(exc))
        except DatasetError as exc:
            report = SplitReport(name=name, error=str(exc))
        checked += 1
        problems += report.problems
        print(format_report(report, dataset), flush=True)
    if checked == 0:
        raise DatasetError(f"no split of {args.dataset} found under {root}")
    print(
        f"{problems} problem(s) in {checked} split(s)"
        if problems
        else f"all {checked} split(s) clean"
    )
    return 1 if problems else 0
