"""Markdown tables for docs/results.md from ``lrnet evaluate --out`` JSON files.

    python experiments/camvid/results_tables.py NAME=VAL.json [NAME=VAL.json ...] [--per-class]

One row per run: global accuracy, class-average accuracy and mIoU of the final stage, then the mIoU
of every stage s_1 .. s_6 (blank for single-output models); ``--per-class`` adds the final stage's
per-class IoU table. The cells are lrnet's own (``lrnet.report``), as ``lrnet evaluate`` prints them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lrnet.report import markdown_table, percent

STAGES = 6


def run_rows(runs: list[tuple[str, dict]]) -> tuple[list[str], list[list[str]]]:
    """The comparison table: a run per row, the final stage's metrics, then each stage's mIoU."""
    header = ["run", "global acc", "class avg", "mIoU", *(f"s_{k}" for k in range(1, STAGES + 1))]
    rows = []
    for name, result in runs:
        stages = result["stages"]
        final = stages[-1]
        per_stage = [percent(s["miou"]) for s in stages] if len(stages) > 1 else [""] * STAGES
        metrics = [percent(final["global_acc"]), percent(final["class_acc"])]
        rows.append([name, *metrics, f"**{percent(final['miou'])}**", *per_stage])
    return header, rows


def class_rows(runs: list[tuple[str, dict]]) -> tuple[list[str], list[list[str]]]:
    """The final stage's IoU of every class, a run per row."""
    header = ["run", *runs[0][1]["classes"]]
    return header, [[name, *(percent(c["iou"]) for c in r["per_class"])] for name, r in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="NAME=VAL.json")
    parser.add_argument("--per-class", action="store_true")
    args = parser.parse_args()
    runs = []
    for spec in args.runs:
        name, _, path = spec.partition("=")
        runs.append((name, json.loads(Path(path).read_text())))
    print(markdown_table(run_rows(runs)))
    if args.per_class:
        print()
        print(markdown_table(class_rows(runs)))


if __name__ == "__main__":
    main()
