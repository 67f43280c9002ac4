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
    # Coarse stage: the 1x1 resize of the target takes the pixel at the cell's centre, (1, 1)
    # (the first pixel at or past the centre 1.0): class 0, p = 1/4.
    coarse = -math.log(0.25)
    # Fine stage: mean over the 3 non-void pixels: ln 2 (class 1), -ln 3/4, ln 2.
    fine = (2 * math.log(2) - math.log(0.75)) / 3
    assert terms[0].item() == pytest.approx(coarse, rel=1e-6)
    assert terms[1].item() == pytest.approx(fine, rel=1e-6)
    assert total.item() == pytest.approx(coarse + fine, rel=1e-6)


def test_class_and_stage_weights() -> None:
    total, terms = StageLoss(stage_weights=[0.5, 2.0], class_weights=[1.0, 3.0])(_stages(), TARGET)
    fine = (3 * math.log(2) - math.log(0.75) + math.log(2)) / (3 + 1 + 1)  # sum w*nll / sum w
    coarse = -math.log(0.25)  # the centre pixel, class 0 (weight 1)
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


def _centroid(mask: torch.Tensor, cell: float) -> torch.Tensor:
    """(row, col) centroid of a boolean (H, W) map, in input pixels for cells of ``cell`` pixels."""
    rows, cols = torch.nonzero(mask, as_tuple=True)
    return torch.stack([rows.float().mean(), cols.float().mean()]) * cell + (cell - 1) / 2


@pytest.mark.parametrize("stride", [4, 8, 32])
def test_resize_target_keeps_objects_where_they_are(stride: int) -> None:
    # Blobs at random positions: resized to a stage's grid, each keeps its centroid on average
    # (to within the half pixel by which an even cell's sample point misses its centre, plus a
    # tenth of a cell of noise) and every one within a cell. Sampling each cell's top-left pixel
    # ("nearest") moves them all by (stride - 1) / 2 pixels: 15.5 at s_1.
    generator = torch.Generator().manual_seed(0)
    size, offsets = 16 * stride, []
    for _ in range(200):
        top, left = torch.randint(0, size - 3 * stride, (2,), generator=generator).tolist()
        height, width = torch.randint(stride, 3 * stride, (2,), generator=generator).tolist()
        target = torch.zeros(1, size, size, dtype=torch.long)
        target[0, top : top + height, left : left + width] = 1
        small = resize_target(target, (16, 16))[0] == 1
        if small.any():
            offsets.append(_centroid(small, stride) - _centroid(target[0] == 1, 1))
    shifts = torch.stack(offsets)  # (blobs, 2) in pixels
    assert len(offsets) > 150
    assert shifts.mean(0).abs().max() <= 0.5 + 0.1 * stride, shifts.mean(0)
    assert shifts.abs().max() <= stride


def test_resize_target_takes_the_cell_centre() -> None:
    # 6x6 -> 2x2: each 3x3 cell holds its own label only at its centre pixel.
    target = torch.full((1, 6, 6), 7)
    for i in range(2):
        for j in range(2):
            target[0, 3 * i + 1, 3 * j + 1] = 2 * i + j
    assert resize_target(target, (2, 2)).tolist() == [[[0, 1], [2, 3]]]


def test_wrong_number_of_stage_weights() -> None:
    with pytest.raises(LrnetError, match="2 stage weights given for a model with 1 stages"):
        StageLoss(stage_weights=[1, 1])(
            [torch.randn(1, 2, 4, 4)], torch.zeros(1, 4, 4, dtype=torch.long)
        )


@pytest.mark.parametrize(
    ("stage_weights", "class_weights", "needle"),
    [
        ([1, 1, -1, 1, 1, 1], None, "stage_weights[2] is -1.0"),
        ([1, 1, 1, float("nan"), 1, 1], None, "stage_weights[3] is nan"),
        ([], None, "stage_weights must be a non-empty list"),
        (None, [1.0, -0.5, 1.0], "class_weights[1] is -0.5"),
        (None, [1.0, float("inf"), 1.0], "class_weights[1] is inf"),
    ],
)
def test_bad_weights_are_refused_when_the_loss_is_made(stage_weights, class_weights, needle):
    """Issue 21: from Python these were accepted (and [] silently meant all ones)."""
    with pytest.raises(LrnetError) as info:
        StageLoss(stage_weights, class_weights)
    assert needle in str(info.value)
