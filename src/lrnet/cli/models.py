"""The ``lrnet models`` command: the zoo as a table, then each entry's details (or JSON)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from lrnet.zoo import CAMVID_LICENCE, UNKNOWN_LICENCE, ZOO, ZooEntry


def _stage_text(entry: ZooEntry) -> str:
    return " / ".join(f"{v:.1f}" for v in entry.val_miou) if entry.val_miou else "not measured"


def format_zoo(entries: Sequence[ZooEntry]) -> str:
    """The zoo as a Markdown table, then each entry's details."""
    lines = [
        "| model | parameters | run size | val mIoU s_1 .. s_6 (%) | CPU latency | data licence |",
        "|---|---:|---|---|---:|---|",
    ]
    for e in entries:
        size = f"{e.run_size[0]}x{e.run_size[1]}" if e.run_size else "native"
        params = f"{e.parameters:,}" if e.parameters else "?"
        latency = f"{e.cpu_latency_ms:.0f} ms" if e.cpu_latency_ms is not None else "not measured"
        stages = _stage_text(e) if e.available else "not available"
        licence = e.licence.split(":")[0] if e.licence != UNKNOWN_LICENCE else "not recorded"
        if e.licence == CAMVID_LICENCE:
            licence = "CamVid: research and personal use only (CC BY-NC 4.0)"
        lines.append(f"| {e.name} | {params} | {size} | {stages} | {latency} | {licence} |")
    for e in entries:
        where = f"in the package ({e.file})" if e.file else e.url or "not available"
        lines += [
            "",
            f"{e.name}: {e.summary}",
            f"  weights:  {where}",
            f"  classes:  {', '.join(e.classes)}",
            f"  trained:  {e.training_command or 'not recorded'}",
            f"  data:     {e.training_data or 'not recorded'}",
            *([f"  limits:   {e.limits}"] if e.limits else []),
            f"  licence:  {e.licence}",
        ]
        if e.val_miou:
            lines.append(f"  val:      {_stage_text(e)} ({e.val_note})")
        if e.cpu_latency_ms is not None:
            lines.append(f"  latency:  {e.cpu_latency_ms:.0f} ms ({e.latency_note})")
        if e.recipe:
            lines.append(f"  recipe:   {e.recipe}")
        if e.available:
            lines.append(f"  use:      lrnet predict --model {e.name} IMAGE --out DIR")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Load one with `lrnet predict --model NAME ...`, `lrnet evaluate --model NAME ...` or "
        "lrnet.pretrained.load_model(NAME); URL entries are downloaded once into $LRNET_HOME "
        "(default ~/.cache/lrnet)."
    )
    parser.add_argument("--json", action="store_true", help="print the entries as JSON")


def main(args: argparse.Namespace) -> int:
    entries = list(ZOO.values())
    if args.json:
        rows = [{**vars(e), "available": e.available, "run_size": e.run_size} for e in entries]
        print(json.dumps(rows, indent=2))
    else:
        print(format_zoo(entries))
    return 0
