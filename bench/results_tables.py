"""Markdown tables for docs/results.md from ``lrnet evaluate --out`` JSON files.

    python bench/results_tables.py NAME=VAL.json [NAME=VAL.json ...] [--per-class]

One row per run: global accuracy, class-average accuracy and mIoU of the final stage, then the mIoU
of every stage s_1 .. s_6 (blank for single-output models); ``--per-class`` adds the final stage's
per-class IoU table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="NAME=VAL.json")
    parser.add_argument("--per-class", action="store_true")
    args = parser.parse_args()
    runs = []
    for spec in args.runs:
        name, _, path = spec.partition("=")
        runs.append((name, json.loads(Path(path).read_text())))

    print("| run | global acc | class avg | mIoU | s_1 | s_2 | s_3 | s_4 | s_5 | s_6 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, result in runs:
        stages = result["stages"]
        final = stages[-1]
        per_stage = [pct(s["miou"]) for s in stages] if len(stages) > 1 else [""] * 6
        print(
            f"| {name} | {pct(final['global_acc'])} | {pct(final['class_acc'])} | "
            f"**{pct(final['miou'])}** | " + " | ".join(per_stage) + " |"
        )
    if args.per_class:
        classes = runs[0][1]["classes"]
        print()
        print("| run | " + " | ".join(classes) + " |")
        print("|---|" + "---:|" * len(classes))
        for name, result in runs:
            ious = [pct(c["iou"]) for c in result["per_class"]]
            print(f"| {name} | " + " | ".join(ious) + " |")


if __name__ == "__main__":
    main()
