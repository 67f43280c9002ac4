"""Folding BatchNorm into the convolution before it, for inference and deployment."""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Return an eval-mode copy of ``model`` with every conv + BatchNorm pair folded into one conv.

    A pair is a ``Conv2d`` immediately followed by a ``BatchNorm2d`` inside an ``nn.Sequential``
    (VGG's ``features`` and every ``conv_bn_relu`` block); the conv takes the BatchNorm's running
    statistics and affine parameters into its weight and bias and the BatchNorm becomes
    ``nn.Identity``, so indices and state-dict keys of the other layers stay put. BatchNorms that
    do not directly follow a conv (the G-FRNet gates' product norm) are left as they are.

    The copy computes the same function as ``model.eval()`` up to float rounding, and is for
    inference only: training it would no longer normalise by batch statistics. ``model`` itself
    is not modified.
    """
    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, norm = module[i], module[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                module[i] = fuse_conv_bn_eval(conv, norm)
                module[i + 1] = nn.Identity()
    return fused
