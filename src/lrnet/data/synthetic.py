"""A procedural street-scene dataset: large regions needing context, thin poles, small signs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from lrnet._checks import whole_number
from lrnet._errors import ArgumentTypeError
from lrnet._files import write_text
from lrnet._memory import check_fits, run_bytes
from lrnet.data._io import IGNORE_INDEX, DatasetError

SYNTHETIC_CLASSES = ["sky", "building", "road", "vegetation", "pole", "sign", "car"]
# Cityscapes colours of the same classes.
SYNTHETIC_PALETTE = [
    (70, 130, 180),
    (70, 70, 70),
    (128, 64, 128),
    (107, 142, 35),
    (153, 153, 153),
    (220, 220, 0),
    (0, 0, 142),
]
SKY, BUILDING, ROAD, VEGETATION, POLE, SIGN, CAR = range(7)

# What lrnet wrote into a synthetic folder: the options and every file. Nothing that it does not
# list is ever removed or replaced.
MANIFEST = "lrnet_synthetic.json"
_LEGACY_MANIFEST = "synthetic.json"  # lrnet <= 0.1: options only; its file names follow from them
_GENERATOR = "lrnet.data.synthetic"
_VERSION = 1  # bump when the generator's output changes, so old folders are regenerated


def generate_synthetic(
    root: str | Path,
    *,
    num_train: int = 300,
    num_val: int = 60,
    size: tuple[int, int] = (128, 160),
    seed: int = 0,
) -> Path:
    """Write ``num_train`` / ``num_val`` street scenes of ``size`` ``(H, W)`` (at least 32 x 32)
    in the folder layout and return ``root`` as a Path; read them with ``build_dataset("folder",
    root, split)``. The scenes: docs/datasets.md (Synthetic data).

    Deterministic in ``seed``. ``root`` must be missing, empty, or a folder this function wrote:
    its manifest ``lrnet_synthetic.json`` lists the options and every file. With the same options
    (every listed file present) nothing is rewritten; with others only the listed files are
    replaced.

    Raises:
        ValueError: a size under 32 x 32 or a negative image count.
        TypeError: a count, a side or the seed that is not a whole number (2.5, True).
        DatasetError: ``root`` is a file, or a non-empty folder without lrnet's manifest, or it
            holds a file of the user's where the new generation would write one.
    """
    root = Path(root)
    options = _checked_options(num_train, num_val, size, seed)
    counts = (("train", options["num_train"]), ("val", options["num_val"]))
    planned = _planned_files(counts)
    previous = _previous_generation(root)
    if _is_current(root, previous, options):
        return root  # the same generation, complete: nothing to write
    owned = _owned_files(root, previous, planned)
    # The manifest is written first and lists the old and the new files, so that a generation
    # killed half-way is recognised (and replaced) by the next call.
    _write_manifest(root, options, sorted(owned | set(planned)), complete=False)
    for name in sorted(owned - set(planned)):
        (root / name).unlink(missing_ok=True)
    _write_scenes(root, counts, options["seed"], options["size"])
    _write_manifest(root, options, planned, complete=True)
    return root


def _is_current(root: Path, previous: dict[str, Any] | None, options: dict[str, Any]) -> bool:
    """``root`` holds a complete generation with these options, every file of it present."""
    return (
        previous is not None
        and bool(previous.get("complete"))
        and previous["options"] == options
        and all((root / name).is_file() for name in previous["files"])
    )


def _checked_options(num_train: Any, num_val: Any, size: Any, seed: Any) -> dict[str, Any]:
    """The options of a generation, checked, as its manifest records them."""
    if isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2:
        raise ArgumentTypeError(f"size must be (H, W), got {size!r}")
    height, width = whole_number("size[0]", size[0], 32), whole_number("size[1]", size[1], 32)
    check_fits(run_bytes(1, height, width, 0), f"size {height}x{width}", "give a smaller size")
    return {
        "version": _VERSION,
        "num_train": whole_number("num_train", num_train),
        "num_val": whole_number("num_val", num_val),
        "size": [height, width],
        "seed": whole_number("seed", seed),
    }


def _owned_files(root: Path, previous: dict[str, Any] | None, planned: list[str]) -> set[str]:
    """The files of ``root`` an earlier generation wrote; DatasetError (before anything changes)
    where a file of the user's is in the way of this one."""
    owned = set(previous["files"]) if previous is not None else set()
    foreign = [name for name in planned if name not in owned and (root / name).exists()]
    foreign += [sub for sub in ("images", "masks", "splits") if (root / sub).is_file()]
    if foreign:
        raise DatasetError(
            f"{root} holds {root / foreign[0]}, which lrnet did not write; refusing to replace "
            "it with synthetic data: choose another data.root (a new or empty folder)"
        )
    return owned


