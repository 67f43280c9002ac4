"""Run set-up shared by train, evaluate and demo: device, seeds, datasets and loaders from a config."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

if TYPE_CHECKING:
    from lrnet.data import SegmentationDataset

from lrnet._errors import LrnetError
from lrnet.config import Config, DataConfig


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> this process's GPU when there is one, else CPU; a missing GPU is a clear error."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LrnetError(f"run.device={name} but no CUDA GPU is available; use run.device=cpu")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def build_split(data: DataConfig, split: str, transforms: Any = None) -> SegmentationDataset:
    """The dataset a data config names, for one split (the synthetic data is generated first)."""
    from lrnet.data import build_dataset

    name = data.dataset
    if name == "synthetic":
        import inspect

        from lrnet._distributed import barrier, is_main_process
        from lrnet.data.synthetic import generate_synthetic

        allowed = set(inspect.signature(generate_synthetic).parameters) - {"root"}
        unknown = set(data.options) - allowed
        if unknown:
            raise LrnetError(
                f"data.options for the synthetic dataset take {', '.join(sorted(allowed))}, "
                f"not {', '.join(sorted(unknown))}"
            )
        if is_main_process():  # one writer; the other ranks wait, then read
            try:
                generate_synthetic(data.root, **data.options)
            except ValueError as exc:
                raise LrnetError(f"data.options {data.options}: {exc}") from None
        barrier()
        return build_dataset("folder", data.root, split, transforms)
    return build_dataset(name, data.root, split, transforms, **data.options)


def train_transforms(data: DataConfig) -> Any:
    from lrnet.data.transforms import train_transforms as preset

    return preset(
        crop_size=(data.crop_size[0], data.crop_size[1]),
        scale_range=(data.scale_range[0], data.scale_range[1]),
        hflip=data.hflip,
        color_jitter=data.color_jitter,
        ignore_index=data.ignore_index,
        base_size=None if data.base_size is None else (data.base_size[0], data.base_size[1]),
    )


def eval_transforms() -> Any:
    """Evaluation reads images and labels at their original resolution (metrics compare with papers)."""
    from lrnet.data.transforms import eval_transforms as preset

    return preset(None)


def collate_pairs(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[Any, Any]:
    """Stack same-size pairs; keep lists when sizes differ (VOC / folder images at native size)."""
    images, masks = zip(*batch, strict=True)
    if all(i.shape == images[0].shape for i in images) and all(
        m.shape == masks[0].shape for m in masks
    ):
        return torch.stack(images), torch.stack(masks)
    return list(images), list(masks)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    num_workers: int,
    sampler: Sampler[int] | None = None,
    *,
    drop_last: bool = False,
    pin_memory: bool = False,
    seed: int = 0,
) -> DataLoader:
    # The loader's own generator: each new iterator draws its workers' base seed from it, not from
    # the global RNG, so a resumed run's augmentation stream matches the uninterrupted run's.
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


def dataset_meta(dataset: SegmentationDataset) -> tuple[list[str], list[tuple[int, int, int]], int]:
    """Class names, palette and class count of a dataset."""
    palette = [(int(c[0]), int(c[1]), int(c[2])) for c in dataset.palette]
    return list(dataset.classes), palette, len(dataset.classes)


def fill_num_classes(config: Config, num_classes: int) -> None:
    """Take the class count from the dataset unless the config sets one that disagrees."""
    if config.model.num_classes is None:
        config.model.num_classes = num_classes
    elif config.model.num_classes != num_classes:
        raise LrnetError(
            f"model.num_classes={config.model.num_classes} but dataset {config.data.dataset!r} has "
            f"{num_classes} classes; remove model.num_classes or set it to {num_classes}"
        )
