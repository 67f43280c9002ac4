"""Training end to end: files written, exact resume after SIGKILL, damaged checkpoints, 2-process DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lrnet import LrnetError
from lrnet.checkpoint import load_checkpoint, load_model
from lrnet.config import load_config
from lrnet.train import train

REPO = Path(__file__).resolve().parents[1]
SYNTHETIC = REPO / "configs" / "synthetic.yaml"


def tiny_overrides(tmp_path: Path, iterations: int = 12, **extra: str) -> list[str]:
    overrides = {
        "data.root": str(tmp_path / "data"),
        "data.options": "{num_train: 16, num_val: 6, size: [48, 64], seed: 1}",
        "data.crop_size": "[48, 64]",
        "data.batch_size": "4",
        "data.num_workers": "0",
        "model.width": "0.125",
        "model.skip_channels": "8",
        "optim.iterations": str(iterations),
        "optim.warmup_iters": "2",
        "run.out_dir": str(tmp_path / "run"),
        "run.val_interval": "6",
        "run.checkpoint_interval": "2",
        "run.log_interval": "2",
        "run.progress": "false",
        "run.tensorboard": "false",
    }
    overrides.update(extra)
    return [f"{k}={v}" for k, v in overrides.items()]


def read_history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def test_tiny_run_writes_everything(tmp_path: Path) -> None:
    run = train(load_config(SYNTHETIC, tiny_overrides(tmp_path)))
    assert {"last.pt", "best.pt", "config.yaml", "history.jsonl"} <= {p.name for p in run.iterdir()}
    state = load_checkpoint(run / "last.pt")
    assert state["train_state"]["iteration"] == 12
    assert state["config"]["model"]["num_classes"] == len(state["classes"]) >= 6
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in state["model"])
    history = read_history(run)
    train_lines = [h for h in history if h["kind"] == "train"]
    assert [h["iteration"] for h in train_lines] == list(range(2, 13, 2))
    assert all(len(h["stage_losses"]) == 6 for h in train_lines)
    val_lines = [h for h in history if h["kind"] == "val"]
    assert [h["iteration"] for h in val_lines] == [6, 12]
    best = load_checkpoint(run / "best.pt")
    assert best["train_state"]["best_miou"] == max(v["stages"][-1]["miou"] for v in val_lines)
    loaded = load_model(run / "last.pt")
    assert loaded.classes == state["classes"] and not loaded.model.training


def test_resume_after_sigkill_finishes_like_an_uninterrupted_run(tmp_path: Path) -> None:
    iterations = 40
    killed = tmp_path / "killed"
    args = [
        sys.executable,
        "-m",
        "lrnet",
        "train",
        str(SYNTHETIC),
        *tiny_overrides(killed, iterations),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env())
    last = killed / "run" / "last.pt"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if last.exists() and load_checkpoint(last)["train_state"]["iteration"] >= 6:
            break
        time.sleep(0.05)
    assert proc.poll() is None, (
        f"training ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    reached = load_checkpoint(last)["train_state"]["iteration"]
    assert 6 <= reached < iterations

    resumed = subprocess.run(
        [*args, "--resume"], capture_output=True, text=True, env=_env(), timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = load_checkpoint(last)
    assert final["train_state"]["iteration"] == iterations

    # The same run without the kill ends with the same weights: resume restored everything.
    # (a subprocess too, so that the thread count and hence float summation order are the same)
    reference = [
        sys.executable,
        "-m",
        "lrnet",
        "train",
        str(SYNTHETIC),
        *tiny_overrides(tmp_path / "ref", iterations),
    ]
    subprocess.run(reference, check=True, capture_output=True, env=_env(), timeout=300)
    expected = load_checkpoint(tmp_path / "ref" / "run" / "last.pt")["model"]
    for name, tensor in expected.items():
        torch.testing.assert_close(final["model"][name], tensor, msg=name)


def test_a_fresh_run_starts_a_fresh_history(tmp_path: Path) -> None:
    train(load_config(SYNTHETIC, tiny_overrides(tmp_path, iterations=4)))
    train(load_config(SYNTHETIC, tiny_overrides(tmp_path, iterations=2)))
    iterations = [h["iteration"] for h in read_history(tmp_path / "run") if h["kind"] == "train"]
    assert iterations == [2]


def test_wrong_number_of_class_weights(tmp_path: Path) -> None:
    config = load_config(SYNTHETIC, tiny_overrides(tmp_path, **{"data.class_weights": "[1, 2]"}))
    with pytest.raises(LrnetError, match="has 2 values but the dataset has 7 classes"):
        train(config)


def test_damaged_checkpoints_are_refused_clearly(tmp_path: Path) -> None:
    run = train(load_config(SYNTHETIC, tiny_overrides(tmp_path, iterations=2)))
    data = (run / "last.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(LrnetError, match=r"truncated\.pt cannot be read"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(LrnetError, match=r"garbage\.pt"):
        load_model(garbage)
    cli = subprocess.run(
        [sys.executable, "-m", "lrnet", "evaluate", str(truncated)],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert (
        cli.returncode == 2
        and "truncated.pt cannot be read" in cli.stderr
        and "Traceback" not in cli.stderr
    )


def test_non_finite_loss_stops_with_a_clear_message(tmp_path: Path) -> None:
    config = load_config(
        SYNTHETIC,
        tiny_overrides(tmp_path, iterations=30, **{"optim.lr": "1e12", "optim.warmup_iters": "0"}),
    )
    with pytest.raises(LrnetError, match="the loss became"):
        train(config)


def test_two_process_ddp_on_cpu(tmp_path: Path) -> None:
    iterations = 6
    overrides = tiny_overrides(
        tmp_path, iterations, **{"data.batch_size": "2", "run.val_interval": "6"}
    )
    # Both ranks build the synthetic data set: rank 0 writes it while the other waits.
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        "-m", "lrnet", "train", str(SYNTHETIC), *overrides,
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    history = read_history(run)
    iterations_logged = [h["iteration"] for h in history if h["kind"] == "train"]
    assert iterations_logged == sorted(set(iterations_logged)), "only rank 0 writes the log"
    assert load_checkpoint(run / "last.pt")["train_state"]["iteration"] == iterations
    assert "x2" in result.stdout + result.stderr  # both processes joined the job
    # Metrics reduced across the ranks' shards equal a single-process evaluation of the same weights.
    from lrnet import _runtime
    from lrnet.evaluate import evaluate

    loaded = load_model(run / "last.pt")
    dataset = _runtime.build_split(loaded.config.data, "val", _runtime.eval_transforms())
    single = evaluate(
        loaded.model, _runtime.make_loader(dataset, 1, 0), loaded.config.model.num_classes
    )
    logged = [h for h in history if h["kind"] == "val"][-1]["stages"]
    for ours, theirs in zip(logged, single, strict=True):
        assert ours["miou"] == pytest.approx(theirs["miou"], abs=1e-9)
        assert ours["global_acc"] == pytest.approx(theirs["global_acc"], abs=1e-9)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
