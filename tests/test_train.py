"""Training end to end: files written, exact resume after SIGKILL, damaged checkpoints, 2-process DDP."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lrnet import LrnetError
from lrnet.checkpoint import load_checkpoint
from lrnet.cli import main as cli
from lrnet.config import load_config
from lrnet.pretrained import load_model
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


def test_a_finished_run_is_never_replaced_by_a_fresh_one(tmp_path: Path, capsys) -> None:
    overrides = tiny_overrides(tmp_path, iterations=4)
    train(load_config(SYNTHETIC, overrides))
    run = tmp_path / "run"
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert cli(["train", str(SYNTHETIC), *overrides]) == 2
    err = capsys.readouterr().err
    assert str(run) in err and "--resume" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    # --overwrite replaces it, with a fresh history.
    assert (
        cli(["train", str(SYNTHETIC), *tiny_overrides(tmp_path, iterations=2), "--overwrite"]) == 0
    )
    iterations = [h["iteration"] for h in read_history(run) if h["kind"] == "train"]
    assert iterations == [2]


def test_resume_survives_torn_files_and_cleans_temporaries(tmp_path: Path) -> None:
    overrides = tiny_overrides(tmp_path, iterations=4, **{"data.class_weights": "enet"})
    train(load_config(SYNTHETIC, overrides))
    run = tmp_path / "run"
    weights = json.loads((run / "class_weights.json").read_text())["weights"]
    with (run / "history.jsonl").open("a") as f:
        f.write('{"kind": "train", "iter')  # a kill in the middle of a line
    (run / "class_weights.json").write_text('{"source": {"meth')
    (run / ".last.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    longer = tiny_overrides(tmp_path, iterations=6, **{"data.class_weights": "enet"})
    train(load_config(SYNTHETIC, longer), resume="auto")
    assert not list(run.glob(".*.tmp"))
    assert json.loads((run / "class_weights.json").read_text())["weights"] == weights
    iterations = [h["iteration"] for h in read_history(run) if h["kind"] == "train"]
    assert iterations == [2, 4, 6]


def test_class_weights_are_cached_by_everything_that_defines_the_data(tmp_path: Path) -> None:
    overrides = tiny_overrides(tmp_path, iterations=2, **{"data.class_weights": "enet"})
    train(load_config(SYNTHETIC, overrides))
    cache = tmp_path / "run" / "class_weights.json"
    first = json.loads(cache.read_text())
    other = {"data.options": "{num_train: 16, num_val: 6, size: [48, 64], seed: 2}"}
    other_data = tiny_overrides(tmp_path, iterations=2, **{"data.class_weights": "enet", **other})
    assert cli(["train", str(SYNTHETIC), *other_data, "--overwrite"]) == 0
    second = json.loads(cache.read_text())
    assert second["source"]["options"]["seed"] == 2 and second["weights"] != first["weights"]


def test_full_disk_is_a_clear_error_and_keeps_the_last_checkpoint(
    tmp_path: Path, monkeypatch
) -> None:
    import errno

    from lrnet.checkpoint import save_checkpoint

    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": {}, "config": {}})
    before = path.read_bytes()

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(LrnetError, match=r"cannot write .*: No space left") as info:
        save_checkpoint(path, {"model": {}, "config": {}})
    assert str(path) in str(info.value) and path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_resume_flags_and_overrides_after_them(tmp_path: Path, capsys) -> None:
    overrides = tiny_overrides(tmp_path, iterations=2)
    assert cli(["train", str(SYNTHETIC), *overrides]) == 0
    out = capsys.readouterr().out
    assert "iter 2/2" in out  # plain log lines when the output is not a terminal
    assert "last.pt, best.pt in" in out
    command = load_checkpoint(tmp_path / "run" / "last.pt")["command"]
    assert command.startswith("lrnet train ")
    # Overrides after --resume are read too (intermixed).
    more = [o for o in overrides if not o.startswith("optim.iterations")] + ["optim.iterations=4"]
    assert cli(["train", str(SYNTHETIC), "--resume", *more]) == 0
    resumed = load_checkpoint(tmp_path / "run" / "last.pt")
    assert resumed["train_state"]["iteration"] == 4
    assert resumed["command"] == command  # the command that started the run, for model cards
    assert cli(["train", str(SYNTHETIC), *more, "--resume", "--resume-from", "x.pt"]) == 2
    assert "not both" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra",
    [
        {"model.name": "segnet", "model.skip_channels": "null"},
        {"model.name": "segnet_ds", "model.skip_channels": "null"},
        {"model.name": "lrn_gated"},
        {"optim.optimizer": "sgd", "optim.grad_clip": "1.0", "optim.schedule": "step",
         "optim.milestones": "[1]"},
        {"run.amp": "bf16"},
    ],
    ids=["segnet", "segnet_ds", "lrn_gated", "sgd_grad_clip", "bf16"],
)  # fmt: skip
def test_every_model_and_recipe_trains(tmp_path: Path, extra: dict[str, str]) -> None:
    run = train(load_config(SYNTHETIC, tiny_overrides(tmp_path, iterations=2, **extra)))
    state = load_checkpoint(run / "last.pt")
    assert state["config"]["model"]["name"] == extra.get("model.name", "lrn")
    history = read_history(run)
    losses = [h["loss"] for h in history if h["kind"] == "train"]
    assert losses and all(math.isfinite(v) for v in losses)
    fresh = load_model(run / "last.pt").model.state_dict()
    initial = build_model_from(state["config"])
    assert any(not torch.equal(fresh[k], v) for k, v in initial.items()), "no weight moved"


def build_model_from(config: dict) -> dict:
    from lrnet.checkpoint import build_from_config
    from lrnet.config import from_dict

    torch.manual_seed(0)  # the run's seed: the weights it started from
    return build_from_config(from_dict(config)).state_dict()


def test_fine_tuning_from_a_model_with_other_classes(tmp_path: Path, capsys) -> None:
    from lrnet.checkpoint import build_from_config, save_checkpoint, training_state

    source = load_config(SYNTHETIC, [*tiny_overrides(tmp_path), "model.num_classes=11"])
    eleven = build_from_config(source)
    save_checkpoint(tmp_path / "eleven.pt", training_state(eleven, source))
    overrides = tiny_overrides(
        tmp_path, iterations=1, **{"model.init": str(tmp_path / "eleven.pt")}
    )
    config = load_config(SYNTHETIC, [*overrides, "optim.lr=1e-12", "optim.warmup_iters=0"])
    run = train(config)
    out = capsys.readouterr().out
    assert "tensors loaded" in out and "started afresh" in out and "coarse.weight" in out
    tuned = load_checkpoint(run / "last.pt")["model"]
    source_state = eleven.state_dict()
    same = [k for k, v in tuned.items() if v.shape == source_state[k].shape]
    different = [k for k, v in tuned.items() if v.shape != source_state[k].shape]
    assert different, "7 classes from 11: the class layers cannot be copied"
    encoder = [k for k in same if k.startswith("encoder.") and k.endswith("weight")]
    assert encoder and all(torch.allclose(tuned[k], source_state[k], atol=1e-6) for k in encoder)


def test_load_from_a_model_that_does_not_fit_is_a_clear_error(tmp_path: Path, capsys) -> None:
    from lrnet.checkpoint import build_from_config, save_checkpoint, training_state

    other = load_config(SYNTHETIC, [*tiny_overrides(tmp_path), "model.num_classes=11"])
    save_checkpoint(tmp_path / "eleven.pt", training_state(build_from_config(other), other))
    overrides = tiny_overrides(tmp_path, iterations=1)
    assert (
        cli(["train", str(SYNTHETIC), *overrides, "--load-from", str(tmp_path / "eleven.pt")]) == 2
    )
    err = capsys.readouterr().err
    assert "eleven.pt" in err and "Traceback" not in err and "model.init" in err


def test_a_short_run_learns_coarse_to_fine(tmp_path: Path) -> None:
    # 80 iterations on 48x64 scenes: the full-resolution s_6 must beat the 2x2 s_1, which cannot
    # draw a pole or a sign at all. A loss that skipped s_6 or broke its targets would fail this.
    overrides = tiny_overrides(tmp_path, iterations=80, **{"run.val_interval": "80",
                                                          "optim.lr": "0.005"})  # fmt: skip
    run = train(load_config(SYNTHETIC, overrides))
    stages = [h for h in read_history(run) if h["kind"] == "val"][-1]["stages"]
    assert stages[-1]["miou"] > stages[0]["miou"] + 0.05, [s["miou"] for s in stages]


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
    from lrnet import data
    from lrnet.evaluate import evaluate

    loaded = load_model(run / "last.pt")
    dataset = data.build(loaded.config.data, "val")
    single = evaluate(loaded.model, data.loader(dataset, 1, 0), loaded.config.model.num_classes)
    logged = [h for h in history if h["kind"] == "val"][-1]["stages"]
    for ours, theirs in zip(logged, single, strict=True):
        assert ours["miou"] == pytest.approx(theirs["miou"], abs=1e-9)
        assert ours["global_acc"] == pytest.approx(theirs["global_acc"], abs=1e-9)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def test_init_from_a_model_of_another_width_is_refused_not_counted(tmp_path: Path) -> None:
    """Issue 21: only BatchNorm step counters fitted, and were counted as loaded tensors."""
    from _helpers import write_tiny_checkpoint
    from lrnet.models import build_model
    from lrnet.pretrained import init_from

    source = write_tiny_checkpoint(tmp_path / "tiny.pt")  # 5 classes, width 0.125
    other = build_model("lrn", 3, width=0.25, skip_channels=8)
    with pytest.raises(LrnetError, match="do not fit this model"):
        init_from(other, source, strict=False)
    loaded, _ = init_from(build_model("lrn", 3, width=0.125), source, strict=False)
    assert loaded and not any(k.endswith("num_batches_tracked") for k in loaded)


@pytest.mark.parametrize("width", [0.25, 0.0625])
def test_init_into_another_width_with_the_same_classes_is_refused(
    tmp_path: Path, width: float
) -> None:
    """Issue 21: with the class count alike, the class layers' biases fit any width and were
    loaded as if the model had been: "6 tensors loaded", exit 0."""
    from _helpers import write_tiny_checkpoint
    from lrnet.models import build_model
    from lrnet.pretrained import init_from

    source = write_tiny_checkpoint(tmp_path / "tiny.pt")  # 5 classes, width 0.125
    other = build_model("lrn", 5, width=width)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(LrnetError, match="do not fit this model"):
        init_from(other, source, strict=False)
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())


def test_out_dir_with_a_tilde_is_in_the_home_folder(tmp_path: Path, monkeypatch) -> None:
    """Issue 21: run.out_dir=~/run made a folder named '~'."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    overrides = tiny_overrides(tmp_path, iterations=2, **{"run.out_dir": "~/run"})
    assert cli(["train", str(SYNTHETIC), *overrides]) == 0
    assert (tmp_path / "home" / "run" / "last.pt").is_file()
    assert not (tmp_path / "~").exists()


