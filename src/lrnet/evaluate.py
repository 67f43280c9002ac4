"""Evaluation of every stage s_1 .. s_6 with the paper's metrics (``lrnet evaluate``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lrnet.inference.image import crop_stage, letterbox, resize, run_size, scaled_size
from lrnet.metrics import ConfusionMatrix, nan_to_none


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
            with torch.autocast(device.type, autocast_dtype, enabled=autocast_dtype is not None):
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
    for matrix in matrices:
        matrix.all_reduce()
    return [matrix.compute() for matrix in matrices]


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
