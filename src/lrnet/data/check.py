"""``lrnet check-dataset``: unreadable files, size mismatches, colour masks, bad labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset

from lrnet.data._io import DatasetError, MaskModeError, read_image
from lrnet.data.dataset import SegmentationDataset, _ranges
from lrnet.data.folder import UnknownColorError

_MAX_LISTED = 10  # files listed per kind of problem; the count is always complete


class _Inspection(Dataset[dict[str, Any]]):
    """Per-sample findings of a dataset; never raises, so it can run in DataLoader workers."""

    def __init__(self, dataset: SegmentationDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_path, mask_path = self.dataset.samples[index]
        found: dict[str, Any] = {"index": index}
        missing = [str(p) for p in (image_path, mask_path) if not p.is_file()]
        if missing:
            found["missing"] = missing
            return found
        try:
            found["image_size"] = tuple(read_image(image_path).shape[-2:])
        except DatasetError as exc:
            found["unreadable"] = [str(exc)]
        try:
            raw = self.dataset.read_raw_mask(index)
        except MaskModeError as exc:
            found["mask_modes"] = [str(exc)]
            return found
        except UnknownColorError as exc:
            found["bad_labels"] = [str(exc)]
            return found
        except DatasetError as exc:
            found.setdefault("unreadable", []).append(str(exc))
            return found
        found["mask_size"] = tuple(raw.shape)
        if raw.size and raw.min() < 0:
            found["negative"] = True
            raw = raw.clip(0)
        found["values"] = np.bincount(raw.ravel().astype(np.int64))
        return found


@dataclass
class SplitReport:
    """What check-dataset found in one split."""

    name: str
    samples: int = 0
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    size_mismatches: list[str] = field(default_factory=list)
    mask_modes: list[str] = field(default_factory=list)
    bad_labels: list[str] = field(default_factory=list)
    value_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    class_images: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    error: str | None = None

    @property
    def problems(self) -> int:
        """Number of problems found (0 = clean)."""
        files = len(self.missing) + len(self.unreadable) + len(self.size_mismatches)
        masks = len(self.mask_modes) + len(self.bad_labels)
        return files + masks + (self.error is not None)


def check_split(dataset: SegmentationDataset, name: str = "", num_workers: int = 0) -> SplitReport:
    """Read every image and mask of ``dataset`` once (streaming, in ``num_workers`` DataLoader
    workers) and report what is wrong under ``name``; ``report.problems == 0``: clean."""
    report = SplitReport(name=name, samples=len(dataset))
    report.class_images = np.zeros(dataset.num_classes, np.int64)
    allowed = dataset.label_map
    counts = np.zeros(len(allowed), np.int64)
    loader = DataLoader(
        _Inspection(dataset), batch_size=None, num_workers=num_workers, collate_fn=_as_is
    )
    for found in loader:
        image_path, mask_path = dataset.samples[found["index"]]
        report.missing += found.get("missing", [])
        report.unreadable += found.get("unreadable", [])
        report.mask_modes += found.get("mask_modes", [])
        report.bad_labels += found.get("bad_labels", [])
        if "values" not in found:
            continue
        image_size = found.get("image_size")
        if image_size is not None and image_size != found["mask_size"]:
            report.size_mismatches.append(
                f"image {image_path} is {image_size} (H, W) "
                f"but mask {mask_path} is {found['mask_size']}"
            )
        values = found["values"]
        if len(values) > len(counts):
            counts = np.pad(counts, (0, len(values) - len(counts)))
        counts[: len(values)] += values
        present = np.flatnonzero(values)
        bad = [int(v) for v in present if v >= len(allowed) or allowed[v] < 0]
        if bad or found.get("negative"):
            shown = ", ".join(map(str, bad[:10])) + (
                " and negative values" if found.get("negative") else ""
            )
            report.bad_labels.append(f"{mask_path}: values {shown}")
        classes = allowed[present[present < len(allowed)]]
        classes = classes[(classes >= 0) & (classes < dataset.num_classes)]
        report.class_images[np.unique(classes)] += 1
    report.value_counts = counts
    return report


def format_report(report: SplitReport, dataset: SegmentationDataset | None) -> str:
    """Human-readable text of one split's findings."""
    lines = [f"== {report.name}"]
    if report.error is not None:
        lines.append(f"  error: {report.error}")
        return "\n".join(lines)
    assert dataset is not None
    lines.append(f"  samples: {report.samples}")
    # A classes file with a palette makes colour masks valid input: say so as information, and
    # count as problems only the masks that still cannot be read.
    class_file = getattr(dataset, "class_file", None)
    if getattr(dataset, "mask_colors", None) is not None:
        lines.append(
            f"  masks: class indices, or RGB colours read through the palette of {class_file}"
        )
        mask_title = "colour masks that the palette cannot read"
    else:
        mask_title = "masks with colours instead of class indices"
    for title, items in (
        ("missing files", report.missing),
        ("unreadable files", report.unreadable),
        ("image/mask size mismatches", report.size_mismatches),
        (mask_title, report.mask_modes),
        ("masks with label values outside the classes and void", report.bad_labels),
    ):
        lines.append(f"  {title}: {len(items)}")
        lines += [f"    {item}" for item in items[:_MAX_LISTED]]
        if len(items) > _MAX_LISTED:
            lines.append(f"    ... and {len(items) - _MAX_LISTED} more")
    found = [int(v) for v in np.flatnonzero(report.value_counts)]
    classes = [v for v in dataset.allowed_values() if dataset.label_map[v] < dataset.num_classes]
    lines.append(
        f"  label values found: {_ranges(found)}; "
        f"allowed: classes {_ranges(classes)}, void {_ranges(dataset.void_values())}"
    )
    total = int(report.value_counts.sum())
    if total:
        counts = report.value_counts[: len(dataset.label_map)]
        targets = dataset.label_map[: len(counts)]
        known = (targets >= 0) & (targets < dataset.num_classes)
        # Pixels per class: each raw value's count added to the class it maps to.
        mapped = np.bincount(targets[known], counts[known], dataset.num_classes)
        void = int(counts[targets == dataset.ignore_index].sum())
        width = max(len(c) for c in [*dataset.classes, "void"])
        lines.append("  pixel frequency per class (images containing it):")
        for c, name in enumerate(dataset.classes):
            lines.append(
                f"    {c:>3} {name:<{width}} {mapped[c] / total:>8.3%} ({report.class_images[c]})"
            )
        lines.append(f"    {'':>3} {'void':<{width}} {void / total:>8.3%}")
    lines.append("  OK" if report.problems == 0 else f"  {report.problems} problem(s)")
    return "\n".join(lines)


def _as_is(found: Any) -> Any:
    """Keep numpy arrays as they are (the default collate would turn them into tensors)."""
    return found
