"""The models: LRN and the paper's SegNet baselines, built by name from a model config."""

from __future__ import annotations

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


def _lrn(**kw: Any) -> nn.Module:
    return LabelRefinementNetwork(**kw)


def _gfrnet(**kw: Any) -> nn.Module:
    return LabelRefinementNetwork(gated=True, **kw)


def _segnet(**kw: Any) -> nn.Module:
    _no_skips("segnet", kw.pop("skip_channels", None))
    return SegNet(**kw)


def _segnet_ds(**kw: Any) -> nn.Module:
    _no_skips("segnet_ds", kw.pop("skip_channels", None))
    return SegNet(deep_supervision=True, **kw)


def _no_skips(name: str, skip_channels: int | None) -> None:
    """SegNet has no skips to reduce: a ``skip_channels`` would be dropped without a word."""
    if skip_channels is not None:
        raise ArgumentError(
            f"skip_channels={skip_channels!r} is an LRN option; {name} has no skips to reduce: "
            "leave it out (None)"
        )


# Model name -> builder taking num_classes, encoder, width, skip_channels, encoder_weights.
MODELS = {"lrn": _lrn, "lrn_gated": _gfrnet, "segnet": _segnet, "segnet_ds": _segnet_ds}


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
    return MODELS[name](
        num_classes=num_classes,
        encoder=encoder,
        width=width,
        skip_channels=skip_channels,
        encoder_weights=encoder_weights,
    )
