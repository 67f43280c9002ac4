"""CamVid in the SegNet layout: 11 classes at 360x480, label 11 is void."""

from __future__ import annotations

from pathlib import Path

from lrnet.data._io import DatasetError, SplitNotFoundError, read_text
from lrnet.data.dataset import PairTransform, SegmentationDataset, build_label_map

CAMVID_CLASSES = [
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
    "Pedestrian", "Bicyclist",
]  # fmt: skip
# The label colours of the SegNet CamVid tutorial.
CAMVID_PALETTE = [
    (128, 128, 128),
    (128, 0, 0),
    (192, 192, 128),
    (128, 64, 128),
    (60, 40, 222),
    (128, 128, 0),
    (192, 128, 128),
    (64, 64, 128),
    (64, 0, 128),
    (64, 64, 0),
    (0, 128, 192),
]
CAMVID_VOID = 11
# raw mask value -> class index (11 -> void)
CAMVID_LABEL_MAP = build_label_map(len(CAMVID_CLASSES), void=(CAMVID_VOID,))

# Splits made from train + val by the recording sequence in each file name (``0006R0_f02640.png``):
# each fold validates on one whole held-out sequence; why, and their sizes: docs/datasets.md.
CAMVID_FOLDS = {"fold-a": "0006R0", "fold-b": "0001TP"}
CAMVID_DERIVED_SPLITS = (
    "trainval",
    *(f"{fold}-{part}" for fold in CAMVID_FOLDS for part in ("train", "val")),
)


class CamVid(SegmentationDataset):
    """CamVid as distributed with SegNet (Badrinarayanan et al.): 367 train / 101 val / 233 test.

    Split files list ``image_path mask_path`` with SegNet's absolute ``/SegNet/CamVid/`` prefix, of
    which the last two components are kept; without them ``<split>/`` and ``<split>annot/`` are
    paired by file name (layout: docs/datasets.md).

    Args:
        root: the CamVid folder (``train/ trainannot/ val/ valannot/ test/ testannot/``).
        split: ``"train"``, ``"val"`` or ``"test"``; or one made from train + val by sequence:
            ``"trainval"``, ``"fold-a-train"`` / ``"fold-a-val"`` (0006R0 held out),
            ``"fold-b-train"`` / ``"fold-b-val"`` (0001TP held out); see ``CAMVID_FOLDS``.
        transforms: callable on ``(image, mask)``.
    """

    splits = ("train", "val", "test")
    derived_splits = CAMVID_DERIVED_SPLITS

    def __init__(
        self, root: str | Path, split: str = "train", transforms: PairTransform | None = None
    ):
        root = Path(root)
        super().__init__(
            _camvid_samples(root, split),
            classes=CAMVID_CLASSES,
            palette=CAMVID_PALETTE,
            label_map=CAMVID_LABEL_MAP,
            transforms=transforms,
            name=f"camvid {split} ({root})",
        )


def sequence(path: str | Path) -> str:
    """The recording sequence of a CamVid file: ``.../0006R0_f02640.png`` -> ``"0006R0"``."""
    return Path(path).name.split("_", 1)[0]


def _camvid_samples(root: Path, split: str) -> list[tuple[Path, Path]]:
    if split in CAMVID_DERIVED_SPLITS:
        samples = _split_samples(root, "train") + _split_samples(root, "val")
        if split == "trainval":
            return samples
        fold, part = split.rsplit("-", 1)
        held_out = CAMVID_FOLDS[fold]
        return [s for s in samples if (sequence(s[0]) == held_out) == (part == "val")]
    return _split_samples(root, split)


def _split_samples(root: Path, split: str) -> list[tuple[Path, Path]]:
    list_file = root / f"{split}.txt"
    if list_file.is_file():
        samples = []
        for number, line in enumerate(read_text(list_file).splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise DatasetError(
                    f"{list_file} line {number}: expected 'image_path mask_path', got {line!r}"
                )
            samples.append((_resolve(root, fields[0]), _resolve(root, fields[1])))
        return samples
    image_dir, mask_dir = root / split, root / f"{split}annot"
    if not image_dir.is_dir():
        raise SplitNotFoundError(
            f"camvid: neither {list_file} nor {image_dir}/ exists; is {root} the SegNet CamVid "
            "folder (train/ trainannot/ val/ valannot/ test/ testannot/)?"
        )
    return [(p, mask_dir / p.name) for p in sorted(image_dir.glob("*.png"))]


def _resolve(root: Path, listed: str) -> Path:
    """``/SegNet/CamVid/train/x.png`` -> ``root/train/x.png``; relative paths join ``root``."""
    path = Path(listed)
    return root.joinpath(*path.parts[-2:]) if path.is_absolute() else root / path
