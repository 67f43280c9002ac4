"""A generic dataset on disk: images/ and masks/ matched by file stem, classes from a YAML file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from lrnet.data._io import IMAGE_SUFFIXES, MASK_SUFFIXES, DatasetError, SplitNotFoundError
from lrnet.data.dataset import IGNORE_INDEX, PairTransform, SegmentationDataset, build_label_map
from lrnet.data.voc import voc_colormap

CLASS_FILES = ("classes.yaml", "classes.yml", "classes.json")


class FolderDataset(SegmentationDataset):
    """Any dataset laid out as images and index masks matched by file stem.

    Layout under ``root``::

        classes.yaml          names: [sky, road, ...]            (required; or classes.json)
                              palette: [[r, g, b], ...]          (optional; VOC colours if absent)
                              ignore_index: 255                  (optional: the raw void value)
        images/<stem>.jpg|png|...                                 (any common image format)
        masks/<stem>.png      single-channel or palette PNG of class indices 0..C-1 and void
        splits/<split>.txt    one stem per line                  (optional)

    With ``splits/<split>.txt`` the listed stems are taken from the flat ``images/`` and
    ``masks/``; without it, the split is the subfolder pair ``images/<split>/``,
    ``masks/<split>/`` (every image there must have a mask). Void pixels (raw value
    ``ignore_index`` of the classes file) become 255 on reading; any other value outside
    0..C-1 is an error naming the mask.

    Args:
        root: dataset folder.
        split: a split name as above, e.g. ``"train"``.
        transforms: callable on ``(image, mask)``.
    """

    def __init__(
        self, root: str | Path, split: str = "train", transforms: PairTransform | None = None
    ):
        root = Path(root)
        spec = read_class_file(root)
        names = spec["names"]
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


def read_class_file(root: str | Path) -> dict[str, Any]:
    """Read ``classes.yaml`` / ``classes.json`` of a folder dataset, validated.

    Returns:
        ``{"names": list[str], "palette": list[tuple[int, int, int]], "ignore_index": int}``.

    Raises:
        DatasetError: no class file, unknown keys, or malformed values (the message names the file).
    """
    root = Path(root)
    path = next((root / n for n in CLASS_FILES if (root / n).is_file()), None)
    if path is None:
        raise DatasetError(
            f"folder dataset {root} has no classes.yaml; "
            "write one with 'names: [class0, class1, ...]'"
        )
    try:
        text = path.read_text()
        spec = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise DatasetError(f"cannot parse {path}: {exc}") from None
    if not isinstance(spec, dict):
        raise DatasetError(f"{path} must be a mapping with a 'names' list")
    unknown = set(spec) - {"names", "palette", "ignore_index"}
    if unknown:
        raise DatasetError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}; "
            "allowed: names, palette, ignore_index"
        )
    names = spec.get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DatasetError(f"{path}: 'names' must be a non-empty list of class names")
    palette = spec.get("palette") or voc_colormap(len(names))
    if len(palette) != len(names) or not all(
        isinstance(c, (list, tuple))
        and len(c) == 3
        and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
        for c in palette
    ):
        raise DatasetError(
            f"{path}: 'palette' must list one [r, g, b] (0..255) per class ({len(names)} classes)"
        )
    void = spec.get("ignore_index", IGNORE_INDEX)
    if not isinstance(void, int) or isinstance(void, bool) or void < len(names):
        raise DatasetError(
            f"{path}: 'ignore_index' (the void value in the masks) "
            f"must be an integer >= {len(names)}"
        )
    return {"names": names, "palette": [tuple(c) for c in palette], "ignore_index": void}


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
    list_file = root / "splits" / f"{split}.txt"
    if list_file.is_file():
        image_dir, mask_dir = root / "images", root / "masks"
        stems = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
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
    samples = []
    for stem in images if stems is None else stems:
        if stem not in images:
            raise DatasetError(
                f"{list_file} lists {stem!r} but there is no image {image_dir}/{stem}.*"
            )
        if stem not in masks:
            raise DatasetError(
                f"image {images[stem]} has no mask {mask_dir}/{stem}.png; add it or drop the image"
            )
        samples.append((images[stem], masks[stem]))
    return samples
