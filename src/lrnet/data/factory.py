"""The datasets by name (``DATASETS``), their one front door ``build``, and the loader."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Sampler

from lrnet.data._io import DatasetError, SplitNotFoundError
from lrnet.data.camvid import CAMVID_LABEL_MAP, CamVid
from lrnet.data.dataset import PairTransform, SegmentationDataset
from lrnet.data.folder import FolderDataset
from lrnet.data.sunrgbd import SUNRGBD, SUNRGBD_LABEL_MAP
from lrnet.data.voc import VOC_LABEL_MAP, VOCSegmentation

if TYPE_CHECKING:
    from lrnet.config import DataConfig


def synthetic_dataset(
    root: str | Path,
    split: str,
    transforms: PairTransform | None = None,
    *,
    generate: bool = False,
    **options: Any,
) -> SegmentationDataset:
    """The synthetic street scenes, read as a folder dataset; ``generate=True`` (training) first
    writes them with ``generate_synthetic``'s ``options`` if ``root`` does not hold them."""
    from lrnet.data.synthetic import generate_synthetic

    allowed = set(inspect.signature(generate_synthetic).parameters) - {"root"}
    unknown = set(options) - allowed
    if unknown:
        raise DatasetError(
            f"data.options for the synthetic dataset take {', '.join(sorted(allowed))}, "
            f"not {', '.join(sorted(unknown))}"
        )
    if generate:
        try:
            generate_synthetic(root, **options)
        except (ValueError, TypeError) as exc:
            raise DatasetError(f"data.options {options}: {exc}") from None
    elif not Path(root, "classes.yaml").is_file():
        raise DatasetError(
            f"no synthetic dataset at {root}: only `lrnet train` writes it; give --data the "
            "folder training wrote, or add --dataset folder for a folder dataset of your own"
        )
    return FolderDataset(root, split, transforms)


# Dataset name -> class or builder taking (root, split, transforms, **options).
DATASETS: dict[str, Callable[..., SegmentationDataset]] = {
    "camvid": CamVid,
    "voc": VOCSegmentation,
    "sunrgbd": SUNRGBD,
    "folder": FolderDataset,
    "synthetic": synthetic_dataset,
}

# Raw mask value -> class index (255 void, -1 invalid) of the datasets whose files use their own
# encoding; folder (and synthetic) masks hold class indices already.
LABEL_MAPS = {"camvid": CAMVID_LABEL_MAP, "voc": VOC_LABEL_MAP, "sunrgbd": SUNRGBD_LABEL_MAP}


def build_dataset(
    name: str,
    root: str | Path,
    split: str,
    transforms: PairTransform | None = None,
    **options: Any,
) -> SegmentationDataset:
    """Build the dataset ``DATASETS[name]`` over ``root`` (layouts: docs/datasets.md).

    Args:
        split: e.g. ``"train"``; VOC also has ``"trainaug"``.
        transforms: callable on ``(image, mask)``, e.g. ``transforms.train_transforms(...)``.
        **options: dataset-specific options; VOC takes ``sbd_root``.

    Returns:
        The dataset; items are ``(image (3, H, W) float32, mask (H, W) int64)``.

    Raises:
        DatasetError: unknown name, root, split or option, no samples, or a missing listed file.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    root = Path(root).expanduser()
    cls = DATASETS[name]
    if cls is not synthetic_dataset:  # the synthetic builder may write its root first
        if not root.is_dir():
            raise DatasetError(f"{name} dataset root {root} does not exist or is not a folder")
        allowed = {"sbd_root"} if cls is VOCSegmentation else set()
        unknown = set(options) - allowed
        if unknown:
            raise DatasetError(
                f"{name} takes no option(s) {', '.join(sorted(unknown))}"
                + (f"; allowed: {', '.join(sorted(allowed))}" if allowed else "")
            )
        splits = getattr(cls, "splits", None) or FolderDataset.available_splits(root)
        splits = [*splits, *getattr(cls, "derived_splits", ())]
        if split not in splits:
            raise SplitNotFoundError(
                f"{name} has no split {split!r} in {root}; "
                f"choose one of {', '.join(splits) or '(none found)'}"
            )
    dataset = cls(root, split, transforms, **options)
    if len(dataset) == 0:
        raise DatasetError(
            f"{name} split {split!r} in {root} has no samples; check the layout (docs/datasets.md)"
        )
    return dataset


def build(
    data: DataConfig, split: str, *, train: bool = False, generate: bool = False
) -> SegmentationDataset:
    """The front door: the dataset the config's ``data`` section names, for one split.

    Args:
        train: the training augmentations; otherwise images and labels at their original
            resolution (metrics compare with papers; models resize inside ``evaluate``).
        generate: write the synthetic dataset first if needed (training only).
    """
    from lrnet.data.transforms import eval_transforms, train_transforms

    if train:
        transforms = train_transforms(
            crop_size=(data.crop_size[0], data.crop_size[1]),
            scale_range=(data.scale_range[0], data.scale_range[1]),
            hflip=data.hflip,
            color_jitter=data.color_jitter,
            photometric=data.photometric,
            ignore_index=data.ignore_index,
            base_size=None if data.base_size is None else (data.base_size[0], data.base_size[1]),
        )
    else:
        transforms = eval_transforms(None)
    options = dict(data.options)
    if data.dataset == "synthetic":
        options["generate"] = generate
    return build_dataset(data.dataset, data.root, split, transforms, **options)


def collate_pairs(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[Any, Any]:
    """Stack same-size pairs; keep lists when sizes differ (VOC / folder images at native size)."""
    images, masks = zip(*batch, strict=True)
    if len({i.shape for i in images}) == 1 and len({m.shape for m in masks}) == 1:
        return torch.stack(images), torch.stack(masks)
    return list(images), list(masks)


def loader(
    dataset: SegmentationDataset,
    batch_size: int,
    num_workers: int,
    sampler: Sampler[int] | None = None,
    *,
    drop_last: bool = False,
    pin_memory: bool = False,
    seed: int = 0,
) -> DataLoader:
    """A DataLoader of ``(images, masks)`` batches (lists where sizes differ).

    The loader has its own generator: each new iterator draws its workers' base seed from it,
    not from the global RNG, so a resumed run's augmentation stream matches an uninterrupted one.
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_pairs,
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )
