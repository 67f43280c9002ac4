"""lrnet: the Label Refinement Network (Islam et al., arXiv 1703.00551) for coarse-to-fine segmentation."""

from __future__ import annotations

import importlib
from typing import Any

from lrnet._errors import LrnetError

__version__ = "0.1.0"

# Imported on first use, so that `lrnet --help` and the config tools need no torch.
_LAZY = {
    "LabelRefinementNetwork": "lrnet.models",
    "SegNet": "lrnet.models",
    "build_model": "lrnet.models",
    "StageLoss": "lrnet.loss",
    "Predictor": "lrnet.inference.predictor",
    "Prediction": "lrnet.inference.predictor",
    "load_model": "lrnet.pretrained",
    "save_pretrained": "lrnet.pretrained",
}

__all__ = ["LrnetError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lrnet' has no attribute {name!r}")
