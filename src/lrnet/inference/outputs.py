"""The files ``lrnet predict`` writes per image and per clip, the inputs it reads (files, folders,
globs) and their ground truth. What an output may replace is ``lrnet._files``."""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from lrnet._errors import ArgumentError, LrnetError
from lrnet._files import (
    OVERWRITE_ADVICE,
    atomic_write,
    check_replaceable,
    same_file,
    save_marked_png,
    written_by_lrnet,
)
from lrnet.data._io import (
    IGNORE_INDEX,
    IMAGE_SUFFIXES,
    MASK_SUFFIXES,
    pack_colors,
    read_label_image,
)

NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems
# Files lrnet predict writes per image, after the image's stem.
OUTPUT_SUFFIXES = ("_label.png", "_color.png", "_overlay.png", "_stages.png")


def image_output_paths(out_dir: str | Path, stem: str) -> list[Path]:
    """The four files predict writes for ``stem``: ``out_dir/<stem>_label.png`` ... ``_stages.png``.

    Raises:
        LrnetError: ``stem`` is not a plain file name (a separator, ``..``, empty), so the files
            would land outside ``out_dir``.
    """
    if (
        not isinstance(stem, str)
        or stem in ("", ".", "..")
        or any(c in stem for c in "/\\\0")
        or Path(stem).name != stem
    ):
        raise ArgumentError(
            f"output stem {stem!r} is not a plain file name; outputs are written inside the "
            "output folder only"
        )
    check_name_length(stem, OUTPUT_SUFFIXES)
    return [Path(out_dir) / f"{stem}{suffix}" for suffix in OUTPUT_SUFFIXES]


def check_name_length(stem: str, suffixes: Sequence[str]) -> None:
    """Refuse a ``stem`` whose longest output name would pass ``NAME_MAX`` bytes, before any
    work (the file system would refuse the name only when the file is written)."""
    size = len(os.fsencode(stem))
    longest = max(len(os.fsencode(suffix)) for suffix in suffixes)
    if size + longest > NAME_MAX:
        raise ArgumentError(
            f"output stem {stem[:40]!r}... is {size} bytes long: with its suffixes the file "
            f"names would pass the {NAME_MAX}-byte limit of file systems; give a stem of at "
            f"most {NAME_MAX - longest} bytes"
        )


def check_output(path: Path, overwrite: bool = False) -> None:
    """An output may replace only an earlier output of lrnet (``lrnet._files.check_replaceable``)."""
    check_replaceable(path, overwrite=overwrite, advice=OVERWRITE_ADVICE)


def write_png(picture: Image.Image, path: Path) -> None:
    """Write ``picture`` atomically (temporary file + rename), marked as lrnet predict's."""
    atomic_write(path, lambda f: save_marked_png(picture, f, "predict"))


