"""Class-balancing weights from label counts: median frequency (SegNet), inverse frequency, ENet."""

from __future__ import annotations

import hashlib
import os
import statistics
import typing
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from lrnet._errors import LrnetError
from lrnet.config import ClassWeightMethod
from lrnet.data._io import DatasetError
from lrnet.data.dataset import SegmentationDataset

METHODS = typing.get_args(ClassWeightMethod)  # the config schema lists them


@dataclass
class PixelStatistics:
    """Per-class pixel counts over a set of masks."""

    pixels: np.ndarray  # (C,) pixels of each class (void excluded)
    image_pixels: np.ndarray  # (C,) all pixels, void included, of the images holding each class
    images: np.ndarray  # (C,) number of images in which each class occurs
    void_pixels: int = 0  # void pixels in all masks
    void_image_pixels: int = 0  # all pixels of the images that contain void
    num_images: int = 0  # masks read

    @classmethod
    def empty(cls, num_classes: int) -> PixelStatistics:
        zeros = np.zeros(num_classes, dtype=np.int64)
        return cls(pixels=zeros.copy(), image_pixels=zeros.copy(), images=zeros.copy())

    def add(self, mask: np.ndarray, ignore_index: int) -> None:
        """Add one ``(H, W)`` mask of class indices (void = ``ignore_index``)."""
        num_classes = len(self.pixels)
        valid = mask[mask != ignore_index]
        counts = np.bincount(valid.ravel(), minlength=num_classes)[:num_classes]
        present = counts > 0
        self.pixels += counts
        self.image_pixels += present * mask.size
        self.images += present
        self.void_pixels += mask.size - valid.size
        self.void_image_pixels += mask.size if valid.size < mask.size else 0
        self.num_images += 1

    def merge(self, other: PixelStatistics) -> None:
        """Add the counts of ``other`` (e.g. another split)."""
        for f in fields(self):  # every field is a count (an int or an array of counts)
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def pixel_statistics(dataset: SegmentationDataset) -> PixelStatistics:
    """Count class pixels over every mask of ``dataset``, one mask at a time (images not read)."""
    stats = PixelStatistics.empty(dataset.num_classes)
    for index in range(len(dataset)):
        stats.add(dataset.read_mask(index).numpy(), dataset.ignore_index)
    return stats


def weights_from_statistics(
    stats: PixelStatistics, method: str = "median_frequency", *, void_in_median: bool = False
) -> list[float]:
    """``C`` class weights from pixel statistics (the formulas: docs/datasets.md, class-weights).

    A class that never occurs gets weight 0 and is left out of the median.

    Args:
        method: ``median_frequency`` (SegNet), ``inverse_frequency`` or ``enet`` (ENet).
        void_in_median: for ``median_frequency``, count void as one more class in the median, as
            SegNet's 12 CamVid weights do (the weights returned are still ``C``).
    """
    if method not in METHODS:
        raise LrnetError(
            f"unknown class-weight method {method!r}; choose one of {', '.join(METHODS)}"
        )
    pixels = stats.pixels.astype(np.float64)
    present = pixels > 0
    if not present.any():
        raise LrnetError("no labelled pixel found; cannot compute class weights")
    weights = np.zeros_like(pixels)
    if method == "median_frequency":
        freq = pixels[present] / stats.image_pixels[present]
        pool = freq.tolist()
        if void_in_median and stats.void_pixels:
            pool.append(stats.void_pixels / stats.void_image_pixels)
        weights[present] = statistics.median(pool) / freq
    elif method == "inverse_frequency":
        weights[present] = pixels.sum() / (len(pixels) * pixels[present])
    else:
        weights[present] = 1.0 / np.log(1.02 + pixels[present] / pixels.sum())
    return [float(w) for w in weights]


def compute_class_weights(
    dataset: SegmentationDataset, method: str = "median_frequency"
) -> list[float]:
    """``dataset.num_classes`` loss weights from its masks at original resolution (transforms not
    applied), by ``method`` as in :func:`weights_from_statistics`."""
    if method not in METHODS:
        raise LrnetError(
            f"unknown class-weight method {method!r}; choose one of {', '.join(METHODS)}"
        )
    return weights_from_statistics(pixel_statistics(dataset), method)


def masks_fingerprint(dataset: SegmentationDataset) -> str:
    """A digest of every mask file's path, size and modification time (no mask is read) and of the
    label mapping, to key cached class weights; DatasetError for a missing mask."""
    digest = hashlib.sha256()
    digest.update(repr((dataset.classes, dataset.label_map.tolist())).encode())
    for _, mask in dataset.samples:
        try:
            stat = os.stat(mask)
        except OSError as exc:
            raise DatasetError(f"cannot read mask {mask}: {exc.strerror}") from None
        digest.update(f"{mask}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def format_yaml(weights: Sequence[float], digits: int = 4) -> str:
    """``data:\\n  class_weights: [..]`` ready to paste into a config."""
    values = ", ".join(f"{w:.{digits}f}" for w in weights)
    return f"data:\n  class_weights: [{values}]"
