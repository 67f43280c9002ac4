"""The benchmark harness runs as a package (``python -m bench.benchmark``); the results tables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_runs_as_a_module_from_the_repo_root() -> None:
    pytest.importorskip("segmentation_models_pytorch")  # the bench extra
    result = subprocess.run(
        [sys.executable, "-m", "bench.benchmark", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "--models" in result.stdout and "lrn-ort" in result.stdout


def test_harness_takes_turns_summarizes_and_measures_in_a_fresh_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("segmentation_models_pytorch")
    monkeypatch.syspath_prepend(str(ROOT))
    from bench import measure, variants

    assert {"lrn", "lrn-ort", "segnet"} <= set(variants.VARIANTS)
    calls: list[str] = []
    samples = measure.time_round_robin(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, warmup=1, repeats=2
    )
    assert calls == ["a", "b"] * 3  # one warm-up round, then the runners alternate
    assert [len(s) for s in samples.values()] == [2, 2]
    assert measure.summarize_samples([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0}
    # the memory worker: `python -m bench.measure` in a fresh process, the smallest network
    result = measure.peak_memory_mib("lraspp_mobilenet_v3_large", 1, 1, 32, 32, None)
    assert set(result) == {"baseline_mib", "peak_mib", "peak_reset_after_build"}
    assert result["baseline_mib"] > 0


def test_results_tables_rows(tmp_path: Path) -> None:
    stages = [{"stage": k, "global_acc": 0.5, "class_acc": 0.4, "miou": 0.1 * k} for k in (1, 2)]
    result = {
        "classes": ["a", "b"],
        "stages": stages,
        "per_class": [
            {"name": "a", "iou": 0.25, "acc": 0.5},
            {"name": "b", "iou": None, "acc": None},
        ],
    }
    path = tmp_path / "val.json"
    path.write_text(json.dumps(result))
    out = subprocess.run(
        [sys.executable, "experiments/camvid/results_tables.py", f"LRN={path}", "--per-class"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.splitlines()
    assert out[0] == "| run | global acc | class avg | mIoU | s_1 | s_2 | s_3 | s_4 | s_5 | s_6 |"
    assert out[2] == "| LRN | 50.0 | 40.0 | **20.0** | 10.0 | 20.0 |"
    assert out[-3:] == ["| run | a | b |", "|---|---:|---:|", "| LRN | 25.0 | – |"]
