"""Folding BatchNorm into the convolution before it, for inference and deployment."""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Return an eval-mode copy of ``model`` with every conv + BatchNorm pair folded into one conv.

    A pair is a ``Conv2d`` directly followed by a ``BatchNorm2d`` in an ``nn.Sequential``; the
    BatchNorm becomes ``nn.Identity``, so the other layers' indices and state-dict keys stay put.
    A BatchNorm after no conv (the G-FRNet gates' product norm) is left as it is. The copy is for
    inference only (same function as ``model.eval()`` up to rounding); ``model`` is not modified.
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