def plan_outputs(
    images: Sequence[Path],
    out_dir: Path,
    ground_truth: dict[Path, Path] | None = None,
    overwrite: bool = False,
) -> dict[Path, list[Path]]:
    """The output files of every image, checked before anything is written.

    Raises:
        LrnetError: ``out_dir`` is a file; an output would replace an input image or a
            ground-truth mask, or a file that lrnet did not write (unless ``overwrite``); or two
            outputs of this run would be the same file (also on a case-insensitive file system).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LrnetError(f"--out {out_dir} is a file; give a folder (it is created if missing)")
    protected = {Path(image).resolve(): f"the input {image}" for image in images}
    for image, mask in (ground_truth or {}).items():
        protected[Path(mask).resolve()] = f"the ground truth {mask} of {image}"
    plan: dict[Path, list[Path]] = {}
    seen: dict[str, Path] = {}
    for image in images:
        paths = image_output_paths(out_dir, Path(image).stem)
        for path in paths:
            resolved = path.resolve()
            hit = protected.get(resolved)
            if hit is None and path.exists():  # the same file by another path (a hard link)
                hit = next((what for p, what in protected.items() if same_file(path, p)), None)
            if hit is not None:
                raise LrnetError(
                    f"the output {path} of {image} would replace {hit}; nothing was written: "
                    "choose another --out folder, or rename the file"
                )
            key = str(resolved).casefold()
            if key in seen:
                raise LrnetError(
                    f"{seen[key]} and {image} would both write {path}; nothing was written: "
                    "predict them into different --out folders"
                )
            seen[key] = Path(image)
            check_output(path, overwrite)
        plan[Path(image)] = paths
    return plan


def _one_per_file(found: list[Path]) -> list[Path]:
    """One entry per file, named as the user named it: a link's outputs are <link>_label.png,
    not those of the file it points to (a cache's hashed name, say), and the file itself wins
    over a link to it that a folder also holds. Two stems alike are an error."""
    by_file: dict[Path, Path] = {}
    for p in found:
        kept = by_file.setdefault(p.resolve(), p)
        if kept.is_symlink() and not p.is_symlink():
            by_file[p.resolve()] = p
    stems: dict[str, Path] = {}
    for p in by_file.values():
        if p.stem in stems:
            raise LrnetError(
                f"{stems[p.stem]} and {p} have the same name and would overwrite each other's "
                "outputs; predict them into different --out folders"
            )
        stems[p.stem] = p
    return list(by_file.values())


def collect_inputs(inputs: Sequence[str], exclude: Path | None = None) -> list[Path]:
    """Image files from files, folders (their images, not recursive) and glob patterns.

    Files named explicitly are kept whatever their suffix; folders and globs contribute files with
    an image suffix, except earlier outputs (``*_label.png`` ... inside ``exclude``, the output
    folder, that carry lrnet's mark), so that re-running with ``--out`` on the input folder does
    not label them. A file of the user's with such a name is an input like any other.

    Raises:
        LrnetError: an input does not exist, or a folder or pattern holds no image.
    """
    excluded = exclude.resolve() if exclude is not None else None

    def wanted(p: Path) -> bool:
        if not p.is_file() or p.suffix.lower() not in IMAGE_SUFFIXES:
            return False
        earlier = p.resolve().parent == excluded and p.name.endswith(OUTPUT_SUFFIXES)
        return not (earlier and written_by_lrnet(p))

    found: list[Path] = []
    for text in inputs:
        path = Path(text).expanduser()
        if path.is_file():
            found.append(path)
            continue
        if path.is_dir():
            matches = sorted(filter(wanted, path.iterdir()))
            what = f"folder {path}"
        elif any(c in text for c in "*?["):  # a glob pattern
            matches = sorted(filter(wanted, map(Path, glob.glob(str(path), recursive=True))))
            what = f"pattern {text!r}"
        elif path.exists():  # a named pipe or a device: reading it could block for ever
            raise LrnetError(f"input {path} is not a regular file; give image files or folders")
        else:
            raise LrnetError(f"input {path} does not exist")
        if not matches:
            raise LrnetError(f"{what} holds no image ({', '.join(IMAGE_SUFFIXES)})")
        found += matches
    return _one_per_file(found)


def ground_truth_paths(gt: Path | None, images: Sequence[Path]) -> dict[Path, Path]:
    """The ground-truth mask of each image: ``gt`` itself for one image, or a folder's mask of
    the same stem. Images without a mask in the folder are left out (with a warning).

    Raises:
        LrnetError: ``gt`` does not exist, or is a file while there are several images.
    """
    if gt is None:
        return {}
    if gt.is_file():
        if len(images) != 1:
            raise LrnetError(
                f"--gt {gt} is a single mask but there are {len(images)} input images; give a "
                "folder of masks named like the images"
            )
        return {images[0]: gt}
    if not gt.is_dir():
        raise LrnetError(f"--gt {gt} does not exist")
    masks = {p.stem: p for p in sorted(gt.iterdir()) if p.suffix.lower() in MASK_SUFFIXES}
    for image in images:
        if image.stem not in masks:
            warn(
                f"no ground truth for {image} in {gt} (no mask named {image.stem}.*); "
                "its panel has no ground-truth column"
            )
    return {image: masks[image.stem] for image in images if image.stem in masks}


def read_ground_truth(
    path: Path,
    size: tuple[int, int],
    label_map: np.ndarray | None = None,
    palette: Sequence[Sequence[int]] | None = None,
) -> np.ndarray:
    """A mask of class indices, checked to be ``size`` (H, W); values >= C are drawn as void.

    ``label_map`` translates a dataset's raw values first (SUN RGB-D's 1..37 -> 0..36, say);
    values it does not list become void (255). A colour (RGB) mask is read through ``palette``:
    each colour in it is its class, any other colour void.

    Raises:
        LrnetError: the file cannot be read, holds colours and no palette is given, or has
            another size.
    """
    stored = read_label_image(path)
    if stored.shape[:2] != size:
        raise LrnetError(
            f"ground truth {path} is {stored.shape[0]}x{stored.shape[1]} (H x W) but its image "
            f"is {size[0]}x{size[1]}; is it the mask of another image?"
        )
    if stored.ndim == 3:
        if not palette:
            raise LrnetError(
                f"ground truth {path} is a colour (RGB) image and this model has no class colours "
                "to read it with; give an index mask (pixel values are class ids)"
            )
        keys = pack_colors(np.array([tuple(c)[:3] for c in palette], dtype=np.int64))
        packed = pack_colors(stored)
        mask = np.full(size, IGNORE_INDEX, dtype=np.int64)
        for index, key in enumerate(keys):  # the first class wins a colour given twice
            mask[(packed == key) & (mask == IGNORE_INDEX)] = index
        return mask
    mask = stored.astype(np.int64)
    if label_map is not None:
        known = mask < len(label_map)
        mask = np.where(known, label_map[np.where(known, mask, 0)], IGNORE_INDEX)
        mask[mask < 0] = IGNORE_INDEX
    return mask


def warn(message: str) -> None:
    """Print a warning of lrnet predict on stderr."""
    print(f"lrnet predict: warning: {message}", file=sys.stderr)


def video_output_paths(out_dir: str | Path, stem: str) -> tuple[Path, Path, Path]:
    """``<stem>_overlay.mp4``, ``<stem>_mask.mp4`` and the label folder ``<stem>_labels``."""
    check_name_length(stem, ("_overlay.mp4", "_mask.mp4", "_labels"))
    out_dir = Path(out_dir)
    return out_dir / f"{stem}_overlay.mp4", out_dir / f"{stem}_mask.mp4", out_dir / f"{stem}_labels"
