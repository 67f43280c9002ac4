"""``lrnet report RUN``: the page of a run folder, with its evaluation and panels found there."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lrnet._checks import non_negative_int
from lrnet._errors import LrnetError
from lrnet._files import read_utf8
from lrnet.cli.common import add_overwrite_argument
from lrnet.report.history import check_evaluation, read_history
from lrnet.report.page import PANELS, check_out, draw_panels, write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``lrnet report``."""
    parser.add_argument("run", type=Path, help="run folder (history.jsonl; config.yaml, best.pt)")
    parser.add_argument(
        "--evaluation",
        type=Path,
        help="an `lrnet evaluate --out` JSON (default: RUN/val.json, else the last validation in "
        "RUN/history.jsonl, without per-class figures)",
    )
    parser.add_argument(
        "--panels",
        type=non_negative_int,
        metavar="N",
        help=f"panels of the first N validation images, drawn with RUN/best.pt (default {PANELS} "
        "when best.pt and the dataset are there; 0: none)",
    )
    parser.add_argument("--out", default="report.html", help="page to write, relative to RUN")
    add_overwrite_argument(parser, "an --out file")


def _evaluation(run: Path, path: Path | None, val: list[dict[str, Any]]) -> dict[str, Any]:
    """The evaluation JSON to show: ``path``, else ``run/val.json``, else the last validation."""
    path = path or (run / "val.json" if (run / "val.json").is_file() else None)
    if path is not None:
        try:
            text = read_utf8(path, "evaluation file", "not an `lrnet evaluate --out` JSON file")
            evaluation = json.loads(text)
        except (OSError, json.JSONDecodeError) as exc:
            raise LrnetError(f"{path} is not an `lrnet evaluate --out` JSON file ({exc})") from None
        return check_evaluation(evaluation, path)
    if not val:
        print(f"{run} has no val.json and no validation yet: the report shows the training alone")
        return {}
    iteration = val[-1].get("iteration")
    return {"source": f"history.jsonl, iteration {iteration}", "stages": val[-1].get("stages")}


def _run_panels(run: Path, count: int | None) -> list[Path]:
    """Panels drawn with ``run/best.pt`` on its validation split; by default skipped when absent."""
    if count == 0:
        return []
    if count is None and not (run / "best.pt").is_file():
        print(f"no panels: {run} has no best.pt")
        return []
    try:
        from lrnet.data import build
        from lrnet.inference.predictor import Predictor
        from lrnet.pretrained import load_model

        loaded = load_model(run / "best.pt")
        dataset = build(loaded.config.data, loaded.config.data.val_split)
    except LrnetError as exc:
        if count is not None:
            raise
        print(f"no panels ({exc}); --panels 0 leaves them out without this note")
        return []
    return draw_panels(
        Predictor.from_loaded(loaded),
        dataset,
        run / "predictions",
        PANELS if count is None else count,
    )


def main(args: argparse.Namespace) -> int:
    """Write the report of the run folder ``args.run``; 0 when done."""
    run: Path = args.run
    history = run / "history.jsonl"
    check_out(run / args.out, run, args.overwrite, [history, args.evaluation])  # before any work
    _, val = read_history(history)
    evaluation = _evaluation(run, args.evaluation, val)
    panels = _run_panels(run, args.panels)
    path = write_report(
        run,
        history_path=history,
        evaluation=evaluation,
        panels=panels,
        out=args.out,
        overwrite=args.overwrite,
    )
    print(f"report: {path.resolve()}")
    return 0