def test_resume_refuses_a_value_the_restored_state_would_override(tmp_path: Path, capsys) -> None:
    """Issue 21: `optim.lr=0.5 --resume` trained on at the old rate while config.yaml said 0.5."""
    overrides = tiny_overrides(tmp_path, iterations=2)
    assert cli(["train", str(SYNTHETIC), *overrides]) == 0
    run = tmp_path / "run"
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    changed = [*overrides, "optim.lr=0.5", "run.seed=7", "optim.iterations=4"]
    assert cli(["train", str(SYNTHETIC), *changed, "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "optim.lr 0.003 -> 0.5" in err and "run.seed 0 -> 7" in err
    assert "--load-from" in err and "optim.iterations" not in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_class_weights_cache_follows_the_masks(tmp_path: Path) -> None:
    """Issue 21: the cache was keyed on root, split and options; edited masks kept old weights."""
    import numpy as np
    from PIL import Image

    from lrnet._distributed import DistInfo
    from lrnet.data import build
    from lrnet.train import class_weights

    config = load_config(SYNTHETIC, tiny_overrides(tmp_path, **{"data.class_weights": "enet"}))
    config.data.root = str(tmp_path / "data")
    build(config.data, "train", generate=True)
    dataset = build(config.data, "train")
    first = class_weights(config, dataset, tmp_path, DistInfo())
    gone = int(np.flatnonzero(first)[-1])  # a class that occurs: remove it from every mask
    for _, mask_path in dataset.samples:
        mask = np.asarray(Image.open(mask_path)).copy()
        mask[mask == gone] = 255
        Image.fromarray(mask).save(mask_path)
    second = class_weights(config, build(config.data, "train"), tmp_path, DistInfo())
    assert first[gone] > 0 and second[gone] == 0
    assert json.loads((tmp_path / "class_weights.json").read_text())["weights"] == second
