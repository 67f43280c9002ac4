"""The run report: Markdown and HTML tables, the matplotlib charts, the one-file page, `lrnet report`."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from PIL import Image

from lrnet import LrnetError
from lrnet.cli import main as cli
from lrnet.report import (
    class_table,
    format_tables,
    html_table,
    line_chart,
    markdown_table,
    read_history,
    stage_bar_chart,
    stage_table,
    training_charts,
    write_report,
)

EVALUATION = {
    "checkpoint": "runs/x/best.pt",
    "dataset": "camvid",
    "split": "val",
    "classes": ["Sky", "Road", "Car & <Truck>"],
    "stages": [
        {
            "stage": k + 1,
            "global_acc": 0.5 + 0.05 * k,
            "class_acc": 0.25 + 0.1 * k,
            "miou": 0.123 * (k + 1) / 6,
        }
        for k in range(6)
    ],
    "per_class": [
        {"name": "Sky", "iou": 0.9012, "acc": 0.955},
        {"name": "Road", "iou": 0.5, "acc": 0.75},
        {"name": "Car & <Truck>", "iou": None, "acc": None},
    ],
}


def _history(path: Path) -> Path:
    """Train records every 10 iterations (stage k's loss 2 - it/100 + k/10), val at 50 and 100."""
    lines = []
    for it in range(0, 101, 10):
        stage_losses = [2.0 - it / 100 + 0.1 * k for k in range(6)]
        lines.append(
            {
                "kind": "train",
                "iteration": it,
                "loss": sum(stage_losses),
                "stage_losses": stage_losses,
            }
        )
        if it and it % 50 == 0:
            stages = [
                {"global_acc": 0.6, "class_acc": 0.4, "miou": 0.1 * k + it / 1000} for k in range(6)
            ]
            lines.append({"kind": "val", "iteration": it, "stages": stages})
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    return path


class _Page(HTMLParser):
    """Every attribute value, every ``<img>`` and the cells of every table of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.attributes: list[tuple[str, str]] = []
        self.images: list[dict[str, str]] = []
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attributes += [(k, v or "") for k, v in attrs]
        if tag == "img":
            self.images.append({k: v or "" for k, v in attrs})
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _decoded(image: dict[str, str]) -> bytes:
    match = re.fullmatch(r"data:image/png;base64,([A-Za-z0-9+/=]+)", image["src"])
    assert match, image["src"][:40]
    return base64.b64decode(match.group(1))


def test_stage_table_has_a_row_per_stage_in_percent() -> None:
    table = markdown_table(stage_table(EVALUATION)).splitlines()
    assert table[0] == "| stage | global acc | class avg | mIoU |"
    assert table[1] == "|---|---:|---:|---:|"
    rows = table[2:]
    assert len(rows) == 6
    assert rows[0] == "| s_1 | 50.0 | 25.0 | 2.1 |"  # 0.123 / 6 = 0.0205 -> 2.1 %
    assert rows[5] == "| s_6 | 75.0 | 75.0 | 12.3 |"


def test_stage_table_size_column_and_missing_values() -> None:
    evaluation = {
        "stages": [
            {"stage": 1, "size": [12, 15], "global_acc": None, "class_acc": 0.5, "miou": 0.25},
            {"stage": 2, "size": [23, 30], "global_acc": 1.0, "class_acc": float("nan")},
        ]
    }
    table = markdown_table(stage_table(evaluation)).splitlines()
    assert table[0] == "| stage | size | global acc | class avg | mIoU |"
    assert table[2] == "| s_1 | 12x15 | – | 50.0 | 25.0 |"
    assert table[3] == "| s_2 | 23x30 | 100.0 | – | – |"


def test_markdown_and_html_show_the_same_cells() -> None:
    for table in (stage_table(EVALUATION), class_table(EVALUATION)):
        header, rows = table
        markdown = [
            [cell.strip() for cell in line.strip("|").split("|")]
            for line in markdown_table(table).splitlines()
        ]
        assert markdown[0] == header and markdown[2:] == rows
        assert _Page(html_table(table)).tables == [[header, *rows]]
    text = format_tables(EVALUATION)
    assert "| Road | 50.0 | 75.0 |" in text and "| s_6 | 75.0 | 75.0 | 12.3 |" in text


def test_line_chart_drops_non_finite_points_and_scales_percent() -> None:
    figure = line_chart(
        {"a": [(0, 0.1), (10, float("nan")), (20, None), (30, 0.3)], "empty": [(5, None)]},
        title="t",
        x_label="x",
        y_label="y",
        percent=True,
    )
    (line,) = figure.axes[0].lines
    assert line.get_xydata().ravel().tolist() == pytest.approx([0, 10, 30, 30])
    assert figure.axes[0].get_ylabel() == "y (%)"


def test_training_charts_draw_the_history(tmp_path: Path) -> None:
    train, val = read_history(_history(tmp_path / "history.jsonl"))
    total, per_stage, miou = training_charts(train, val)
    assert [a.get_title() for f in (total, per_stage, miou) for a in f.axes] == [
        "training loss",
        "loss per stage",
        "validation mIoU",
    ]
    assert total.axes[0].lines[0].get_ydata().tolist() == pytest.approx(
        [12 + 1.5 - 6 * it / 100 for it in range(0, 101, 10)]  # the sum of the six stage losses
    )
    lines = per_stage.axes[0].lines
    assert [line.get_label() for line in lines] == [f"s_{k}" for k in range(1, 7)]
    assert lines[5].get_ydata().tolist() == pytest.approx(
        [2.5 - it / 100 for it in range(0, 101, 10)]
    )
    # val mIoU of s_k at iteration it is 0.1 (k - 1) + it / 1000, drawn in percent
    assert miou.axes[0].lines[2].get_xydata().ravel().tolist() == pytest.approx([50, 25, 100, 30])


def test_stage_bar_chart_heights_are_the_metrics_in_percent() -> None:
    stages = [dict(s) for s in EVALUATION["stages"]]
    stages[0]["miou"] = None
    axes = stage_bar_chart(stages).axes[0]
    heights = sorted(round(p.get_height(), 6) for p in axes.patches)
    expected = [100 * s[k] for s in stages for k in ("global_acc", "class_acc", "miou") if s[k]]
    assert len(heights) == 17 and heights == pytest.approx(sorted(expected))
    assert [t.get_text() for t in axes.get_xticklabels()] == [f"s_{k}" for k in range(1, 7)]


def test_report_is_one_self_contained_file(tmp_path: Path) -> None:
    panel = tmp_path / "img_stages.png"
    Image.new("RGB", (40, 10), (12, 34, 56)).save(panel)
    history = _history(tmp_path / "history.jsonl")
    path = write_report(tmp_path, history_path=history, evaluation=EVALUATION, panels=[panel])
    assert path == tmp_path / "report.html"
    text = path.read_text()
    page = _Page(text)
    # nothing to fetch: every src / href is inline data, no script
    assert all(v.startswith("data:") for k, v in page.attributes if k in ("src", "href"))
    outside_data = re.sub(r'"data:[^"]*"', "", text)
    assert "<script" not in outside_data and "http" not in outside_data
    titles = [image["alt"] for image in page.images]
    assert titles == [
        "training loss",
        "loss per stage",
        "validation mIoU",
        "metrics per stage (coarse to fine)",
        "img_stages.png",
    ]
    for image in page.images[:4]:
        chart = Image.open(io.BytesIO(_decoded(image)))
        assert chart.format == "PNG" and chart.width > 300 and chart.height > 150
    assert _decoded(page.images[4]) == panel.read_bytes()  # the panel byte for byte
    stage_rows, class_rows = page.tables
    assert stage_rows[1] == ["s_1", "50.0", "25.0", "2.1"] and len(stage_rows) == 7
    assert class_rows[1:] == [
        ["Sky", "90.1", "95.5"],
        ["Road", "50.0", "75.0"],
        ["Car & <Truck>", "–", "–"],
    ]
    assert "<Truck>" not in text  # escaped


def test_report_without_history_and_bad_inputs(tmp_path: Path) -> None:
    page = _Page(
        write_report(tmp_path, history_path=None, evaluation=EVALUATION, out="r.html").read_text()
    )
    assert [image["alt"] for image in page.images] == ["metrics per stage (coarse to fine)"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "train", "iteration": 1, "loss": 1.0}\n{oops\n')
    with pytest.raises(LrnetError, match=r"bad\.jsonl:2"):
        read_history(bad)
    torn = tmp_path / "torn.jsonl"  # a kill in the middle of the last line: that line is left out
    torn.write_text('{"kind": "train", "iteration": 1, "loss": 1.0}\n{"kind": "tr')
    assert read_history(torn) == ([{"kind": "train", "iteration": 1, "loss": 1.0}], [])
    with pytest.raises(LrnetError, match=r"no\.png"):
        write_report(
            tmp_path, history_path=None, evaluation=EVALUATION, panels=[tmp_path / "no.png"]
        )


def test_importing_the_report_needs_neither_torch_nor_matplotlib() -> None:
    code = "import sys, lrnet.report; print(sorted({'torch', 'matplotlib'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def _run_folder(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    _history(run / "history.jsonl")
    (run / "config.yaml").write_text(
        yaml.safe_dump({"data": {"dataset": "camvid", "val_split": "val"}})
    )
    return run


def test_report_command_uses_val_json_else_the_last_validation(tmp_path: Path, capsys) -> None:
    run = _run_folder(tmp_path)
    assert cli(["report", str(run)]) == 0  # no val.json, no best.pt: history alone
    text = (run / "report.html").read_text()
    assert "<pre>data:\n  dataset: camvid\n  val_split: val\n</pre>" in text  # its config.yaml
    page = _Page(text)
    assert len(page.tables) == 1  # stages only: a history holds no per-class figures
    assert [row[3] for row in page.tables[0][1:]] == [
        "10.0",
        "20.0",
        "30.0",
        "40.0",
        "50.0",
        "60.0",
    ]
    assert "no best.pt" in capsys.readouterr().out
    (run / "val.json").write_text(json.dumps(EVALUATION))
    assert cli(["report", str(run), "--out", "other.html"]) == 0
    page = _Page((run / "other.html").read_text())
    assert page.tables[0][1] == ["s_1", "50.0", "25.0", "2.1"] and page.tables[1][1][0] == "Sky"


def test_report_command_errors_name_the_file(tmp_path: Path, capsys) -> None:
    assert cli(["report", str(tmp_path / "nowhere")]) == 2
    assert "history.jsonl" in capsys.readouterr().err
    run = _run_folder(tmp_path)
    (run / "val.json").write_text("{not json")
    assert cli(["report", str(run)]) == 2
    assert "val.json" in capsys.readouterr().err
    (run / "val.json").unlink()
    assert cli(["report", str(run), "--panels", "2"]) == 2  # asked for panels: best.pt must exist
    assert "best.pt" in capsys.readouterr().err


def test_report_command_draws_panels_with_best_pt(tmp_path: Path) -> None:
    from lrnet import checkpoint
    from lrnet.config import load_config
    from lrnet.data.synthetic import SYNTHETIC_CLASSES, generate_synthetic
    from lrnet.models import build_model

    data = generate_synthetic(tmp_path / "data", num_train=1, num_val=3, size=(32, 48))
    run = _run_folder(tmp_path)
    overrides = ["data.dataset=synthetic", f"data.root={data}", "model.width=0.125"]
    config = load_config(None, [*overrides, f"model.num_classes={len(SYNTHETIC_CLASSES)}"])
    model = build_model("lrn", len(SYNTHETIC_CLASSES), width=0.125).eval()
    state = checkpoint.training_state(model, config, classes=SYNTHETIC_CLASSES)
    checkpoint.save_checkpoint(run / "best.pt", state)
    assert cli(["report", str(run), "--panels", "2"]) == 0
    panels = sorted((run / "predictions").glob("*_stages.png"))
    assert len(panels) == 2
    page = _Page((run / "report.html").read_text())
    inlined = [_decoded(image) for image in page.images if image["alt"].endswith("_stages.png")]
    assert inlined == [p.read_bytes() for p in panels]
    # input, s_1 .. s_6 and the ground truth: eight tiles side by side
    assert Image.open(panels[0]).width > 8 * 32
