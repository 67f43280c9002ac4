"""Segmentation metrics of the era from one dataset-level confusion matrix: global, class-average, mIoU."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


class ConfusionMatrix:
    """A ``(C, C)`` confusion matrix (rows: ground truth, columns: prediction), void excluded.

    Accumulates over a whole dataset (never per image) so memory stays flat; ``compute`` gives the
    paper's metrics. Classes absent from the ground truth get NaN and are left out of the means.
    """

    def __init__(
        self, num_classes: int, ignore_index: int = 255, device: torch.device | str = "cpu"
    ):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, target: Tensor, prediction: Tensor) -> None:
        """Add a batch: ``target`` and ``prediction`` are integer label maps of the same shape."""
        if target.shape != prediction.shape:
            raise ValueError(
                f"target {tuple(target.shape)} and prediction {tuple(prediction.shape)} differ"
            )
        valid = (target != self.ignore_index) & (target >= 0) & (target < self.num_classes)
        index = target[valid].to(torch.int64) * self.num_classes + prediction[valid].to(torch.int64)
        counts = torch.bincount(index, minlength=self.num_classes**2)
        self.matrix += counts.reshape(self.num_classes, self.num_classes).to(self.matrix.device)

    def all_reduce(self) -> None:
        """Sum the matrices of all processes (no-op outside torch.distributed)."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.matrix)

    def compute(self) -> dict[str, Any]:
        """Global accuracy, class-average accuracy, mIoU and per-class IoU / accuracy (fractions)."""
        m = self.matrix.double()
        true_positive = m.diag()
        gt_pixels = m.sum(1)
        predicted_pixels = m.sum(0)
        present = gt_pixels > 0
        total = m.sum()
        class_acc = torch.where(present, true_positive / gt_pixels.clamp_min(1), torch.nan)
        union = gt_pixels + predicted_pixels - true_positive
        iou = torch.where(present, true_positive / union.clamp_min(1), torch.nan)
        return {
            "global_acc": float(true_positive.sum() / total) if total > 0 else math.nan,
            "class_acc": _nanmean(class_acc),
            "miou": _nanmean(iou),
            "per_class_iou": [nan_to_none(v) for v in iou.tolist()],
            "per_class_acc": [nan_to_none(v) for v in class_acc.tolist()],
        }


def _nanmean(values: Tensor) -> float:
    valid = values[~values.isnan()]
    return float(valid.mean()) if valid.numel() else math.nan


def nan_to_none(value: float) -> float | None:
    """``None`` for NaN (an absent class, an empty matrix), so JSON holds null, not NaN."""
    return None if math.isnan(value) else value
