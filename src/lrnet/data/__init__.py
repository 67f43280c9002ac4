"""Datasets (CamVid, VOC + SBD, SUN RGB-D, folder), image reading and the dataset factory."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lrnet.data._io import DatasetError, SplitNotFoundError, read_image
from lrnet.data.camvid import CAMVID_LABEL_MAP, CamVid
from lrnet.data.dataset import IGNORE_INDEX, PairTransform, SegmentationDataset
from lrnet.data.folder import FolderDataset
from lrnet.data.sunrgbd import SUNRGBD, SUNRGBD_LABEL_MAP
from lrnet.data.voc import VOC_LABEL_MAP, VOCSegmentation

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
    "build_dataset",
    "read_image",
]

# Dataset name -> class; the synthetic data is written in the folder layout and read by "folder".
DATASETS: dict[str, Callable[..., SegmentationDataset]] = {
    "camvid": CamVid,
    "voc": VOCSegmentation,
    "sunrgbd": SUNRGBD,
    "folder": FolderDataset,
}

# Raw mask value -> class index (255 void, -1 invalid) of the datasets whose files use their own
# encoding; folder (and synthetic) masks hold class indices already.
LABEL_MAPS = {"camvid": CAMVID_LABEL_MAP, "voc": VOC_LABEL_MAP, "sunrgbd": SUNRGBD_LABEL_MAP}


def add_dataset_arguments(
    parser: argparse.ArgumentParser, *, splits_default: list[str] | None, splits_help: str
) -> None:
    """The arguments the dataset tools share: ``dataset root [--splits ...] [--sbd-root DIR]``."""
    parser.add_argument("dataset", choices=sorted(DATASETS), help="dataset name")
    parser.add_argument("root", help="dataset root folder")
    parser.add_argument("--splits", nargs="+", default=splits_default, help=splits_help)
    parser.add_argument("--sbd-root", default=None, help="SBD root (voc split trainaug)")


def build_dataset(
    name: str,
    root: str | Path,
    split: str,
    transforms: PairTransform | None = None,
    **options: Any,
) -> SegmentationDataset:
    """Build a dataset by name.

    Args:
        name: ``"camvid"``, ``"voc"``, ``"sunrgbd"`` or ``"folder"``.
        root: the dataset folder (see each class for its layout).
        split: a split of that dataset, e.g. ``"train"``; VOC also has ``"trainaug"``.
        transforms: callable on ``(image, mask)``, e.g. ``transforms.train_transforms(...)``.
        **options: dataset-specific options; VOC takes ``sbd_root``.

    Returns:
        The dataset; items are ``(image (3, H, W) float32, mask (H, W) int64)``.

    Raises:
        DatasetError: unknown name, missing root, unknown split, unknown option, or a listed file
            that does not exist.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{name} dataset root {root} does not exist or is not a folder")
    cls = DATASETS[name]
    splits = getattr(cls, "splits", None) or FolderDataset.available_splits(root)
    if split not in splits:
        raise SplitNotFoundError(
            f"{name} has no split {split!r} in {root}; "
            f"choose one of {', '.join(splits) or '(none found)'}"
        )
    allowed = {"sbd_root"} if cls is VOCSegmentation else set()
    unknown = set(options) - allowed
    if unknown:
        raise DatasetError(
            f"{name} takes no option(s) {', '.join(sorted(unknown))}"
            + (f"; allowed: {', '.join(sorted(allowed))}" if allowed else "")
        )
    dataset = cls(root, split, transforms, **options)
    if len(dataset) == 0:
        raise DatasetError(
            f"{name} split {split!r} in {root} has no samples; check the layout (docs/datasets.md)"
        )
    return dataset
