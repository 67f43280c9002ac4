"""The stage-wise loss: cross-entropy on every label map s_1 .. s_6, summed."""

from __future__ import annotations

import typing
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lrnet._errors import LrnetError
from lrnet.config import LossMode

LOSS_MODES = typing.get_args(LossMode)  # the config schema lists them


def resize_target(target: Tensor, size: Sequence[int]) -> Tensor:
    """Nearest resize of an ``(N, H, W)`` integer label map at cell centres (void stays void).

    The centre is where the logits' bilinear upsampling (``align_corners=False``) and the masks'
    ``NEAREST_EXACT`` transform place a cell; ``mode="nearest"`` is half a cell (15 px at s_1) off.
    """
    if tuple(target.shape[-2:]) == tuple(size):
        return target
    resized = F.interpolate(target[:, None].float(), size=tuple(size), mode="nearest-exact")
    return resized[:, 0].long()


def _checked(name: str, values: Sequence[float] | Tensor | None) -> Tensor | None:
    """``values`` as a 1-D, non-empty float32 tensor of finite weights >= 0, or an LrnetError."""
    if values is None:
        return None
    weights = torch.as_tensor(values, dtype=torch.float32)
    if weights.ndim != 1 or weights.numel() == 0:
        raise LrnetError(
            f"{name} must be a non-empty list of numbers (or None for weight 1 each), got "
            f"shape {tuple(weights.shape)}"
        )
    bad = ~torch.isfinite(weights) | (weights < 0)
    if bad.any():
        index = int(bad.nonzero()[0])
        raise LrnetError(
            f"{name}[{index}] is {weights[index].item()}; weights must be finite and at least 0"
        )
    return weights


class StageLoss(nn.Module):
    """Sum over stages of pixel-wise cross-entropy, each stage weighted.

    ``mode="resize_target"`` (the paper) scores each stage against the labels resized to its size
    (``resize_target``); ``"upsample_logits"`` (the G-FRNet release) upsamples the logits to full
    size. Each term is the mean over non-void pixels, class-weighted as in ``F.cross_entropy``
    (sum of w_y * nll over the sum of w_y); a stage with no valid pixel contributes 0, not NaN.

    Args:
        stage_weights: one weight per stage (default 1 each); 0 switches a stage's loss off.
        class_weights: ``(C,)`` per-class weights, e.g. median-frequency balancing.
        ignore_index: label of void pixels.

    ``forward(stages, target)`` returns the total loss and the detached per-stage terms.
    """

    class_weights: Tensor | None

    def __init__(
        self,
        stage_weights: Sequence[float] | None = None,
        class_weights: Sequence[float] | Tensor | None = None,
        ignore_index: int = 255,
        mode: str = "resize_target",
    ):
        super().__init__()
        if mode not in LOSS_MODES:
            raise LrnetError(f"unknown loss mode {mode!r}; choose one of {', '.join(LOSS_MODES)}")
        checked = _checked("stage_weights", stage_weights)
        self.stage_weights = None if checked is None else checked.tolist()
        self.ignore_index = ignore_index
        self.mode = mode
        self.register_buffer("class_weights", _checked("class_weights", class_weights))

    def forward(self, stages: Sequence[Tensor], target: Tensor) -> tuple[Tensor, list[Tensor]]:
        weights = self.stage_weights or [1.0] * len(stages)
        if len(weights) != len(stages):
            raise LrnetError(
                f"{len(weights)} stage weights given for a model with {len(stages)} stages; "
                f"give {len(stages)} (or none for weight 1 each)"
            )
        total = stages[-1].new_zeros((), dtype=torch.float32)
        terms: list[Tensor] = []
        for logits, weight in zip(stages, weights, strict=True):
            if weight == 0:
                terms.append(total.new_zeros(()))
                continue
            term = self.stage_term(logits, target)
            terms.append(term.detach())
            total = total + weight * term
        return total, terms

    def stage_term(self, logits: Tensor, target: Tensor) -> Tensor:
        """Weighted mean cross-entropy of one stage's ``(N, C, h, w)`` logits."""
        if self.mode == "upsample_logits":
            logits = F.interpolate(
                logits, size=target.shape[-2:], mode="bilinear", align_corners=False
            )
        else:
            target = resize_target(target, logits.shape[-2:])
        logits = logits.float()
        nll_sum = F.cross_entropy(
            logits, target, self.class_weights, ignore_index=self.ignore_index, reduction="sum"
        )
        valid = target != self.ignore_index
        if self.class_weights is None:
            denominator = valid.sum().to(logits.dtype)
        else:
            denominator = self.class_weights[target[valid]].sum()
        return torch.where(denominator > 0, nll_sum / denominator.clamp_min(1e-12), nll_sum * 0)
