"""``lrnet save-pretrained``: a run's checkpoint as a folder to share (``lrnet.pretrained``),
its model card filled from the run: training command, recorded val scores, data terms."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from lrnet._errors import LrnetError
from lrnet.cli.common import add_overwrite_argument
from lrnet.report import read_history

HISTORY, RUN_CONFIG = "history.jsonl", "config.yaml"


def run_scores(history: Path, iteration: int | None) -> tuple[list[float], str]:
    """The val mIoU of each stage (%) that a run recorded at ``iteration``, and where from;
    ``([], "")`` when there is no history or no validation at that iteration."""
    if iteration is None or not history.is_file():
        return [], ""
    _, val = read_history(history)
    records = [r for r in val if r.get("iteration") == iteration and r.get("stages")]
    if not records:
        return [], ""
    scores = [100 * float(stage["miou"]) for stage in records[-1]["stages"]]
    note = (
        f"Recorded by the training run at iteration {iteration} (its {history.name}), the "
        "iteration these weights are from."
    )
    return scores, note


def training_command(checkpoint: Path, state: dict[str, Any]) -> str | None:
    """The command that trained a checkpoint: the one ``lrnet train`` kept, else ``lrnet train
    RUN/config.yaml`` where the run's resolved config is there, else ``None``."""
    if state.get("command"):
        return str(state["command"])
    config = checkpoint.parent / RUN_CONFIG
    if config.is_file():
        return f"lrnet train {shlex.quote(str(config))}  # the run's resolved config"
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "The card carries the training command, the val scores at the checkpoint's iteration "
        "(RUN/history.jsonl) and the data terms, those of a model.init parent included (e.g. "
        "camvid-lite's CC BY-NC 4.0). Load it with --model OUT_DIR or load_model(OUT_DIR)."
    )
    parser.add_argument("checkpoint", type=Path, help="a checkpoint of lrnet train (RUN/best.pt)")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="the folder to write")
    parser.add_argument("--name", help="the model's name in the card (default: OUT_DIR's name)")
    parser.add_argument("--fp16", action="store_true", help="store the weights in float16 (half)")
    parser.add_argument("--command", help="the training command (default: the one the run kept)")
    parser.add_argument("--licence", help="the data terms (default: the dataset's and parent's)")
    add_overwrite_argument(parser, "a README.md, config.json or model.safetensors in OUT_DIR")


def main(args: argparse.Namespace) -> int:
    import torch  # after --help: these import torch

    from lrnet.checkpoint import load_checkpoint
    from lrnet.pretrained import load_model, save_pretrained

    source = Path(args.checkpoint)
    if not source.is_file() or source.suffix == ".safetensors":
        raise LrnetError(
            f"{source} is not a checkpoint file; give one written by lrnet train (RUN/best.pt)"
        )
    state = load_checkpoint(source)
    loaded = load_model(source)
    iteration = (state.get("train_state") or {}).get("iteration")
    scores, note = run_scores(source.parent / HISTORY, iteration)
    folder = save_pretrained(
        loaded.model,
        loaded.config,
        args.out_dir,
        classes=loaded.classes or None,
        palette=loaded.palette or None,
        dtype=torch.float16 if args.fp16 else None,
        name=args.name,
        val_miou=scores,
        command=args.command or training_command(source, state),
        licence=args.licence,
        val_note=note,
        overwrite=args.overwrite,
    )
    scored = "scores of iteration " + str(iteration) if scores else "no recorded scores"
    print(f"{source} -> {folder}/ (model.safetensors, config.json, README.md; {scored})")
    return 0
