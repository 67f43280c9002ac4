"""A generic dataset on disk: images/ and masks/ matched by file stem, classes from a YAML file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from lrnet.data._io import (
    IMAGE_SUFFIXES,
    MASK_SUFFIXES,
    DatasetError,
    MaskModeError,
    SplitNotFoundError,
    pack_colors,
    read_label_image,
    read_text,
)
from lrnet.data.dataset import IGNORE_INDEX, PairTransform, SegmentationDataset, build_label_map
from lrnet.visualize import voc_colormap

CLASS_FILES = ("classes.yaml", "classes.yml", "classes.json")
_CLASS_KEYS = ("names", "palette", "ignore_index", "void_colors")
_SHOWN_COLORS = 5  # unknown colours named per mask, most frequent first


class UnknownColorError(DatasetError):
    """A colour mask holds a colour that is neither a class colour nor a void colour."""


class FolderDataset(SegmentationDataset):
    """Any dataset laid out as ``images/`` and ``masks/`` matched by file stem, with its classes
    in ``classes.yaml``; the layout and colour masks: docs/datasets.md (Folder).

    Void (the raw value ``ignore_index`` of the classes file) becomes 255; any other value outside
    0..C-1 is an error naming the mask. When the classes file gives a ``palette``, colour masks
    (RGB; RGBA with alpha ignored) are read too, mixed with index masks if need be.

    Args:
        root: dataset folder.
        split: the stems of ``splits/<split>.txt`` in the flat ``images/`` and ``masks/``, or
            else the subfolders ``images/<split>/`` and ``masks/<split>/``.
        transforms: callable on ``(image, mask)``.
    """

    def __init__(
        self, root: str | Path, split: str = "train", transforms: PairTransform | None = None
    ):
        root = Path(root)
        spec = read_class_file(root)
        names = spec["names"]
        self.class_file: Path = spec["path"]
        self.void_value: int = spec["ignore_index"]
        self.mask_colors: list[tuple[int, int, int]] | None = spec["mask_colors"]
        self.void_colors: list[tuple[int, int, int]] = spec["void_colors"]
        super().__init__(
            _folder_samples(root, split),
            classes=names,
            palette=spec["palette"],
            label_map=build_label_map(len(names), void=(spec["ignore_index"],)),
            transforms=transforms,
            name=f"folder {split} ({root})",
        )

    @staticmethod
    def available_splits(root: str | Path) -> list[str]:
        """Split names found under ``root``: ``splits/*.txt`` stems, else ``images/`` subfolders."""
        root = Path(root)
        if (root / "splits").is_dir():
            return sorted(p.stem for p in (root / "splits").glob("*.txt"))
        images = root / "images"
        return sorted(p.name for p in images.iterdir() if p.is_dir()) if images.is_dir() else []

    def read_raw_mask(self, index: int) -> np.ndarray:
        """The ``(H, W)`` raw values of sample ``index``'s mask; colours become raw values."""
        path = self.samples[index][1]
        stored = read_label_image(path)
        return stored if stored.ndim == 2 else self.colors_to_values(stored, path)

    def colors_to_values(self, colors: np.ndarray, path: Path | str = "<mask>") -> np.ndarray:
        """Map an ``(H, W, 3)`` colour mask to ``(H, W)`` int64 raw values (void colours to the
        void value).

        Raises:
            MaskModeError: the classes file gives no palette, or two entries share a colour.
            UnknownColorError: a colour is neither a class nor void.
        """
        if self.mask_colors is None:
            raise MaskModeError(
                f"mask {path} is a colour (RGB) image but {self.class_file} gives no colours; "
                "add 'palette: [[r, g, b], ...]' with each class's colour in the masks (and "
                "'void_colors' for unlabelled pixels), or write index masks"
            )
        entries = [*self.mask_colors, *self.void_colors]
        keys = pack_colors(np.array(entries, dtype=np.int64).reshape(-1, 3))
        if len(np.unique(keys)) != len(keys):
            twice = next(c for i, c in enumerate(entries) if c in entries[i + 1 :])
            raise MaskModeError(
                f"{self.class_file} gives the colour {twice} to two entries of palette / "
                "void_colors; colour masks need one colour per class"
            )
        values = np.array(
            [*range(len(self.mask_colors)), *[self.void_value] * len(self.void_colors)], np.int64
        )
        order = np.argsort(keys)
        keys, values = keys[order], values[order]
        packed = pack_colors(colors)
        slot = np.searchsorted(keys, packed).clip(0, len(keys) - 1)
        known = keys[slot] == packed
        if not known.all():
            unknown, counts = np.unique(packed[~known], return_counts=True)
            top = np.argsort(-counts, kind="stable")[:_SHOWN_COLORS]
            shown = ", ".join(
                f"({u >> 16}, {(u >> 8) & 255}, {u & 255}) in {c} pixels"
                for u, c in zip(unknown[top].tolist(), counts[top].tolist(), strict=True)
            )
            more = f" and {len(unknown) - len(top)} more" if len(unknown) > len(top) else ""
            raise UnknownColorError(
                f"mask {path} holds colours that are no class in {self.class_file}: "
                f"{shown}{more}; add each to 'palette' (a class) or 'void_colors' (unlabelled), "
                "or fix the mask"
            )
        return values[slot]


def read_class_file(root: str | Path) -> dict[str, Any]:
    """Read ``classes.yaml`` / ``classes.json`` of a folder dataset, validated.

    Returns:
        ``{"names": list[str], "palette": list[tuple[int, int, int]], "ignore_index": int,
        "void_colors": list[tuple[int, int, int]], "mask_colors": the palette if the file
        gives one (colour masks can be read) else None, "path": Path}``.

    Raises:
        DatasetError: no class file, unknown keys, or malformed values (the message names the file).
    """
    path, spec = _class_spec(Path(root))
    names = spec.get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DatasetError(f"{path}: 'names' must be a non-empty list of class names")
    given = spec.get("palette")
    palette = given or voc_colormap(len(names))
    if (
        not isinstance(palette, list)
        or len(palette) != len(names)
        or not all(map(_is_rgb, palette))
    ):
        raise DatasetError(
            f"{path}: 'palette' must list one [r, g, b] (0..255) per class ({len(names)} classes)"
        )
    void_colors = spec.get("void_colors") or []
    if not isinstance(void_colors, list) or not all(map(_is_rgb, void_colors)):
        raise DatasetError(f"{path}: 'void_colors' must be a list of [r, g, b] colours (0..255)")
    if void_colors and not given:
        raise DatasetError(
            f"{path}: 'void_colors' is only used with colour masks, which need 'palette' too "
            "(each class's colour in the masks)"
        )
    void = spec.get("ignore_index", IGNORE_INDEX)
    if not isinstance(void, int) or isinstance(void, bool) or void < len(names):
        raise DatasetError(
            f"{path}: 'ignore_index' (the void value in the masks) "
            f"must be an integer >= {len(names)}"
        )
    return {
        "names": names,
        "palette": [tuple(c) for c in palette],
        "ignore_index": void,
        "void_colors": [tuple(c) for c in void_colors],
        "mask_colors": [tuple(c) for c in given] if given else None,
        "path": path,
    }


def _class_spec(root: Path) -> tuple[Path, dict[Any, Any]]:
    """The class file of ``root`` and its mapping: known keys only, values not checked yet."""
    path = next((root / n for n in CLASS_FILES if (root / n).is_file()), None)
    if path is None:
        raise DatasetError(
            f"folder dataset {root} has no classes.yaml; "
            "write one with 'names: [class0, class1, ...]'"
        )
    text = read_text(path, "class file")
    try:
        spec = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise DatasetError(f"cannot parse {path}: {exc}") from None
    if not isinstance(spec, dict):
        raise DatasetError(f"{path} must be a mapping with a 'names' list")
    unknown = set(map(str, spec)) - set(_CLASS_KEYS)
    if unknown:
        raise DatasetError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(_CLASS_KEYS)}"
        )
    return path, spec


def _is_rgb(color: Any) -> bool:
    return (
        isinstance(color, (list, tuple))
        and len(color) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in color)
    )


def _index_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    if not folder.is_dir():
        raise DatasetError(f"folder {folder}/ does not exist; see the folder dataset layout")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in suffixes or not path.is_file():
            continue
        if path.stem in found:
            raise DatasetError(
                f"{found[path.stem]} and {path} have the same stem; keep one file per stem"
            )
        found[path.stem] = path
    return found


def _folder_samples(root: Path, split: str) -> list[tuple[Path, Path]]:
    """The split's (image, mask) pairs; a missing file keeps the path it would have, so that the
    base class reports every missing file at once."""
    list_file = root / "splits" / f"{split}.txt"
    if list_file.is_file():
        image_dir, mask_dir = root / "images", root / "masks"
        stems = [line.strip() for line in read_text(list_file).splitlines() if line.strip()]
    elif (root / "images" / split).is_dir():
        image_dir, mask_dir = root / "images" / split, root / "masks" / split
        stems = None
    else:
        raise SplitNotFoundError(
            f"folder dataset {root} has no split {split!r}: neither {list_file} nor "
            f"{root / 'images' / split}/ exists"
        )
    images = _index_by_stem(image_dir, IMAGE_SUFFIXES)
    masks = _index_by_stem(mask_dir, MASK_SUFFIXES)
    return [
        (images.get(stem, image_dir / stem), masks.get(stem, mask_dir / f"{stem}.png"))
        for stem in (images if stems is None else stems)
    ]
