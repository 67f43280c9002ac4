"""Evaluation of every stage s_1 .. s_6 with the paper's metrics (``lrnet evaluate``)."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lrnet._errors import LrnetError
from lrnet._memory import check_fits, run_bytes
from lrnet.inference.image import MIN_SIZE, crop_stage, letterbox, resize, run_size
from lrnet.inference.outputs import check_replaceable, write_text
from lrnet.metrics import ConfusionMatrix, nan_to_none
from lrnet.report import format_tables


def stage_probabilities(
    model: nn.Module,
    images: Tensor,
    *,
    eval_size: Sequence[int] | None = None,
    flip: bool = False,
    scales: Sequence[float] = (1.0,),
) -> list[Tensor]:
    """Softmax of every stage at the images' own size, averaged over test-time augmentations.

    The images go in as ``Predictor`` feeds them (``lrnet.inference.image``: fitted inside the
    run size keeping their aspect, padded right and bottom), and each stage's padding is cut off
    before it is resized back, so the final stage's labels are ``Predictor``'s.

    Args:
        model: returns a tuple of stage logits for ``(N, 3, h, w)`` images in [0, 1].
        images: ``(N, 3, H, W)`` at the labels' original resolution.
        eval_size: ``(h, w)`` the model runs at (before ``scales``); ``None``: the native size
            (scaled as ``run_size`` says when a side is under 32 or over 1024).
        flip: also run the horizontally flipped images and average.
        scales: run at each scale of the run size and average.

    Returns:
        One ``(N, C, H, W)`` probability tensor per stage, coarse to fine.
    """
    height, width = (int(v) for v in images.shape[-2:])
    base = run_size(height, width, eval_size)
    canvases = [scaled_size(base, scale, len(images)) for scale in scales]
    sums: list[Tensor] | None = None
    count = 0
    for canvas in canvases:
        for flipped in (False, True) if flip else (False,):
            pixels = (images.flip(-1) if flipped else images).detach().float().cpu().numpy()
            inputs, valid = letterbox(pixels, canvas)
            probs = []
            for logits in model(torch.from_numpy(inputs).to(images.device)):
                cropped = crop_stage(logits.detach().float().cpu().numpy(), valid, canvas)
                p = torch.from_numpy(resize(cropped, (height, width))).softmax(1)
                probs.append(p.flip(-1) if flipped else p)
            sums = probs if sums is None else [s + p for s, p in zip(sums, probs, strict=True)]
            count += 1
    assert sums is not None
    return [s / count for s in sums]


def scaled_size(base: Sequence[int], scale: float, batch: int = 1) -> tuple[int, int]:
    """The run size at test-time ``scale`` of ``base`` ``(h, w)``.

    Raises:
        LrnetError: a side falls under ``MIN_SIZE`` (it would run at another scale than the
            one reported), or the size cannot fit in memory.
    """
    size = (round(base[0] * scale), round(base[1] * scale))
    if min(size) < MIN_SIZE:
        least = MIN_SIZE / min(base)
        raise LrnetError(
            f"scale {scale} runs {base[0]}x{base[1]} (H x W) at {size[0]}x{size[1]}, under the "
            f"model's minimum of {MIN_SIZE} pixels a side; use scales of at least {least:.3g} "
            "(or a larger --eval-size)"
        )
    check_fits(
        run_bytes(batch, *size, channels=8),
        f"scale {scale} of {base[0]}x{base[1]} (a {size[0]}x{size[1]} input)",
        "give smaller --scales or --eval-size",
    )
    return size


def _batches(images: Any, masks: Any) -> Iterable[tuple[Tensor, Tensor]]:
    """A stacked batch as is; a list of differently sized images one at a time."""
    if isinstance(images, Tensor):
        yield images, masks
    else:
        for image, mask in zip(images, masks, strict=True):
            yield image[None], mask[None]


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[Any, Any]],
    num_classes: int,
    *,
    device: torch.device | str = "cpu",
    ignore_index: int = 255,
    eval_size: Sequence[int] | None = None,
    flip: bool = False,
    scales: Sequence[float] = (1.0,),
    autocast_dtype: torch.dtype | None = None,
) -> list[dict[str, Any]]:
    """Metrics of every stage from one dataset-level confusion matrix each (memory stays flat).

    Predictions are resized back to the labels' original resolution before scoring. Under
    torch.distributed each rank sees its shard and the matrices are summed across ranks.

    Returns:
        One dict per stage (coarse to fine) with ``global_acc``, ``class_acc``, ``miou``,
        ``per_class_iou`` and ``per_class_acc`` (fractions; ``None`` for absent classes).
    """
    was_training = model.training
    model.eval()
    device = torch.device(device)
    matrices: list[ConfusionMatrix] = []
    for images, masks in loader:
        for image_batch, mask_batch in _batches(images, masks):
            image_batch = image_batch.to(device, non_blocking=True)
            mask_batch = mask_batch.to(device, non_blocking=True)
            with torch.autocast(
                device.type,
                dtype=autocast_dtype or torch.float32,
                enabled=autocast_dtype is not None,
            ):
                probs = stage_probabilities(
                    model, image_batch, eval_size=eval_size, flip=flip, scales=scales
                )
            if not matrices:
                matrices = [ConfusionMatrix(num_classes, ignore_index, device) for _ in probs]
            for matrix, p in zip(matrices, probs, strict=True):
                matrix.update(mask_batch, p.argmax(1))
    if not matrices:  # this rank had no sample; still join the all-reduce with zeros
        stage_count = len(model(torch.zeros(1, 3, 64, 64, device=device)))
        matrices = [ConfusionMatrix(num_classes, ignore_index, device) for _ in range(stage_count)]
    model.train(was_training)
    results = []
    for matrix in matrices:
        matrix.all_reduce()
        results.append(matrix.compute())
    return results


def evaluation_record(
    stages: list[dict[str, Any]], classes: Sequence[str], **info: Any
) -> dict[str, Any]:
    """The evaluation JSON: ``info``, per-stage metrics (null for NaN), final per-class table."""
    final = stages[-1]
    return {
        **info,
        "classes": list(classes),
        "stages": [
            {"stage": k + 1, **{m: nan_to_none(s[m]) for m in ("global_acc", "class_acc", "miou")}}
            for k, s in enumerate(stages)
        ],
        "per_class": [
            {"name": name, "iou": iou, "acc": acc}
            for name, iou, acc in zip(
                classes, final["per_class_iou"], final["per_class_acc"], strict=True
            )
        ],
    }


def _check_options(args: argparse.Namespace) -> None:
    """Bad numbers are errors, not different results; an --out that may not be replaced is one
    before any work."""
    if args.batch_size < 1 or args.num_workers < 0:
        raise LrnetError("--batch-size must be at least 1 and --num-workers at least 0")
    if any(not (math.isfinite(s) and s > 0) for s in args.scales):
        raise LrnetError(f"--scales {args.scales}: every scale must be a positive number")
    if args.eval_size and min(args.eval_size) < MIN_SIZE:
        raise LrnetError(f"--eval-size {args.eval_size}: both sides must be at least {MIN_SIZE}")
    if args.eval_size:  # before any data is read; sizes from the images are checked as they come
        for scale in args.scales:
            scaled_size(args.eval_size, scale, args.batch_size)
    model = args.model if args.model is not None else args.checkpoint
    if args.out is not None:  # before any work; never the model's own file
        inputs = [Path(model)] if model is not None and Path(model).exists() else []
        check_replaceable(args.out, overwrite=args.overwrite, inputs=inputs)


def main(args: argparse.Namespace) -> int:
    from lrnet import data as datasets
    from lrnet._distributed import resolve_device
    from lrnet.pretrained import load_model

    _check_options(args)
    if (args.model is None) == (args.checkpoint is None):
        raise LrnetError("give the model to score once: a checkpoint (positional) or --model NAME")
    source = args.model if args.model is not None else args.checkpoint
    loaded = load_model(source)
    data = loaded.config.data
    if args.data:
        data.root = args.data
    if args.dataset:
        data.dataset = args.dataset
        if args.dataset != "synthetic":
            data.options = {}
    device = resolve_device(args.device)
    split = args.split or data.val_split
    dataset = datasets.build(data, split)
    classes, num_classes = dataset.classes, len(dataset.classes)
    if num_classes != loaded.config.model.num_classes:
        raise LrnetError(
            f"{source} predicts {loaded.config.model.num_classes} classes but the "
            f"{data.dataset} dataset at {data.root} has {num_classes}; evaluate on the dataset it was trained for"
        )
    loader = datasets.loader(dataset, args.batch_size, args.num_workers)
    eval_size = args.eval_size or data.eval_size
    from lrnet.commands.common import predictor_for
    from lrnet.inference.backends import stage_module

    # the backend predict would run (every stage comes back from each of them)
    predictor = predictor_for(args, source, device)
    stages = evaluate(
        stage_module(predictor.backend),
        loader,
        num_classes,
        device=device,
        ignore_index=data.ignore_index,
        eval_size=eval_size,
        flip=args.flip,
        scales=args.scales,
    )
    result = evaluation_record(
        stages,
        classes,
        checkpoint=str(source),
        backend=predictor.runtime,
        dataset=data.dataset,
        root=data.root,
        split=split,
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
