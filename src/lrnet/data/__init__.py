"""Datasets (CamVid, VOC + SBD, SUN RGB-D, folder, synthetic) and their one front door, ``build``.

The names are imported on first use (PEP 562), so that ``lrnet.data._io``, the one image reader,
stays importable without torch (``lrnet predict`` on ONNX Runtime or OpenVINO).
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

# The public names of each module of this package, imported on first use.
_MODULES = {
    "_io": "DatasetError IGNORE_INDEX SplitNotFoundError read_image",
    "camvid": "CamVid",
    "dataset": "SegmentationDataset",
    "factory": "DATASETS LABEL_MAPS build build_dataset collate_pairs loader synthetic_dataset",
    "folder": "FolderDataset",
    "sunrgbd": "SUNRGBD",
    "voc": "VOCSegmentation",
}
_HOMES = {name: module for module, names in _MODULES.items() for name in names.split()}
__all__ = [
    "DATASETS", "IGNORE_INDEX", "LABEL_MAPS", "SUNRGBD", "CamVid", "DatasetError", "FolderDataset",
    "SegmentationDataset", "SplitNotFoundError", "VOCSegmentation", "build", "build_dataset",
    "collate_pairs", "loader", "read_image", "synthetic_dataset",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"lrnet.data.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'lrnet.data' has no attribute {name!r}")
