"""SUN RGB-D, 37-class 2D segmentation (RGB only), in the sunrgbd-meta-data layout."""

from __future__ import annotations

import re
from pathlib import Path

from lrnet.data._io import DatasetError, SplitNotFoundError
from lrnet.data.dataset import PairTransform, SegmentationDataset, build_label_map
from lrnet.visualize import voc_colormap

SUNRGBD_CLASSES = [
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror",
    "floor_mat", "clothes", "ceiling", "books", "fridge", "tv", "paper", "towel", "shower_curtain",
    "box", "whiteboard", "person", "night_stand", "toilet", "sink", "lamp", "bathtub", "bag",
]  # fmt: skip
# No official palette exists; the VOC bit pattern of raw labels 1..37 (as pytorch-semseg draws it).
SUNRGBD_PALETTE = voc_colormap(len(SUNRGBD_CLASSES) + 1)[1:]
# raw mask value -> class index (0 -> void, 1..37 -> 0..36)
SUNRGBD_LABEL_MAP = build_label_map(len(SUNRGBD_CLASSES), offset=1, void=(0,))

# Label numbers of each split in sunrgbd_train_test_labels/: test first, then train.
_LABEL_RANGES = {"test": range(1, 5051), "train": range(5051, 10336)}
_NUMBER = re.compile(r"^img-(\d+)$")


class SUNRGBD(SegmentationDataset):
    """SUN RGB-D 37 classes: 5,285 train / 5,050 test; raw label 0 is void, 1..37 become 0..36.

    Images of each split, sorted by number, are paired in order with the labels of that split's
    range (``_LABEL_RANGES``); different counts are an error (layout: docs/datasets.md).

    Args:
        root: holds ``SUNRGBD-train_images/``, ``SUNRGBD-test_images/`` and
            ``sunrgbd_train_test_labels/`` (github.com/ankurhanda/sunrgbd-meta-data, extracted).
        split: ``"train"`` or ``"test"``.
        transforms: callable on ``(image, mask)``.
    """

    splits = ("train", "test")

    def __init__(
        self, root: str | Path, split: str = "train", transforms: PairTransform | None = None
    ):
        root = Path(root)
        super().__init__(
            _sunrgbd_samples(root, split),
            classes=SUNRGBD_CLASSES,
            palette=SUNRGBD_PALETTE,
            label_map=SUNRGBD_LABEL_MAP,
            transforms=transforms,
            name=f"sunrgbd {split} ({root})",
        )


def _numbered(folder: Path, suffix: str) -> list[tuple[int, Path]]:
    found = []
    for path in folder.glob(f"*{suffix}"):
        match = _NUMBER.match(path.stem)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def _sunrgbd_samples(root: Path, split: str) -> list[tuple[Path, Path]]:
    image_dir = root / f"SUNRGBD-{split}_images"
    label_dir = root / "sunrgbd_train_test_labels"
    for folder in (image_dir, label_dir):
        if not folder.is_dir():
            raise SplitNotFoundError(
                f"sunrgbd: {folder}/ does not exist; extract SUNRGBD-{split}_images.tgz and "
                f"sunrgbd_train_test_labels.tar.gz (sunrgbd-meta-data) into {root}"
            )
    images = [path for _, path in _numbered(image_dir, ".jpg")]
    labels = [path for n, path in _numbered(label_dir, ".png") if n in _LABEL_RANGES[split]]
    if len(images) != len(labels):
        first, last = _LABEL_RANGES[split][0], _LABEL_RANGES[split][-1]
        raise DatasetError(
            f"sunrgbd {split}: {len(images)} images in {image_dir} but {len(labels)} labels "
            f"img-{first:06d}..img-{last:06d}.png in {label_dir}; the download is incomplete"
        )
    return list(zip(images, labels, strict=True))
