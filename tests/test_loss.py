"""The stage loss against hand-computed values; void pixels contribute nothing."""

from __future__ import annotations

import math

import pytest
import torch

from lrnet import LrnetError
from lrnet.loss import StageLoss, resize_target

# Ground truth 2x2: class 1, void, class 0, class 0.
TARGET = torch.tensor([[[1, 255], [0, 0]]])


def _stages() -> list[torch.Tensor]:
    coarse = torch.tensor([0.0, math.log(3)]).view(1, 2, 1, 1)  # p(class 1) = 3/4
    fine = torch.zeros(1, 2, 2, 2)
    fine[0, 0, 1, 0] = math.log(3)  # pixel (1, 0): p(class 0) = 3/4
    fine[0, :, 0, 1] = torch.tensor([50.0, -50.0])  # a void pixel with an extreme prediction
    return [coarse, fine]


def test_loss_equals_hand_computed_value() -> None:
    total, terms = StageLoss()(_stages(), TARGET)
    # Coarse stage: the 1x1 nearest resize of the target is its top-left pixel, class 1.
    coarse = -math.log(0.75)
    # Fine stage: mean over the 3 non-void pixels: ln 2 (class 1), -ln 3/4, ln 2.
    fine = (2 * math.log(2) - math.log(0.75)) / 3
    assert terms[0].item() == pytest.approx(coarse, rel=1e-6)
    assert terms[1].item() == pytest.approx(fine, rel=1e-6)
    assert total.item() == pytest.approx(coarse + fine, rel=1e-6)


def test_class_and_stage_weights() -> None:
    total, terms = StageLoss(stage_weights=[0.5, 2.0], class_weights=[1.0, 3.0])(_stages(), TARGET)
    fine = (3 * math.log(2) - math.log(0.75) + math.log(2)) / (3 + 1 + 1)  # sum w*nll / sum w
    coarse = -math.log(0.75)
    assert terms[1].item() == pytest.approx(fine, rel=1e-6)
    assert total.item() == pytest.approx(0.5 * coarse + 2.0 * fine, rel=1e-6)


def test_void_pixels_contribute_nothing() -> None:
    stages = [s.clone().requires_grad_() for s in _stages()]
    total, _ = StageLoss()(stages, TARGET)
    total.backward()
    assert stages[1].grad is not None
    assert torch.all(stages[1].grad[0, :, 0, 1] == 0)
    changed = _stages()
    changed[1][0, :, 0, 1] = torch.tensor([-7.0, 9.0])
    assert StageLoss()(changed, TARGET)[0].item() == pytest.approx(total.item())


def test_all_void_stage_is_zero_not_nan() -> None:
    total, terms = StageLoss()([torch.randn(1, 3, 4, 4)], torch.full((1, 4, 4), 255))
    assert total.item() == 0.0 and terms[0].item() == 0.0


def test_upsample_logits_mode_scores_at_full_size() -> None:
    coarse = torch.tensor([0.0, math.log(3)]).view(1, 2, 1, 1)
    _, terms = StageLoss(mode="upsample_logits")([coarse], TARGET)
    # Upsampled, every pixel has p(1) = 3/4: pixels of class 1 cost -ln 3/4, class 0 -ln 1/4.
    expected = (-math.log(0.75) - 2 * math.log(0.25)) / 3
    assert terms[0].item() == pytest.approx(expected, rel=1e-6)


def test_resize_target_is_nearest_and_keeps_void() -> None:
    target = torch.tensor([[[0, 0, 255, 255], [0, 0, 255, 255], [2, 2, 1, 1], [2, 2, 1, 1]]])
    assert resize_target(target, (2, 2)).tolist() == [[[0, 255], [2, 1]]]


def test_wrong_number_of_stage_weights() -> None:
    with pytest.raises(LrnetError, match="2 stage weights given for a model with 1 stages"):
        StageLoss(stage_weights=[1, 1])(
            [torch.randn(1, 2, 4, 4)], torch.zeros(1, 4, 4, dtype=torch.long)
        )
