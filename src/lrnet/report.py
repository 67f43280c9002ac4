"""Reports of a run: the stage and class tables (Markdown, HTML) and the one-file HTML page."""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import math
import mimetypes
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrnet import __version__
from lrnet._checks import non_negative_int
from lrnet._errors import ArgumentError, LrnetError
from lrnet.inference.outputs import (
    HTML_MARK,
    RUN_FILES,
    add_overwrite_argument,
    check_replaceable,
    write_text,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from lrnet.data import SegmentationDataset
    from lrnet.inference.predictor import Predictor

METRICS = (("global_acc", "global acc"), ("class_acc", "class avg"), ("miou", "mIoU"))
PANELS = 4  # coarse-to-fine panels drawn by default
Table = tuple[list[str], list[list[str]]]  # header, rows of cell texts


def percent(value: float | None) -> str:
    """A fraction as a percentage with one decimal; ``None`` (or NaN) as an en dash."""
    if value is None or math.isnan(value):
        return "–"
    return f"{100 * value:.1f}"


def stage_table(evaluation: Mapping[str, Any]) -> Table:
    """The stage-wise metrics in percent: ``stage [size] | global acc | class avg | mIoU``.

    Args:
        evaluation: the ``lrnet evaluate`` JSON; its ``stages`` entries hold ``stage`` and
            ``global_acc``, ``class_acc``, ``miou`` (fractions or null), and optionally ``size``
            (``[h, w]`` of that stage's map), which adds a size column.
    """
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
    return (
        markdown_table(stage_table(evaluation)) + "\n\n" + markdown_table(class_table(evaluation))
    )


def _numbered_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` of each JSON object line (see ``read_records``)."""
    if not path.is_file():
        raise LrnetError(f"history file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LrnetError(
            f"history file {path} is not UTF-8 text (byte {exc.start}); it is not a history "
            "lrnet wrote, or it is damaged"
        ) from None
    lines = text.splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines) and not text.endswith("\n"):
                break  # torn by a kill
            raise LrnetError(
                f"{path}:{number} is not valid JSON ({exc.msg}); the file is damaged"
            ) from None
        if not isinstance(record, dict):
            raise LrnetError(f"{path}:{number} is not a JSON object")
        if not _is_number(record.get("iteration")):
            raise LrnetError(f"{path}:{number} has no iteration number; the file is damaged")
        records.append((number, record))
    return records


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines history file, in file order; blank lines are skipped.

    A last line without its newline that is not JSON was torn by a kill mid-write and is left out.

    Raises:
        LrnetError: the file is missing or not UTF-8, or a whole line is not a JSON object with
            an ``iteration`` number (naming the line).
    """
    return [record for _, record in _numbered_records(Path(path))]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers_or_null(value: Any) -> bool:
    return isinstance(value, list) and all(v is None or _is_number(v) for v in value)


def _shape_problem(record: dict[str, Any]) -> str | None:
    """What is wrong with the shape of a train or val record of a history, if anything."""
    if record.get("kind") == "train":
        if not (record.get("loss") is None or _is_number(record["loss"])):
            return "its loss is not a number"
        if not (record.get("stage_losses") is None or _numbers_or_null(record["stage_losses"])):
            return "its stage_losses are not a list of numbers"
    elif record.get("kind") == "val":
        return _stages_problem(record.get("stages"))
    return None


_STAGE_NUMBERS = ("global_acc", "class_acc", "miou")


def _stages_problem(stages: Any) -> str | None:
    """What is wrong with a ``stages`` list (of a val record or an evaluation), if anything."""
    if not isinstance(stages, list) or not all(isinstance(s, dict) for s in stages):
        return "its stages are not a list of objects"
    for k, stage in enumerate(stages):
        for key in _STAGE_NUMBERS:
            if not (stage.get(key) is None or _is_number(stage[key])):
                return f"stage {k + 1}'s {key} is not a number"
        size = stage.get("size")
        if size is not None and not (
            isinstance(size, list) and len(size) == 2 and all(_is_number(v) for v in size)
        ):
            return f"stage {k + 1}'s size is not [h, w]"
    return None


def read_history(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(train, val)``: the records of a history file (``read_records``) with ``kind`` train
    (iteration, loss, stage_losses ...) and val (iteration, stages); other kinds are ignored.

    Raises:
        LrnetError: as ``read_records``, or a train or val record of another shape (naming the
            line).
    """
    records = _numbered_records(Path(path))
    for number, record in records:
        problem = _shape_problem(record)
        if problem:
            raise LrnetError(f"{path}:{number} is not a history record lrnet wrote: {problem}")
    return [r for _, r in records if r.get("kind") == "train"], [
        r for _, r in records if r.get("kind") == "val"
    ]


def check_evaluation(evaluation: Any, path: Path | str) -> dict[str, Any]:
    """``evaluation`` if it has the shape of an ``lrnet evaluate --out`` JSON, else an error
    naming ``path`` and what is wrong."""
    advice = "write it with `lrnet evaluate --out`"
    if not isinstance(evaluation, dict) or not isinstance(evaluation.get("stages"), list):
        raise LrnetError(f"{path} has no 'stages' list; {advice}")
    problem = _stages_problem(evaluation["stages"])
    per_class = evaluation.get("per_class")
    if problem is None and per_class is not None:
        rows = per_class if isinstance(per_class, list) else [None]
        for row in rows:
            if not isinstance(row, dict) or not all(
                row.get(k) is None or _is_number(row[k]) for k in ("iou", "acc")
            ):
                problem = "its per_class is not a list of {name, iou, acc} objects"
                break
    if problem:
        raise LrnetError(f"{path} is not an `lrnet evaluate --out` JSON: {problem}; {advice}")
    return evaluation


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
    """A line chart with one line per series; points with a null or non-finite value are dropped.

    Args:
        series: name -> ``(x, y)`` points.
        title, x_label, y_label: texts drawn on the chart.
        percent: the values are fractions, drawn in percent.
    """
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


def _image(data: bytes, mime: str, name: str) -> str:
    """An ``<img>`` holding ``data`` as a base64 data URI, so the page stands alone."""
    encoded = base64.b64encode(data).decode("ascii")
    name = html.escape(name)
    return (
        f'<figure><img src="data:{mime};base64,{encoded}" alt="{name}">'
        f"<figcaption>{name}</figcaption></figure>"
    )


def _chart(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return _image(buffer.getvalue(), "image/png", figure.axes[0].get_title())


def _panel(path: Path) -> str:
    if not path.is_file():
        raise LrnetError(f"panel image {path} does not exist")
    return _image(path.read_bytes(), mimetypes.guess_type(path.name)[0] or "image/png", path.name)


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 10px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; overflow-x: auto; }
figure img { max-width: 100%; }
.meta { color: #555; }
"""


def write_report(
    run_dir: str | Path,
    *,
    history_path: str | Path | None,
    evaluation: Mapping[str, Any],
    panels: Sequence[str | Path] = (),
    out: str | Path = "report.html",
    overwrite: bool = False,
) -> Path:
    """Write one HTML page that needs nothing else: no scripts, no network, images inlined.

    It shows the training curves (total and per-stage loss, validation mIoU of each stage against
    the iteration), the stage-wise metrics as a table and a bar chart, the final stage's per-class
    IoU and accuracy, the coarse-to-fine panels and the run's ``config.yaml`` if there is one.

    Args:
        run_dir: the run's folder; ``out`` is relative to it.
        history_path: the run's JSON-lines history (``{"kind": "train", ...}`` and
            ``{"kind": "val", ...}`` lines); ``None`` leaves the curves out.
        evaluation: the ``lrnet evaluate`` JSON (``stages``, ``per_class``, ``checkpoint``,
            ``dataset``, ``split``; each optional); fractions are shown in percent, null as "–".
        panels: image files (e.g. ``*_stages.png`` from ``lrnet predict``) to embed.
        out: file name of the page.
        overwrite: replace a file at ``out`` that lrnet did not write (never an input).

    Returns:
        The path of the written page (written atomically).

    Raises:
        LrnetError: the history or a panel file is missing or unreadable; or ``out`` is an
            input or a file lrnet did not write (without ``overwrite``).
    """
    run_dir = Path(run_dir)
    check_out(run_dir / out, run_dir, overwrite, [history_path, *panels])
    title = f"lrnet report: {run_dir.resolve().name}"
    info = " · ".join(
        f"{key}: {html.escape(str(evaluation[key]))}"
        for key in ("checkpoint", "dataset", "split", "source")
        if evaluation.get(key) is not None
    )
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{info}<br>written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC</p>',
    ]
    if history_path is not None:
        sections += [
            "<h2>Training</h2>",
            *map(_chart, training_charts(*read_history(history_path))),
        ]
    if evaluation.get("stages"):
        sections += [
            "<h2>Stages, coarse to fine (%)</h2>",
            html_table(stage_table(evaluation)),
            _chart(stage_bar_chart(evaluation["stages"])),
        ]
    if evaluation.get("per_class"):
        sections += ["<h2>Classes (final stage, %)</h2>", html_table(class_table(evaluation))]
    if panels:
        sections += ["<h2>Coarse-to-fine predictions</h2>", *(_panel(Path(p)) for p in panels)]
    if (run_dir / "config.yaml").is_file():
        text = (run_dir / "config.yaml").read_text(encoding="utf-8", errors="replace")
        config = html.escape(text)
        sections += ["<h2>Config (config.yaml)</h2>", f"<pre>{config}</pre>"]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'{HTML_MARK} {__version__}">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )
    return write_text(run_dir / out, page)


def check_out(
    path: Path, run_dir: Path, overwrite: bool, inputs: Sequence[str | Path | None] = ()
) -> None:
    """The page may replace an earlier report (or, with ``overwrite``, a file lrnet did not
    write) but never what the report reads: the run's own files, the history, the panels."""
    run_files = [run_dir / name for name in RUN_FILES]
    given = [Path(p) for p in (*inputs, *run_files) if p is not None and Path(p).exists()]
    check_replaceable(
        path, overwrite=overwrite, inputs=given, advice="give another --out, or --overwrite"
    )


def draw_panels(
    predictor: Predictor, dataset: SegmentationDataset, out_dir: Path, count: int = PANELS
) -> list[Path]:
    """Predict the first ``count`` samples of ``dataset`` and write their outputs to ``out_dir``.

    Returns:
        The ``*_stages.png`` panels (input, s_1 .. s_6, ground truth), one per sample.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ArgumentError(f"count must be a whole number >= 0, got {count!r}")
    panels = []
    for index in range(min(count, len(dataset))):
        image, mask = dataset[index]  # (3, H, W) in [0, 1], (H, W) class indices: no transforms
        written = predictor.save(
            predictor.predict(image),
            out_dir,
            dataset.samples[index][0].stem,
            ground_truth=mask.numpy(),
        )
        panels.append(written[-1])
    return panels


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="run folder (history.jsonl; config.yaml, best.pt)")
    parser.add_argument(
        "--evaluation",
        type=Path,
        help="an `lrnet evaluate --out` JSON (default: RUN/val.json if present, else the last "
        "validation in RUN/history.jsonl, without per-class figures)",
    )
    parser.add_argument(
        "--panels",
        type=non_negative_int,
        metavar="N",
        help=f"coarse-to-fine panels of the first N validation images, drawn with RUN/best.pt "
        f"(default {PANELS} when best.pt and the dataset are there; 0: none)",
    )
    parser.add_argument("--out", default="report.html", help="page to write, relative to RUN")
    add_overwrite_argument(parser, "an --out file")


def _evaluation(run: Path, path: Path | None, val: list[dict[str, Any]]) -> dict[str, Any]:
    """The evaluation JSON to show: ``path``, else ``run/val.json``, else the last validation."""
    path = path or (run / "val.json" if (run / "val.json").is_file() else None)
    if path is not None:
        try:
            evaluation = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise LrnetError(
                f"{path} is not UTF-8 text (byte {exc.start}), so not an `lrnet evaluate --out` "
                "JSON file"
            ) from None
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
    predictor = Predictor(
        loaded.model,
        classes=loaded.classes,
        palette=loaded.palette,
        eval_size=loaded.config.data.eval_size,
    )
    return draw_panels(predictor, dataset, run / "predictions", PANELS if count is None else count)


def main(args: argparse.Namespace) -> int:
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
