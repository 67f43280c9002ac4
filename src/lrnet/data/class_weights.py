"""Class-balancing weights from label counts: median frequency (SegNet), inverse frequency, ENet."""

from __future__ import annotations

import hashlib
import os
import statistics
import typing
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lrnet._errors import LrnetError
from lrnet.config import ClassWeightMethod
from lrnet.data._io import DatasetError
from lrnet.data.dataset import SegmentationDataset

METHODS = typing.get_args(ClassWeightMethod)  # the config schema lists them


@dataclass
class PixelStatistics:
    """Per-class pixel counts over a set of masks (void excluded from ``pixels``).

    Attributes:
        pixels: ``(C,)`` pixels of each class.
        image_pixels: ``(C,)`` all pixels (void included) of the images in which each class occurs.
        images: ``(C,)`` number of images in which each class occurs.
        void_pixels: void pixels in all masks.
        void_image_pixels: total pixels of the images that contain void.
        num_images: number of masks read.
    """

    pixels: np.ndarray
    image_pixels: np.ndarray
    images: np.ndarray
    void_pixels: int = 0
    void_image_pixels: int = 0
    num_images: int = 0

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
        self.pixels += other.pixels
        self.image_pixels += other.image_pixels
        self.images += other.images
        self.void_pixels += other.void_pixels
        self.void_image_pixels += other.void_image_pixels
        self.num_images += other.num_images


def pixel_statistics(dataset: SegmentationDataset) -> PixelStatistics:
    """Count class pixels over every mask of ``dataset``, one mask at a time (images not read)."""
    stats = PixelStatistics.empty(dataset.num_classes)
    for index in range(len(dataset)):
        stats.add(dataset.read_mask(index).numpy(), dataset.ignore_index)
    return stats


def weights_from_statistics(
    stats: PixelStatistics, method: str = "median_frequency", *, void_in_median: bool = False
) -> list[float]:
    """Class weights from pixel statistics.

    - ``median_frequency`` (SegNet; Eigen & Fergus 2015): ``freq_c = pixels_c / image_pixels_c``
      (pixels of the images that contain c), ``w_c = median(freq) / freq_c``.
    - ``inverse_frequency``: ``w_c = N / (C * pixels_c)`` with N the non-void pixels, so a
      balanced dataset gets weight 1 for every class.
    - ``enet`` (Paszke et al. 2016): ``w_c = 1 / ln(1.02 + p_c)``, ``p_c = pixels_c / N``.

    A class that never occurs gets weight 0 (it has no pixels to weight) and is left out of the
    median.

    Args:
        stats: counts from :func:`pixel_statistics`.
        method: one of ``median_frequency``, ``inverse_frequency``, ``enet``.
        void_in_median: for ``median_frequency``, treat void as one more class when taking the
            median (SegNet's CamVid prototxt has 12 weights, void included; this reproduces how
            its weights are usually recomputed). The weights returned are still ``C``.

    Returns:
        ``C`` weights.
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
    """Class weights for the loss from a dataset's masks (read at original resolution).

    Args:
        dataset: any :class:`~lrnet.data.SegmentationDataset` (its transforms are not applied).
        method: ``"median_frequency"`` (SegNet), ``"inverse_frequency"`` or ``"enet"``; see
            :func:`weights_from_statistics`.

    Returns:
        ``dataset.num_classes`` weights, class order.
    """
    if method not in METHODS:
        raise LrnetError(
            f"unknown class-weight method {method!r}; choose one of {', '.join(METHODS)}"
        )
    return weights_from_statistics(pixel_statistics(dataset), method)


def masks_fingerprint(dataset: SegmentationDataset) -> str:
    """A digest of what class weights are computed from: every mask file's path, size and
    modification time, and how raw values map to classes. A cache keyed on it recomputes once a
    mask is edited, added or removed, or the class list changes (stat only: no mask is read).

    Raises:
        DatasetError: a mask file is missing.
    """
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
