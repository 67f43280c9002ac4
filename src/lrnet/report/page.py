"""The one-file HTML report of a run: curves, stage and class tables, panels, the config."""

from __future__ import annotations

import base64
import html
import io
import mimetypes
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrnet import __version__
from lrnet._errors import ArgumentError, LrnetError
from lrnet._files import HTML_MARK, RUN_FILES, check_replaceable, write_text
from lrnet.report.charts import stage_bar_chart, training_charts
from lrnet.report.history import read_history
from lrnet.report.tables import class_table, html_table, stage_table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from lrnet.data import SegmentationDataset
    from lrnet.inference.predictor import Predictor

PANELS = 4  # coarse-to-fine panels drawn by default


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
    """Write one HTML page that needs nothing else (no scripts, no network, images inlined) and
    return its path: training curves, stage and class tables, panels, the run's ``config.yaml``.

    Args:
        run_dir: the run's folder; ``out`` is relative to it.
        history_path: the run's ``history.jsonl``; ``None`` leaves the curves out.
        evaluation: the ``lrnet evaluate`` JSON (``stages``, ``per_class``, ``checkpoint``,
            ``dataset``, ``split``; each optional).
        panels: image files (e.g. ``*_stages.png`` from ``lrnet predict``) to embed.
        overwrite: replace a file at ``out`` that lrnet did not write (never an input).

    Raises:
        LrnetError: the history or a panel file is missing or unreadable; or ``out`` may not be
            replaced.
    """
    run_dir = Path(run_dir)
    check_out(run_dir / out, run_dir, overwrite, [history_path, *panels])
    title = f"lrnet report: {run_dir.resolve().name}"
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        *_body(run_dir, history_path, evaluation, panels),
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'{HTML_MARK} {__version__}">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )
    return write_text(run_dir / out, page)


def _body(
    run_dir: Path,
    history_path: str | Path | None,
    evaluation: Mapping[str, Any],
    panels: Sequence[str | Path],
) -> list[str]:
    """The page's sections under its title, each left out when it has nothing to show."""
    info = " · ".join(
        f"{key}: {html.escape(str(evaluation[key]))}"
        for key in ("checkpoint", "dataset", "split", "source")
        if evaluation.get(key) is not None
    )
    sections = [
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
        sections += ["<h2>Config (config.yaml)</h2>", f"<pre>{html.escape(text)}</pre>"]
    return sections


def check_out(
    path: Path, run_dir: Path, overwrite: bool, inputs: Sequence[str | Path | None] = ()
) -> None:
    """The page may replace an earlier report (or, with ``overwrite``, any file) but never what
    the report reads: the run's own files, the history, the panels."""
    run_files = [run_dir / name for name in RUN_FILES]
    given = [Path(p) for p in (*inputs, *run_files) if p is not None and Path(p).exists()]
    check_replaceable(
        path, overwrite=overwrite, inputs=given, advice="give another --out, or --overwrite"
    )


def draw_panels(
    predictor: Predictor, dataset: SegmentationDataset, out_dir: Path, count: int = PANELS
) -> list[Path]:
    """Predict the first ``count`` samples of ``dataset``, write their outputs to ``out_dir`` and
    return their ``*_stages.png`` panels (input, s_1 .. s_6, ground truth)."""
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
