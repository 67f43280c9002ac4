"""PASCAL VOC 2012 segmentation (21 classes, 255 = border/void), with SBD's "trainaug" set."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lrnet.data._io import (
    DatasetError,
    SplitNotFoundError,
    read_index_png,
    read_mat_label,
    read_text,
)
from lrnet.data.dataset import PairTransform, SegmentationDataset, build_label_map
from lrnet.visualize import voc_colormap

VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
]  # fmt: skip
VOC_PALETTE = voc_colormap(len(VOC_CLASSES))
# raw mask value -> class index (255, the object borders, -> void)
VOC_LABEL_MAP = build_label_map(len(VOC_CLASSES), void=(255,))


class VOCSegmentation(SegmentationDataset):
    """PASCAL VOC 2012 segmentation: 1,464 train / 1,449 val, or 10,582 "trainaug" with SBD.

    Masks are read as palette indices (never as RGB); the 255 border stays void. The layouts of
    VOC and SBD: docs/datasets.md. trainaug = VOC train + SBD train + SBD val - VOC val; an id
    with a VOC mask uses it (finer, with void borders), the others SBD's ``.mat`` label.

    Args:
        root: the folder holding ``VOCdevkit/``, or ``VOCdevkit/`` or ``VOC2012/`` itself.
        split: ``"train"``, ``"val"``, ``"trainval"`` or ``"trainaug"``.
        transforms: callable on ``(image, mask)``.
        sbd_root: the folder holding SBD's ``dataset/`` (or ``dataset/``), for ``"trainaug"``.
    """

    splits = ("train", "val", "trainval", "trainaug")

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transforms: PairTransform | None = None,
        *,
        sbd_root: str | Path | None = None,
    ):
        voc = _find_voc2012(Path(root))
        if split == "trainaug":
            if sbd_root is None:
                raise SplitNotFoundError(
                    "voc split 'trainaug' needs the SBD dataset: pass sbd_root (--sbd-root), the "
                    "folder holding SBD's dataset/ (img/, cls/, train.txt, val.txt)"
                )
            samples = _trainaug_samples(voc, _find_sbd(Path(sbd_root)))
        else:
            samples = [
                (voc / "JPEGImages" / f"{i}.jpg", voc / "SegmentationClass" / f"{i}.png")
                for i in _read_ids(voc / "ImageSets" / "Segmentation" / f"{split}.txt")
            ]
        super().__init__(
            samples,
            classes=VOC_CLASSES,
            palette=VOC_PALETTE,
            label_map=VOC_LABEL_MAP,
            transforms=transforms,
            name=f"voc {split} ({root})",
        )

    def read_raw_mask(self, index: int) -> np.ndarray:
        """The stored label values: palette indices of the PNG, or SBD's ``GTcls.Segmentation``."""
        path = self.samples[index][1]
        return read_mat_label(path) if path.suffix == ".mat" else read_index_png(path)


def _find_voc2012(root: Path) -> Path:
    for candidate in (root / "VOCdevkit" / "VOC2012", root / "VOC2012", root):
        if (candidate / "JPEGImages").is_dir():
            return candidate
    raise DatasetError(f"voc: no VOC2012/JPEGImages under {root}; give the parent of VOCdevkit/")


def _find_sbd(root: Path) -> Path:
    for candidate in (root / "dataset", root):
        if (candidate / "cls").is_dir():
            return candidate
    raise DatasetError(f"voc: no SBD dataset/cls/ under {root}; give the folder holding dataset/")


def _read_ids(path: Path) -> list[str]:
    if not path.is_file():
        raise SplitNotFoundError(f"split file {path} does not exist; check the root and split")
    return [line.split()[0] for line in read_text(path).splitlines() if line.strip()]


def _trainaug_samples(voc: Path, sbd: Path) -> list[tuple[Path, Path]]:
    split_dir = voc / "ImageSets" / "Segmentation"
    voc_train = _read_ids(split_dir / "train.txt")
    voc_val = set(_read_ids(split_dir / "val.txt"))
    ids = [*voc_train, *_read_ids(sbd / "train.txt"), *_read_ids(sbd / "val.txt")]
    ids = sorted(set(ids) - voc_val)
    samples = []
    for i in ids:
        image = voc / "JPEGImages" / f"{i}.jpg"
        if not image.is_file():
            image = sbd / "img" / f"{i}.jpg"
        mask = voc / "SegmentationClass" / f"{i}.png"
        if not mask.is_file():
            mask = sbd / "cls" / f"{i}.mat"
        samples.append((image, mask))
    return samples
