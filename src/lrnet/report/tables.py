"""The stage and class tables of an evaluation, as Markdown or HTML."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

METRICS = (("global_acc", "global acc"), ("class_acc", "class avg"), ("miou", "mIoU"))
Table = tuple[list[str], list[list[str]]]  # header, rows of cell texts


def percent(value: float | None) -> str:
    """A fraction as a percentage with one decimal; ``None`` (or NaN) as an en dash."""
    if value is None or math.isnan(value):
        return "–"
    return f"{100 * value:.1f}"


def stage_table(evaluation: Mapping[str, Any]) -> Table:
    """The stage-wise metrics of an ``lrnet evaluate`` JSON in percent: ``stage [size] | global
    acc | class avg | mIoU`` (the size column when a stage has its ``[h, w]``)."""
    stages = evaluation.get("stages") or []
    with_size = any(s.get("size") for s in stages)
    header = ["stage", *(["size"] if with_size else []), *(label for _, label in METRICS)]
    rows = []
    for k, s in enumerate(stages):
        size = s.get("size")
        cells = [f"s_{s.get('stage', k + 1)}"]
        cells += [f"{size[0]}x{size[1]}" if size else "–"] if with_size else []
        rows.append(cells + [percent(s.get(key)) for key, _ in METRICS])
    return header, rows


def class_table(evaluation: Mapping[str, Any]) -> Table:
    """The final stage's IoU and accuracy of each class, in percent."""
    rows = [
        [str(c.get("name", "")), percent(c.get("iou")), percent(c.get("acc"))]
        for c in evaluation.get("per_class") or []
    ]
    return ["class (final stage)", "IoU", "accuracy"], rows


def markdown_table(table: Table) -> str:
    """A Markdown table: the first column left-aligned, the numbers right-aligned."""
    header, rows = table
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def html_table(table: Table) -> str:
    """The same table as HTML, every cell escaped."""
    header, rows = table
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        f"<tr><td>{html.escape(row[0])}</td>"
        + "".join(f'<td class="num">{html.escape(c)}</td>' for c in row[1:])
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def format_tables(evaluation: Mapping[str, Any]) -> str:
    """The stage table and the final stage's per-class table, as Markdown."""
    return f"{markdown_table(stage_table(evaluation))}\n\n{markdown_table(class_table(evaluation))}"
