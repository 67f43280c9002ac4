"""The base class of every dataset: indexed (image, mask) file pairs, read lazily, labels mapped."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lrnet.data._io import IGNORE_INDEX, DatasetError, read_image, read_index_png

PairTransform = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


class SegmentationDataset(Dataset[tuple[Tensor, Tensor]]):
    """A list of (image, mask) file pairs with class names, a palette and a raw-label mapping.

    Files are indexed (their existence checked) at construction and read in ``__getitem__``, so
    memory stays bounded whatever the dataset size.

    Args:
        samples: ``(image_path, mask_path)`` pairs.
        classes: class names, index order.
        palette: one RGB colour per class.
        label_map: ``(V,)`` int array: raw mask value -> class index (0..C-1), ``ignore_index``
            for void, or -1 for a value that must not occur (an error naming the file).
        transforms: callable on ``(image, mask)``, e.g. ``lrnet.data.transforms.train_transforms``.
        name: dataset name used in messages.

    Items: without transforms, image ``(3, H, W)`` float32 in [0, 1] and mask ``(H, W)`` int64,
    void = ``ignore_index`` (255).
    """

    ignore_index: int = IGNORE_INDEX

    def __init__(
        self,
        samples: Sequence[tuple[Path, Path]],
        *,
        classes: Sequence[str],
        palette: Sequence[tuple[int, int, int]],
        label_map: np.ndarray,
        transforms: PairTransform | None = None,
        name: str = "dataset",
    ):
        self.samples: list[tuple[Path, Path]] = [(Path(i), Path(m)) for i, m in samples]
        self.classes: list[str] = list(classes)
        self.palette: list[tuple[int, int, int]] = [tuple(int(v) for v in c) for c in palette]  # type: ignore[misc]
        if len(self.palette) != len(self.classes):
            raise DatasetError(
                f"{name}: {len(self.classes)} class names but {len(self.palette)} palette colours"
            )
        self.label_map = np.array(label_map, dtype=np.int64)  # a copy: callers share tables
        self.transforms = transforms
        self.name = name
        _require_files(self)

    @property
    def num_classes(self) -> int:
        """Number of classes C (void not counted)."""
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image_path, mask_path = self.samples[index]
        image = read_image(image_path)
        mask = self.read_mask(index)
        if tuple(image.shape[-2:]) != tuple(mask.shape):
            raise DatasetError(
                f"image {image_path} is {tuple(image.shape[-2:])} (H, W) but its mask {mask_path} "
                f"is {tuple(mask.shape)}; the pair must have the same size"
            )
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image, mask

    def read_raw_mask(self, index: int) -> np.ndarray:
        """The ``(H, W)`` integer values stored in sample ``index``'s mask file, unmapped."""
        return read_index_png(self.samples[index][1])

    def read_mask(self, index: int) -> Tensor:
        """Sample ``index``'s mask, no transforms: ``(H, W)`` int64 class indices, void =
        ``ignore_index``; DatasetError for an unreadable file or a value neither class nor void."""
        return torch.from_numpy(self.map_labels(self.read_raw_mask(index), self.samples[index][1]))

    def map_labels(self, raw: np.ndarray, path: Path | str = "<mask>") -> np.ndarray:
        """Map raw mask values to class indices; an unknown value is an error naming ``path``."""
        raw = np.asarray(raw)
        if raw.size and (raw.min() < 0 or raw.max() >= len(self.label_map)):
            bad = np.unique(raw[(raw < 0) | (raw >= len(self.label_map))])
            raise self._bad_values_error(bad, path)
        mapped = self.label_map[raw]
        if (mapped < 0).any():
            raise self._bad_values_error(np.unique(raw[mapped < 0]), path)
        return mapped

    def allowed_values(self) -> list[int]:
        """Raw mask values that may occur (classes and void)."""
        return [int(v) for v in np.flatnonzero(self.label_map >= 0)]

    def void_values(self) -> list[int]:
        """Raw mask values that mean void."""
        return [int(v) for v in np.flatnonzero(self.label_map == self.ignore_index)]

    def _bad_values_error(self, bad: np.ndarray, path: Path | str) -> DatasetError:
        shown = ", ".join(str(int(v)) for v in bad[:10])
        return DatasetError(
            f"mask {path} holds label values {shown} that are neither a class of {self.name} "
            f"(raw values {_ranges(self.allowed_values())} allowed, void "
            f"{_ranges(self.void_values())}); fix the mask or the class list"
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self)} samples, {self.num_classes} classes, "
            f"transforms={self.transforms!r})"
        )


def build_label_map(
    num_classes: int, *, offset: int = 0, void: Sequence[int] = (), size: int = 256
) -> np.ndarray:
    """Raw-value lookup: raw ``offset + k`` -> class ``k``, ``void`` -> 255, anything else -> -1."""
    table = np.full(max(size, offset + num_classes, *(v + 1 for v in void)), -1, dtype=np.int64)
    table[offset : offset + num_classes] = np.arange(num_classes)
    for value in void:
        table[value] = IGNORE_INDEX
    return table


class MissingFilesError(DatasetError):
    """Files listed for a split do not exist: ``missing`` lists them, and ``dataset`` is the split
    as listed, for tools that report every problem of a split at once (``lrnet check-dataset``)."""

    def __init__(self, message: str, missing: list[Path], dataset: SegmentationDataset):
        super().__init__(message)
        self.missing = missing
        self.dataset = dataset


def _require_files(dataset: SegmentationDataset) -> None:
    missing = [p for pair in dataset.samples for p in pair if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise MissingFilesError(
            f"{dataset.name}: {len(missing)} file(s) listed for the split do not exist: "
            f"{shown}{more}; check the dataset root and that the download is complete",
            missing,
            dataset,
        )


def _ranges(values: Sequence[int]) -> str:
    """``[0, 1, 2, 3, 11]`` -> ``"0..3, 11"``."""
    if not values:
        return "none"
    parts, start, prev = [], values[0], values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}..{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(parts)
