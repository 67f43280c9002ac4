"""``lrnet demo``, the main job, end to end at toy size: it trains, scores every stage, reports."""

from __future__ import annotations

import json
from pathlib import Path

from lrnet.cli import main


def test_demo_trains_evaluates_predicts_and_reports(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    overrides = [
        f"data.root={tmp_path / 'data'}",
        "data.options={num_train: 8, num_val: 4, size: [48, 64], seed: 1}",
        "data.crop_size=[48, 64]",
        "data.batch_size=4",
        "data.num_workers=0",
        "model.width=0.125",
        "model.skip_channels=8",
        "optim.iterations=4",
        "optim.warmup_iters=1",
        "run.val_interval=4",
        "run.checkpoint_interval=4",
        "run.log_interval=2",
        "run.tensorboard=false",
    ]
    assert main(["demo", "--out", str(out), *overrides]) == 0
    printed = capsys.readouterr().out
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert [s["stage"] for s in evaluation["stages"]] == [1, 2, 3, 4, 5, 6]
    assert all(0 <= s["global_acc"] <= 1 for s in evaluation["stages"])
    # The printed table is the evaluation's: its s_6 mIoU in percent, one decimal.
    s6 = evaluation["stages"][-1]["miou"]
    assert f"{100 * s6:.1f}" in printed.split("| s_6")[1].splitlines()[0]
    report = (out / "report.html").read_text()
    assert "<img" in report and 'src="http' not in report and 'href="http' not in report
    panels = sorted((out / "predictions").glob("*_stages.png"))
    assert len(panels) == 4
    assert {"best.pt", "last.pt", "config.yaml", "history.jsonl"} <= {p.name for p in out.iterdir()}
