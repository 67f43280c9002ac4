"""The HTML run report and the Markdown stage table, on a synthetic history and evaluation."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from lrnet import LrnetError
from lrnet.report import format_stage_table, line_chart, read_history, write_report

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
    lines = []
    for it in range(0, 101, 10):
        stage_losses = [2.0 - it / 100 + 0.1 * k for k in range(6)]
        lines.append(
            {
                "kind": "train",
                "iteration": it,
                "epoch": 0,
                "lr": 0.01,
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


def test_stage_table_has_a_row_per_stage_in_percent() -> None:
    table = format_stage_table(EVALUATION).splitlines()
    assert table[0] == "| stage | global acc | class avg | mIoU |"
    rows = table[2:]
    assert len(rows) == 6
    assert rows[0] == "| s_1 | 50.0 | 25.0 | 2.1 |"  # 0.123 / 6 = 0.0205 -> 2.1 %
    assert rows[5] == "| s_6 | 75.0 | 75.0 | 12.3 |"


def test_stage_table_size_column_and_missing_values() -> None:
    evaluation = {
        "stages": [
            {"stage": 1, "size": [12, 15], "global_acc": None, "class_acc": 0.5, "miou": 0.25},
            {"stage": 2, "size": [23, 30], "global_acc": 1.0, "class_acc": 0.5, "miou": 0.25},
        ]
    }
    table = format_stage_table(evaluation).splitlines()
    assert table[0] == "| stage | size | global acc | class avg | mIoU |"
    assert table[2] == "| s_1 | 12x15 | – | 50.0 | 25.0 |"
    assert table[3] == "| s_2 | 23x30 | 100.0 | 50.0 | 25.0 |"


def test_report_holds_tables_charts_and_embedded_panels(tmp_path: Path) -> None:
    panel = tmp_path / "img_stages.png"
    Image.new("RGB", (40, 10), (12, 34, 56)).save(panel)
    history = _history(tmp_path / "history.jsonl")
    path = write_report(tmp_path, history_path=history, evaluation=EVALUATION, panels=[panel])
    assert path == tmp_path / "report.html"
    page = path.read_text()
    # per-class rows, the class name escaped, absent classes as dashes
    assert '<tr><td>Sky</td><td class="num">90.1</td><td class="num">95.5</td></tr>' in page
    assert '<td>Car &amp; &lt;Truck&gt;</td><td class="num">–</td><td class="num">–</td>' in page
    assert "<Truck>" not in page
    # charts: loss, per-stage loss, val mIoU, stage bars; each a well-formed SVG
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(svgs) == 4
    for svg in svgs:
        ET.fromstring(svg)
    assert svgs[1].count("<polyline") == 6 and svgs[2].count("<polyline") == 6
    assert svgs[3].count("<rect") >= 18  # six stages x three metrics
    # the panel is inlined, byte for byte, so the page stands alone
    encoded = base64.b64encode(panel.read_bytes()).decode()
    assert f'src="data:image/png;base64,{encoded}"' in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")


def test_report_without_history_and_bad_history_lines(tmp_path: Path) -> None:
    page = write_report(
        tmp_path, history_path=None, evaluation=EVALUATION, out="r.html"
    ).read_text()
    assert page.count("<svg") == 1 and "s_6" in page
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "train", "iteration": 1, "loss": 1.0}\n{oops\n')
    with pytest.raises(LrnetError, match=r"bad\.jsonl:2"):
        read_history(bad)
    with pytest.raises(LrnetError, match="does not exist"):
        write_report(
            tmp_path, history_path=None, evaluation=EVALUATION, panels=[tmp_path / "no.png"]
        )


def test_line_chart_drops_non_finite_points_and_scales_to_the_data() -> None:
    svg = line_chart(
        {"a": [(0, 1.0), (10, float("nan")), (20, None), (30, 3.0)]},
        title="t",
        x_label="x",
        y_label="y",
    )
    points = re.search(r'<polyline points="([^"]+)"', svg)
    assert points is not None
    coords = [tuple(map(float, p.split(","))) for p in points.group(1).split()]
    assert len(coords) == 2
    # y = 3 is drawn higher (smaller SVG y) than y = 1, x = 30 to the right of x = 0
    assert coords[1][1] < coords[0][1] and coords[1][0] > coords[0][0]
