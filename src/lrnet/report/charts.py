"""The report's charts: loss and mIoU curves, and the metrics of each stage as bars."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lrnet.report.tables import METRICS

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _number(value: Any) -> float:
    """A JSON value as a float; NaN for null, booleans and anything else that is not a number."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if is_number else math.nan


def _axes(title: str, x_label: str, y_label: str) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure  # no pyplot: no global backend, Agg renders the PNG

    figure = Figure(figsize=(6.4, 3.2), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    axes.set(title=title, xlabel=x_label, ylabel=y_label)
    axes.grid(alpha=0.3)
    return figure, axes


def line_chart(
    series: Mapping[str, Sequence[tuple[Any, Any]]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    percent: bool = False,
) -> Figure:
    """A line chart of ``(x, y)`` points, one line per series, fractions drawn in percent with
    ``percent``; points with a null or non-finite value are dropped."""
    figure, axes = _axes(title, x_label, f"{y_label} (%)" if percent else y_label)
    for index, (name, points) in enumerate(series.items()):  # colour by series, drawn or not
        kept = [(_number(x), _number(y)) for x, y in points]
        kept = [(x, y) for x, y in kept if math.isfinite(x) and math.isfinite(y)]
        if kept:
            xs, ys = zip(*kept, strict=True)
            scale = 100.0 if percent else 1.0
            marker = "o" if len(xs) == 1 else ""  # a single point draws no line
            axes.plot(xs, [scale * y for y in ys], f"C{index}", label=name, marker=marker)
    if axes.lines:
        figure.legend(loc="outside right center", frameon=False)
        if percent or min(min(line.get_ydata()) for line in axes.lines) >= 0:
            axes.set_ylim(bottom=0)
    else:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
    return figure


def stage_bar_chart(stages: Sequence[Mapping[str, Any]]) -> Figure:
    """Grouped bars: global acc, class avg and mIoU (percent) of each stage; null draws no bar."""
    figure, axes = _axes("metrics per stage (coarse to fine)", "stage", "%")
    width = 0.8 / len(METRICS)
    for m, (key, label) in enumerate(METRICS):
        values = [100 * _number(s.get(key)) for s in stages]
        kept = [(k + (m - 1) * width, v) for k, v in enumerate(values) if math.isfinite(v)]
        axes.bar([x for x, _ in kept], [v for _, v in kept], width, color=f"C{m}", label=label)
    axes.set_xticks(
        range(len(stages)), [f"s_{s.get('stage', k + 1)}" for k, s in enumerate(stages)]
    )
    axes.set_ylim(0, 100)
    figure.legend(loc="outside right center", frameon=False)
    return figure


def training_charts(train: list[dict[str, Any]], val: list[dict[str, Any]]) -> list[Figure]:
    """Charts of the total loss, each stage's loss and each stage's validation mIoU."""
    stage_losses: dict[str, list[tuple[Any, Any]]] = {}
    for record in train:
        for k, value in enumerate(record.get("stage_losses") or []):
            stage_losses.setdefault(f"s_{k + 1}", []).append((record.get("iteration"), value))
    mious: dict[str, list[tuple[Any, Any]]] = {}
    for record in val:
        for k, stage in enumerate(record.get("stages") or []):
            mious.setdefault(f"s_{k + 1}", []).append((record.get("iteration"), stage.get("miou")))
    total = [(r.get("iteration"), r.get("loss")) for r in train]
    # The total is the (weighted) sum of the stage losses, so it gets its own scale.
    return [
        line_chart({"total": total}, title="training loss", x_label="iteration", y_label="loss"),
        line_chart(stage_losses, title="loss per stage", x_label="iteration", y_label="loss"),
        line_chart(
            mious, title="validation mIoU", x_label="iteration", y_label="mIoU", percent=True
        ),
    ]
