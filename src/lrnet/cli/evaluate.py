"""``lrnet evaluate MODEL``: score every stage of a model on a split (``lrnet.evaluate``)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from lrnet._errors import LrnetError
from lrnet._files import check_replaceable, write_text
from lrnet.cli.common import (
    MODEL_SOURCE,
    add_backend_arguments,
    add_device_argument,
    add_overwrite_argument,
    predictor_for,
)
from lrnet.inference.image import MIN_SIZE, scaled_size
from lrnet.report import format_tables


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``lrnet evaluate``."""
    parser.add_argument("checkpoint", nargs="?", help=f"{MODEL_SOURCE}; or give --model")
    parser.add_argument(
        "--model", metavar="MODEL", help="the model to score instead of the positional checkpoint"
    )
    parser.add_argument(
        "--data", metavar="ROOT", help="dataset root (default: the checkpoint's data.root)"
    )
    parser.add_argument("--dataset", help="dataset kind (default: the checkpoint's data.dataset)")
    parser.add_argument("--split", help="split to score (default: the checkpoint's data.val_split)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--num-workers", type=int, default=2)
    add_device_argument(parser)
    parser.add_argument(
        "--eval-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="size the model runs at (default: the config's)",
    )
    parser.add_argument("--flip", action="store_true", help="test-time horizontal flip")
    parser.add_argument(
        "--scales", type=float, nargs="+", default=[1.0], help="test-time scales, e.g. 0.75 1 1.25"
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    add_overwrite_argument(parser, "an --out file")
    add_backend_arguments(parser)


def _check_options(args: argparse.Namespace) -> None:
    """Refuse bad numbers (not different results) and an --out that may not be replaced."""
    if args.batch_size < 1 or args.num_workers < 0:
        raise LrnetError("--batch-size must be at least 1 and --num-workers at least 0")
    if any(not (math.isfinite(s) and s > 0) for s in args.scales):
        raise LrnetError(f"--scales {args.scales}: every scale must be a positive number")
    if args.eval_size and min(args.eval_size) < MIN_SIZE:
        raise LrnetError(f"--eval-size {args.eval_size}: both sides must be at least {MIN_SIZE}")
    if args.eval_size:  # before any data is read; sizes from the images are checked as they come
        for scale in args.scales:
            scaled_size(args.eval_size, scale, args.batch_size)
    if (args.model is None) == (args.checkpoint is None):
        raise LrnetError("give the model to score once: a checkpoint (positional) or --model NAME")
    model = args.model if args.model is not None else args.checkpoint
    if args.out is not None:  # before any work; never the model's own file
        inputs = [Path(model)] if Path(model).exists() else []
        check_replaceable(args.out, overwrite=args.overwrite, inputs=inputs)


def _dataset(args: argparse.Namespace, source: str, loaded: Any) -> tuple[Any, Any]:
    """The model's data settings with ``--data``/``--dataset`` applied, and the split to score."""
    from lrnet import data as datasets  # imports torch

    data = loaded.config.data
    if args.data:
        data.root = args.data
    if args.dataset:
        data.dataset = args.dataset
        if args.dataset != "synthetic":
            data.options = {}
    dataset = datasets.build(data, args.split or data.val_split)
    if len(dataset.classes) != loaded.config.model.num_classes:
        raise LrnetError(
            f"{source} predicts {loaded.config.model.num_classes} classes but the "
            f"{data.dataset} dataset at {data.root} has {len(dataset.classes)}; evaluate on the "
            "dataset it was trained for"
        )
    return data, dataset


def main(args: argparse.Namespace) -> int:
    """Score every stage of the model on a split; print the tables, write ``--out``; 0 when done."""
    from lrnet import data as datasets  # imports torch
    from lrnet._distributed import resolve_device
    from lrnet.evaluate import evaluate, evaluation_record
    from lrnet.inference.backends import stage_module
    from lrnet.pretrained import load_model

    _check_options(args)
    source = args.model if args.model is not None else args.checkpoint
    loaded = load_model(source)
    data, dataset = _dataset(args, source, loaded)
    device = resolve_device(args.device)
    eval_size = args.eval_size or data.eval_size
    # the backend predict would run (each of them gives back every stage)
    predictor = predictor_for(args, source, device)
    stages = evaluate(
        stage_module(predictor.backend),
        datasets.loader(dataset, args.batch_size, args.num_workers),
        len(dataset.classes),
        device=device,
        ignore_index=data.ignore_index,
        eval_size=eval_size,
        flip=args.flip,
        scales=args.scales,
    )
    result = evaluation_record(
        stages,
        dataset.classes,
        checkpoint=str(source),
        backend=predictor.runtime,
        dataset=data.dataset,
        root=data.root,
        split=args.split or data.val_split,
        samples=len(dataset),
        eval_size=eval_size,
        flip=args.flip,
        scales=args.scales,
    )
    print(format_tables(result))
    if args.out:
        write_text(args.out, json.dumps(result, indent=2))
        print(f"\nwrote {args.out}")
    return 0
