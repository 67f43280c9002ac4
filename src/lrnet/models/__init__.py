"""The models: LRN and the paper's SegNet baselines, built by name from a model config."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from torch import nn

from lrnet._checks import whole_number
from lrnet._errors import ArgumentError, LrnetError
from lrnet.models.encoder import VGGEncoder
from lrnet.models.lrn import GateUnit, LabelRefinementNetwork, RefinementModule
from lrnet.models.segnet import SegNet

__all__ = [
    "MODELS",
    "GateUnit",
    "LabelRefinementNetwork",
    "RefinementModule",
    "SegNet",
    "VGGEncoder",
    "build_model",
]

# Model name -> class; the LRN ones also take skip_channels.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "lrn": LabelRefinementNetwork,
    "lrn_gated": partial(LabelRefinementNetwork, gated=True),
    "segnet": SegNet,
    "segnet_ds": partial(SegNet, deep_supervision=True),
}


def build_model(
    name: str,
    num_classes: int,
    *,
    encoder: str = "vgg16_bn",
    width: float = 1.0,
    skip_channels: int | None = None,
    encoder_weights: str | None = None,
) -> nn.Module:
    """Build a model by name: ``lrn``, ``lrn_gated`` (G-FRNet gates), ``segnet`` or ``segnet_ds``."""
    if name not in MODELS:
        raise LrnetError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    whole_number("num_classes", num_classes, 1)
    options: dict[str, Any] = dict(encoder=encoder, width=width, encoder_weights=encoder_weights)
    if name.startswith("lrn"):
        options["skip_channels"] = skip_channels
    elif skip_channels is not None:  # SegNet has no skips: the value would be dropped unsaid
        raise ArgumentError(
            f"skip_channels={skip_channels!r} is an LRN option; {name} has no skips to reduce: "
            "leave it out (None)"
        )
    return MODELS[name](num_classes, **options)
