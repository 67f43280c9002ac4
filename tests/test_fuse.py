"""BatchNorm folding: same outputs as the eval-mode model, no conv-following BatchNorm left."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lrnet.models import build_model
from lrnet.models.fuse import fuse_conv_bn


def _randomize_norms(model: nn.Module, generator: torch.Generator) -> None:
    # Fresh BatchNorms are the identity (mean 0, var 1, weight 1, bias 0), which any folding,
    # even a wrong one, would reproduce; random statistics make the comparison meaningful.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=generator))
            m.running_var.copy_(torch.rand(c, generator=generator) + 0.5)
            m.weight.data.copy_(torch.randn(c, generator=generator))
            m.bias.data.copy_(torch.randn(c, generator=generator))


def _count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


@pytest.mark.parametrize(
    ("name", "norms_left"),
    [("lrn", 0), ("segnet", 0), ("lrn_gated", 5)],  # the gates' product norms stay
)
def test_fused_model_matches_eval_model(name: str, norms_left: int) -> None:
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = build_model(name, 5, width=0.125)
    _randomize_norms(model, generator)
    model.eval()
    norms_before = _count(model, nn.BatchNorm2d)

    fused = fuse_conv_bn(model)

    assert _count(fused, nn.BatchNorm2d) == norms_left
    assert _count(model, nn.BatchNorm2d) == norms_before  # the original is untouched
    images = torch.rand(2, 3, 45, 61, generator=generator)
    with torch.no_grad():
        expected = model(images)
        actual = fused(images)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-4)


def test_fused_copy_is_in_eval_mode() -> None:
    model = build_model("lrn", 3, width=0.125).train()
    assert not fuse_conv_bn(model).training
    assert model.training
