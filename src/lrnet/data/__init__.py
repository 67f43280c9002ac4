"""Datasets (CamVid, VOC + SBD, SUN RGB-D, folder, synthetic) and their one front door, ``build``.

The names below are imported on first use (PEP 562), so that ``lrnet.data._io``, the one reader
of image files, stays importable without torch: ``lrnet predict`` on ONNX Runtime or OpenVINO
reads images through it and never loads torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lrnet.data._io import IGNORE_INDEX, DatasetError, SplitNotFoundError, read_image
    from lrnet.data.camvid import CamVid
    from lrnet.data.dataset import SegmentationDataset
    from lrnet.data.factory import (
        DATASETS,
        LABEL_MAPS,
        build,
        build_dataset,
        collate_pairs,
        loader,
        synthetic_dataset,
    )
    from lrnet.data.folder import FolderDataset
    from lrnet.data.sunrgbd import SUNRGBD
    from lrnet.data.voc import VOCSegmentation

_HOMES = {
    "DatasetError": "lrnet.data._io",
    "SplitNotFoundError": "lrnet.data._io",
    "read_image": "lrnet.data._io",
    "CamVid": "lrnet.data.camvid",
    "IGNORE_INDEX": "lrnet.data._io",
    "SegmentationDataset": "lrnet.data.dataset",
    "FolderDataset": "lrnet.data.folder",
    "SUNRGBD": "lrnet.data.sunrgbd",
    "VOCSegmentation": "lrnet.data.voc",
    **dict.fromkeys(
        (
            "DATASETS",
            "LABEL_MAPS",
            "build",
            "build_dataset",
            "collate_pairs",
            "loader",
            "synthetic_dataset",
        ),
        "lrnet.data.factory",
    ),
}

__all__ = [
    "DATASETS",
    "IGNORE_INDEX",
    "LABEL_MAPS",
    "SUNRGBD",
    "CamVid",
    "DatasetError",
    "FolderDataset",
    "SegmentationDataset",
    "SplitNotFoundError",
    "VOCSegmentation",
    "build",
    "build_dataset",
    "collate_pairs",
    "loader",
    "read_image",
    "synthetic_dataset",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'lrnet.data' has no attribute {name!r}")
