"""Metrics from one confusion matrix, against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from lrnet.config import OptimConfig
from lrnet.metrics import ConfusionMatrix
from lrnet.schedule import lr_factor


def test_metrics_by_hand() -> None:
    cm = ConfusionMatrix(3)
    target = torch.tensor([0, 0, 0, 1, 1, 255, 0])
    prediction = torch.tensor([0, 0, 1, 1, 0, 2, 0])
    cm.update(target, prediction)
    r = cm.compute()
    # class 0: 4 pixels, 3 right; class 1: 2 pixels, 1 right; class 2 absent; the void pixel ignored.
    assert r["global_acc"] == pytest.approx(4 / 6)
    assert r["per_class_acc"] == pytest.approx([3 / 4, 1 / 2, None])
    # IoU 0: 3 / (4 + 4 - 3); IoU 1: 1 / (2 + 2 - 1)
    assert r["per_class_iou"][:2] == pytest.approx([3 / 5, 1 / 3])
    assert r["per_class_iou"][2] is None
    assert r["miou"] == pytest.approx((3 / 5 + 1 / 3) / 2)
    assert r["class_acc"] == pytest.approx((3 / 4 + 1 / 2) / 2)


def test_accumulates_over_the_dataset_not_per_image() -> None:
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([0, 0, 0, 0]), torch.tensor([0, 0, 0, 0]))
    cm.update(torch.tensor([1]), torch.tensor([0]))
    # Dataset level: class 0 IoU 4/5, class 1 IoU 0 -> mIoU 0.4 (a per-image mean would differ).
    assert cm.compute()["miou"] == pytest.approx(0.4)


def test_empty_matrix_is_nan() -> None:
    assert math.isnan(ConfusionMatrix(2).compute()["miou"])


def test_schedules() -> None:
    step = OptimConfig(schedule="step", iterations=100, milestones=[50, 80], gamma=0.1)
    assert [lr_factor(i, step) for i in (0, 49, 50, 80)] == pytest.approx([1, 1, 0.1, 0.01])
    poly = OptimConfig(schedule="poly", iterations=100, power=0.9)
    assert lr_factor(50, poly) == pytest.approx(0.5**0.9)
    cosine = OptimConfig(schedule="cosine", iterations=100)
    assert lr_factor(50, cosine) == pytest.approx(0.5) and lr_factor(100, cosine) == pytest.approx(
        0
    )
    warm = OptimConfig(schedule="constant", iterations=100, warmup_iters=10, warmup_factor=0.0)
    assert [lr_factor(i, warm) for i in (0, 5, 10)] == pytest.approx([0, 0.5, 1])