def _write_scenes(
    root: Path, counts: tuple[tuple[str, int], ...], seed: int, size: list[int]
) -> None:
    """The images, masks, split lists and ``classes.yaml`` of one generation."""
    for sub in ("images", "masks", "splits"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for split_id, (split, count) in enumerate(counts):
        stems = []
        for i in range(count):
            rng = np.random.default_rng([seed, split_id, i])
            image, mask = synthetic_scene(rng, *size)
            stem = f"{split}_{i:05d}"
            Image.fromarray(image).save(root / "images" / f"{stem}.png", compress_level=1)
            Image.fromarray(mask).save(root / "masks" / f"{stem}.png", compress_level=1)
            stems.append(stem)
        (root / "splits" / f"{split}.txt").write_text("".join(f"{s}\n" for s in stems))
    classes = {
        "names": SYNTHETIC_CLASSES,
        "palette": [list(c) for c in SYNTHETIC_PALETTE],
        "ignore_index": IGNORE_INDEX,
    }
    (root / "classes.yaml").write_text(
        yaml.safe_dump(classes, default_flow_style=None, sort_keys=False)
    )


def _planned_files(counts: tuple[tuple[str, int], ...]) -> list[str]:
    """Paths (relative, POSIX) of every file a generation with these split sizes writes."""
    files = ["classes.yaml"]
    for split, count in counts:
        files.append(f"splits/{split}.txt")
        for i in range(count):
            files += [f"images/{split}_{i:05d}.png", f"masks/{split}_{i:05d}.png"]
    return files


def _previous_generation(root: Path) -> dict[str, Any] | None:
    """The manifest of an earlier generation in ``root``, None for a missing or empty folder;
    DatasetError for a file or a non-empty folder that lrnet did not generate."""
    if not root.exists():
        return None
    if not root.is_dir():
        raise DatasetError(f"synthetic data root {root} is a file; give a folder")
    manifest = _read_manifest(root / MANIFEST)
    if manifest is None:
        manifest = _read_legacy_manifest(root / _LEGACY_MANIFEST)
    if manifest is not None:
        return manifest
    if any(root.iterdir()):
        raise DatasetError(
            f"{root} is not empty and is not a synthetic dataset written by lrnet (it has no "
            f"{MANIFEST}); lrnet writes synthetic data only into a new or empty folder: choose "
            "another data.root, or use data.dataset=folder to train on the data in it"
        )
    return None


def _read_manifest(path: Path) -> dict[str, Any] | None:
    """A valid manifest, or None (missing, torn, or not written by this generator)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    valid = (
        isinstance(data, dict)
        and data.get("generator") == _GENERATOR
        and isinstance(data.get("options"), dict)
        and isinstance(data.get("files"), list)
        and all(isinstance(f, str) and _is_inside(f) for f in data["files"])
    )
    return data if valid else None


def _read_legacy_manifest(path: Path) -> dict[str, Any] | None:
    """The options-only ``synthetic.json`` of earlier versions, with the files they imply."""
    try:
        options = json.loads(path.read_text(encoding="utf-8"))
        counts = (("train", int(options["num_train"])), ("val", int(options["num_val"])))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    files = [*_planned_files(counts), _LEGACY_MANIFEST]
    return {"options": options, "files": files, "complete": True}


def _is_inside(name: str) -> bool:
    """A manifest entry names a file below the root: relative, no ``..``."""
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts


def _write_manifest(root: Path, options: dict[str, Any], files: list[str], complete: bool) -> None:
    """Write the manifest atomically (a kill leaves the old one or the new one)."""
    root.mkdir(parents=True, exist_ok=True)
    manifest = {"generator": _GENERATOR, "complete": complete, "options": options, "files": files}
    write_text(root / MANIFEST, json.dumps(manifest, indent=1) + "\n")


def synthetic_scene(
    rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """One scene: ``(H, W, 3)`` uint8 image and ``(H, W)`` uint8 mask of class indices."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    horizon = rng.uniform(0.35, 0.55) * height + rng.uniform(-0.12, 0.12) * (xx - width / 2)
    below = yy >= horizon
    mask = np.where(below, VEGETATION, SKY).astype(np.uint8)

    # Road: a wedge from a vanishing point on the horizon to the bottom edge.
    vanish_x = rng.uniform(0.3, 0.7) * width
    depth = np.clip((yy - horizon) / np.maximum(height - horizon, 1.0), 0.0, 1.0)
    mask[below & (np.abs(xx - vanish_x) < 1.5 + depth * rng.uniform(0.3, 0.6) * width)] = ROAD

    # The random draws happen in this order (buildings, cars, poles, appearance): a seed's
    # scenes stay the same.
    wall, windows = _buildings(rng, mask, yy, xx, horizon)
    car_color = _cars(rng, mask, yy, xx, horizon, vanish_x)
    sign_colors = _poles_and_signs(rng, mask, yy, xx, horizon)
    image = _appearance(rng, mask, wall, windows, car_color, sign_colors)
    return (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8), mask


def _buildings(
    rng: np.random.Generator, mask: np.ndarray, yy: np.ndarray, xx: np.ndarray, horizon: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Buildings on the horizon, drawn into ``mask``; returns the ``(H, W, 3)`` wall colours and
    the ``(H, W)`` grid of dark windows."""
    height, width = mask.shape
    wall = np.zeros((height, width, 3), np.float32)
    for _ in range(rng.integers(2, 5)):
        x0 = rng.uniform(-0.1, 0.9) * width
        x1 = x0 + rng.uniform(0.12, 0.35) * width
        top = horizon.min() - rng.uniform(0.1, 0.4) * height
        region = (xx >= x0) & (xx < x1) & (yy >= top) & (yy < horizon + 1)
        mask[region] = BUILDING
        wall[region] = rng.uniform(0.4, 0.7) * np.array(rng.uniform(0.85, 1.15, 3), np.float32)
    windows = ((yy.astype(int) // 5) % 2 == 1) & ((xx.astype(int) // 4) % 3 != 0)
    return wall, windows


def _cars(
    rng: np.random.Generator,
    mask: np.ndarray,
    yy: np.ndarray,
    xx: np.ndarray,
    horizon: np.ndarray,
    vanish_x: float,
) -> np.ndarray:
    """Cars on the road, lower in the image when bigger (perspective); returns their colour."""
    height, width = mask.shape
    for _ in range(rng.integers(0, 4)):
        cy = rng.uniform(0.2, 0.9)
        row = horizon.min() + cy * (height - horizon.min())
        car_w, car_h = (6 + 18 * cy) * width / 160, (4 + 8 * cy) * height / 128
        cx = vanish_x + rng.uniform(-0.3, 0.3) * cy * width
        region = (np.abs(xx - cx) < car_w / 2) & (yy < row) & (yy >= row - car_h)
        mask[region] = CAR
    return np.array(rng.choice([[0.8, 0.1, 0.1], [0.1, 0.2, 0.8], [0.9, 0.9, 0.9]]), np.float32)


def _poles_and_signs(
    rng: np.random.Generator, mask: np.ndarray, yy: np.ndarray, xx: np.ndarray, horizon: np.ndarray
) -> np.ndarray:
    """Poles 1-2 px wide on the ground, signs (small discs or squares) near their tops, drawn into
    ``mask``; returns the ``(H, W, 3)`` sign colours (zero elsewhere)."""
    height, width = mask.shape
    sign_colors = np.zeros((height, width, 3), np.float32)
    for _ in range(rng.integers(2, 6)):
        px = rng.uniform(0.03, 0.97) * width
        pw = rng.integers(1, 3)
        base = np.interp(px, xx[0], horizon[0]) + rng.uniform(0.05, 0.5) * height
        tip = base - rng.uniform(0.3, 0.6) * height
        region = (xx >= np.floor(px)) & (xx < np.floor(px) + pw) & (yy >= tip) & (yy < base)
        mask[region] = POLE
        if rng.random() < 0.6:
            radius = rng.uniform(2.0, 4.5)
            sy, sx = tip + radius, np.floor(px) + pw / 2
            if rng.random() < 0.5:
                blob = (yy - sy) ** 2 + (xx - sx) ** 2 <= radius**2
            else:
                blob = (np.abs(yy - sy) <= radius * 0.8) & (np.abs(xx - sx) <= radius * 0.8)
            mask[blob] = SIGN
            sign_colors[blob] = rng.choice([[0.9, 0.1, 0.1], [0.95, 0.85, 0.1], [0.1, 0.3, 0.9]])
    return sign_colors


def _appearance(
    rng: np.random.Generator,
    mask: np.ndarray,
    wall: np.ndarray,
    windows: np.ndarray,
    car_color: np.ndarray,
    sign_colors: np.ndarray,
) -> np.ndarray:
    """The ``(H, W, 3)`` float image, about [0, 1]: sky and road share a colour distribution;
    windows and poles share a dark grey."""
    height, width = mask.shape
    noise = rng.normal(0.0, 1.0, (height, width, 3)).astype(np.float32)
    # Blocky low-frequency noise in about [-1, 1], in cells of 6 x 6 pixels.
    coarse = rng.uniform(-1.0, 1.0, (height // 6 + 1, width // 6 + 1))
    blotch = np.kron(coarse, np.ones((6, 6)))[:height, :width, None].astype(np.float32)
    grey_blue = np.array([0.55, 0.6, 0.68], np.float32) * rng.uniform(0.9, 1.1)
    dark = np.array([0.18, 0.18, 0.21], np.float32)
    image = grey_blue + 0.03 * noise
    m = mask[..., None]
    image = np.where(
        m == VEGETATION, np.array([0.3, 0.5, 0.2], np.float32) * (1 + 0.35 * blotch), image
    )
    image = np.where(m == BUILDING, np.where(windows[..., None], dark, wall), image)
    image = np.where(m == CAR, car_color, image)
    image = np.where(m == POLE, dark, image)
    image = np.where(m == SIGN, sign_colors, image)
    return image * rng.uniform(0.75, 1.25) + 0.05 * noise
