"""A self-contained HTML run report: training curves, stage-wise metrics, classes and panels."""

from __future__ import annotations

import base64
import html
import json
import math
import mimetypes
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeGuard

from lrnet._errors import LrnetError

# Line and bar colours (matplotlib's tab10), one per series.
COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
METRICS = (("global_acc", "global acc"), ("class_acc", "class avg"), ("miou", "mIoU"))

# (x, y) of a chart; values that are not finite numbers (null, NaN) are dropped.
Point = tuple[Any, Any]


def percent(value: float | None) -> str:
    """A fraction as a percentage with one decimal; ``None`` (or NaN) as an en dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.1f}"


def format_stage_table(evaluation: dict[str, Any]) -> str:
    """The stage-wise metrics as a Markdown table, one row per stage, values in percent.

    Args:
        evaluation: the ``lrnet evaluate`` JSON; its ``stages`` entries hold ``stage``,
            ``global_acc``, ``class_acc`` and ``miou`` (fractions or null), and optionally
            ``size`` (``[h, w]`` of that stage's map), which adds a size column.

    Returns:
        ``| stage | global acc | class avg | mIoU |`` and a row ``| s_k | ... |`` per stage.
    """
    stages = evaluation.get("stages") or []
    with_size = any(s.get("size") for s in stages)
    header = ["stage", *(["size"] if with_size else []), *(label for _, label in METRICS)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|---|" + ("---|" if with_size else "") + "---:|" * len(METRICS),
    ]
    for index, s in enumerate(stages):
        cells = [f"s_{s.get('stage', index + 1)}"]
        if with_size:
            size = s.get("size")
            cells.append(f"{size[0]}x{size[1]}" if size else "–")
        cells += [percent(s.get(key)) for key, _ in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def read_history(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The training and validation records of a JSON-lines history file.

    Lines of other kinds are ignored; blank lines are skipped.

    Returns:
        ``(train, val)``: records with ``kind == "train"`` (iteration, loss, stage_losses ...)
        and ``kind == "val"`` (iteration, stages), in file order.

    Raises:
        LrnetError: the file is missing, or a line is not a JSON object (naming the line).
    """
    path = Path(path)
    if not path.is_file():
        raise LrnetError(f"history file {path} does not exist")
    train: list[dict[str, Any]] = []
    val: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LrnetError(f"{path}:{number} is not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise LrnetError(f"{path}:{number} is not a JSON object")
        if record.get("kind") == "train":
            train.append(record)
        elif record.get("kind") == "val":
            val.append(record)
    return train, val


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [low, high] (steps of 1, 2 or 5 x 10^k)."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


def _tick_label(value: float, percent: bool) -> str:
    if percent:
        return f"{100 * value:g}"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.0e}"
    return f"{value:g}"


def line_chart(
    series: Mapping[str, Sequence[Point]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    percent: bool = False,
    width: int = 640,
    height: int = 320,
) -> str:
    """An inline SVG line chart.

    Args:
        series: name -> ``(x, y)`` points; points with a null or non-finite value are dropped.
        title, x_label, y_label: texts drawn on the chart.
        percent: label the y axis in percent (values are fractions).
        width, height: size in pixels.

    Returns:
        An ``<svg>`` element.
    """
    clean = {
        name: [(float(x), float(y)) for x, y in points if _finite(x) and _finite(y)]
        for name, points in series.items()
    }
    clean = {name: points for name, points in clean.items() if points}
    left, right, top, bottom = 60, 130, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{left + plot_w / 2}" y="18" text-anchor="middle" font-weight="bold">'
        f"{html.escape(title)}</text>",
    ]
    if not clean:
        parts.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no data</text></svg>'
        )
        return "".join(parts)
    xs = [x for points in clean.values() for x, _ in points]
    ys = [y for points in clean.values() for _, y in points]
    x_ticks = _nice_ticks(min(xs), max(xs))
    y_low = 0.0 if percent or min(ys) >= 0 else min(ys)
    y_ticks = _nice_ticks(y_low, max(ys) if not percent else max(max(ys), 0.05))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    for y in y_ticks:
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" '
            'stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end" font-size="11">'
            f"{_tick_label(y, percent)}</text>"
        )
    for x in x_ticks:
        parts.append(
            f'<text x="{sx(x):.1f}" y="{top + plot_h + 16}" text-anchor="middle" font-size="11">'
            f"{_tick_label(x, False)}</text>"
        )
    parts.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>'
        f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle" font-size="12">'
        f"{html.escape(x_label)}</text>"
        f'<text transform="translate(14 {top + plot_h / 2}) rotate(-90)" text-anchor="middle" '
        f'font-size="12">{html.escape(y_label)}{" (%)" if percent else ""}</text>'
    )
    for index, (name, points) in enumerate(clean.items()):
        color = COLORS[index % len(COLORS)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="1.5">'
            f"<title>{html.escape(name)}</title></polyline>"
        )
        if len(points) == 1:  # a single point draws no line
            parts.append(
                f'<circle cx="{sx(points[0][0]):.1f}" cy="{sy(points[0][1]):.1f}" r="3" '
                f'fill="{color}"/>'
            )
        legend_y = top + 8 + 16 * index
        parts.append(
            f'<line x1="{left + plot_w + 10}" x2="{left + plot_w + 30}" y1="{legend_y}" '
            f'y2="{legend_y}" stroke="{color}" stroke-width="2"/>'
            f'<text x="{left + plot_w + 36}" y="{legend_y + 4}" font-size="12">'
            f"{html.escape(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def stage_bar_chart(
    stages: Sequence[dict[str, Any]], *, width: int = 640, height: int = 320
) -> str:
    """An inline SVG grouped bar chart: global acc, class avg and mIoU (percent) of each stage.

    Args:
        stages: the evaluation's ``stages`` entries, coarse to fine.

    Returns:
        An ``<svg>`` element; a missing (null) value draws no bar.
    """
    left, right, top, bottom = 50, 110, 28, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    title = "metrics per stage (coarse to fine)"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{title}">',
        f'<text x="{left + plot_w / 2}" y="18" text-anchor="middle" font-weight="bold">'
        f"{title}</text>",
    ]
    for tick in range(0, 101, 20):
        y = top + plot_h - tick / 100 * plot_h
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{tick}</text>'
        )
    group_w = plot_w / max(1, len(stages))
    bar_w = group_w * 0.8 / len(METRICS)
    for g, stage in enumerate(stages):
        group_x = left + g * group_w + group_w * 0.1
        for m, (key, label) in enumerate(METRICS):
            value = stage.get(key)
            if not _finite(value):
                continue
            bar_h = max(0.0, min(1.0, float(value))) * plot_h
            x = group_x + m * bar_w
            parts.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - bar_h:.1f}" width="{bar_w - 1:.1f}" '
                f'height="{bar_h:.1f}" fill="{COLORS[m]}"><title>s_{stage.get("stage", g + 1)} '
                f"{label}: {percent(value)}%</title></rect>"
            )
        parts.append(
            f'<text x="{left + (g + 0.5) * group_w:.1f}" y="{top + plot_h + 16}" '
            f'text-anchor="middle" font-size="12">s_{stage.get("stage", g + 1)}</text>'
        )
    parts.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>'
        f'<text transform="translate(14 {top + plot_h / 2}) rotate(-90)" text-anchor="middle" '
        'font-size="12">%</text>'
    )
    for m, (_, label) in enumerate(METRICS):
        y = top + 8 + 16 * m
        parts.append(
            f'<rect x="{left + plot_w + 10}" y="{y - 6}" width="12" height="12" '
            f'fill="{COLORS[m]}"/>'
            f'<text x="{left + plot_w + 28}" y="{y + 4}" font-size="12">{label}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _curves(train: list[dict[str, Any]], val: list[dict[str, Any]]) -> str:
    """Charts of the total loss, each stage's loss and each stage's validation mIoU."""
    total: list[Point] = []
    stage_losses: dict[str, list[Point]] = {}
    for record in train:
        iteration = record.get("iteration")
        total.append((iteration, record.get("loss")))
        for k, value in enumerate(record.get("stage_losses") or []):
            stage_losses.setdefault(f"s_{k + 1}", []).append((iteration, value))
    mious: dict[str, list[Point]] = {}
    for record in val:
        for k, stage in enumerate(record.get("stages") or []):
            mious.setdefault(f"s_{k + 1}", []).append((record.get("iteration"), stage.get("miou")))
    # The total is the (weighted) sum of the stage losses, so it gets its own scale.
    return (
        line_chart({"total": total}, title="training loss", x_label="iteration", y_label="loss")
        + line_chart(stage_losses, title="loss per stage", x_label="iteration", y_label="loss")
        + line_chart(
            mious, title="validation mIoU", x_label="iteration", y_label="mIoU", percent=True
        )
    )


def _class_table(evaluation: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(str(c.get('name', '')))}</td>"
        f'<td class="num">{percent(c.get("iou"))}</td><td class="num">{percent(c.get("acc"))}</td></tr>'
        for c in evaluation.get("per_class") or []
    )
    return (
        "<table><thead><tr><th>class</th><th>IoU (%)</th><th>accuracy (%)</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _stage_table(evaluation: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>s_{s.get('stage', k + 1)}</td>"
        + "".join(f'<td class="num">{percent(s.get(key))}</td>' for key, _ in METRICS)
        + "</tr>"
        for k, s in enumerate(evaluation.get("stages") or [])
    )
    head = "".join(f"<th>{label} (%)</th>" for _, label in METRICS)
    return f"<table><thead><tr><th>stage</th>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _embed(path: Path) -> str:
    """An ``<img>`` with the file inlined as a base64 data URI, so the page stands alone."""
    if not path.is_file():
        raise LrnetError(f"panel image {path} does not exist")
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    name = html.escape(path.name)
    return (
        f'<figure><img src="data:{mime};base64,{data}" alt="{name}">'
        f"<figcaption>{name}</figcaption></figure>"
    )


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 10px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; overflow-x: auto; }
figure img { max-width: 100%; image-rendering: pixelated; }
svg { margin: 0.5em 1em 0.5em 0; font-family: sans-serif; }
.meta { color: #555; }
"""


def write_report(
    run_dir: str | Path,
    *,
    history_path: str | Path | None,
    evaluation: dict[str, Any],
    panels: Sequence[str | Path] = (),
    out: str | Path = "report.html",
) -> Path:
    """Write one HTML page that needs nothing else: no scripts, no network, images inlined.

    It shows the training curves (total and per-stage loss, validation mIoU of each stage against
    the iteration), the stage-wise metrics as a table and a bar chart, the final stage's per-class
    IoU and accuracy, and the coarse-to-fine panels.

    Args:
        run_dir: the run's folder; ``out`` is relative to it.
        history_path: the run's JSON-lines history (``{"kind": "train", ...}`` and
            ``{"kind": "val", ...}`` lines); ``None`` leaves the curves out.
        evaluation: the ``lrnet evaluate`` JSON (``stages``, ``per_class``, ``checkpoint``,
            ``dataset``, ``split``); fractions are shown as percentages, null as "–".
        panels: image files (e.g. ``*_stages.png`` from ``lrnet predict``) to embed.
        out: file name of the page.

    Returns:
        The path of the written page.

    Raises:
        LrnetError: the history or a panel file is missing or unreadable.
    """
    run_dir = Path(run_dir)
    path = run_dir / out
    title = f"lrnet report: {run_dir.resolve().name}"
    info = " · ".join(
        f"{key}: {html.escape(str(evaluation[key]))}"
        for key in ("checkpoint", "dataset", "split")
        if evaluation.get(key) is not None
    )
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{info}<br>written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC</p>',
    ]
    if history_path is not None:
        train, val = read_history(history_path)
        sections += ["<h2>Training</h2>", _curves(train, val)]
    sections += [
        "<h2>Stages, coarse to fine</h2>",
        _stage_table(evaluation),
        stage_bar_chart(evaluation.get("stages") or []),
        "<h2>Classes (final stage)</h2>",
        _class_table(evaluation),
    ]
    if panels:
        sections += ["<h2>Coarse-to-fine predictions</h2>", *(_embed(Path(p)) for p in panels)]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


__all__ = ["format_stage_table", "line_chart", "read_history", "stage_bar_chart", "write_report"]
