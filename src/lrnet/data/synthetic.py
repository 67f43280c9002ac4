"""A procedural street-scene dataset: large regions needing context, thin poles, small signs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from lrnet.data.dataset import IGNORE_INDEX

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

MANIFEST = "synthetic.json"
_VERSION = 1  # bump when the generator's output changes, so old folders are regenerated


def generate_synthetic(
    root: str | Path,
    *,
    num_train: int = 300,
    num_val: int = 60,
    size: tuple[int, int] = (128, 160),
    seed: int = 0,
) -> Path:
    """Write the synthetic dataset in the folder-dataset layout and return ``root``.

    Each image is a street scene: sky above a tilted horizon, ground below it with a road
    converging to a vanishing point, buildings standing on the horizon, cars on the road, thin
    poles (1-2 px wide) and small signs (radius 2-4 px) on some poles. Sky and road share one
    colour distribution (only their position tells them apart: context), windows and poles share
    a dark grey (only their shape does), vegetation is a blotchy texture, and every image gets a
    random gain and pixel noise, so colour alone is not enough. The boundaries of poles and signs
    are below the resolution of the coarse stages. Read it with
    ``build_dataset("folder", root, split)``.

    Generation is deterministic in ``seed`` (each image from its own random stream) and takes
    about 2 ms per 128x160 image. If ``root`` already holds a dataset written with the same
    parameters (``synthetic.json``), nothing is rewritten.

    Args:
        root: output folder (created; files of an earlier, different generation are replaced).
        num_train: images in split ``train``.
        num_val: images in split ``val``.
        size: ``(H, W)`` of every image, at least 32 x 32.
        seed: random seed.

    Returns:
        ``root`` as a Path.
    """
    root = Path(root)
    height, width = int(size[0]), int(size[1])
    if height < 32 or width < 32:
        raise ValueError(f"size must be at least (32, 32), got {size}")
    params = {
        "version": _VERSION,
        "num_train": int(num_train),
        "num_val": int(num_val),
        "size": [height, width],
        "seed": int(seed),
    }
    manifest = root / MANIFEST
    if manifest.is_file():
        try:
            if json.loads(manifest.read_text()) == params:
                return root
        except ValueError:
            pass
    for sub in ("images", "masks", "splits"):
        shutil.rmtree(root / sub, ignore_errors=True)
        (root / sub).mkdir(parents=True)
    manifest.unlink(missing_ok=True)
    for split_id, (split, count) in enumerate((("train", num_train), ("val", num_val))):
        stems = []
        for i in range(count):
            rng = np.random.default_rng([seed, split_id, i])
            image, mask = synthetic_scene(rng, height, width)
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
    manifest.write_text(json.dumps(params, indent=2) + "\n")  # last: marks a complete write
    return root


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

    # Buildings stand on the horizon; each has its own wall colour and a grid of dark windows.
    wall = np.zeros((height, width, 3), np.float32)
    for _ in range(rng.integers(2, 5)):
        x0 = rng.uniform(-0.1, 0.9) * width
        x1 = x0 + rng.uniform(0.12, 0.35) * width
        top = horizon.min() - rng.uniform(0.1, 0.4) * height
        region = (xx >= x0) & (xx < x1) & (yy >= top) & (yy < horizon + 1)
        mask[region] = BUILDING
        wall[region] = rng.uniform(0.4, 0.7) * np.array(rng.uniform(0.85, 1.15, 3), np.float32)
    windows = ((yy.astype(int) // 5) % 2 == 1) & ((xx.astype(int) // 4) % 3 != 0)

    # Cars on the road, lower in the image when bigger (perspective).
    for _ in range(rng.integers(0, 4)):
        cy = rng.uniform(0.2, 0.9)
        row = horizon.min() + cy * (height - horizon.min())
        car_w, car_h = (6 + 18 * cy) * width / 160, (4 + 8 * cy) * height / 128
        cx = vanish_x + rng.uniform(-0.3, 0.3) * cy * width
        region = (np.abs(xx - cx) < car_w / 2) & (yy < row) & (yy >= row - car_h)
        mask[region] = CAR
    car_color = np.array(
        rng.choice([[0.8, 0.1, 0.1], [0.1, 0.2, 0.8], [0.9, 0.9, 0.9]]), np.float32
    )

    # Poles: 1-2 px wide, standing on the ground; signs: small discs or squares near their tops.
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

    # Appearance. Sky and road share a colour distribution; windows and poles share a dark grey.
    noise = rng.normal(0.0, 1.0, (height, width, 3)).astype(np.float32)
    blotch = _blotches(rng, height, width, cell=6)
    grey_blue = np.array([0.55, 0.6, 0.68], np.float32) * rng.uniform(0.9, 1.1)
    dark = np.array([0.18, 0.18, 0.21], np.float32)
    image = np.empty((height, width, 3), np.float32)
    image[:] = grey_blue + 0.03 * noise
    m = mask[..., None]
    image = np.where(
        m == VEGETATION, np.array([0.3, 0.5, 0.2], np.float32) * (1 + 0.35 * blotch), image
    )
    image = np.where(m == BUILDING, np.where(windows[..., None], dark, wall), image)
    image = np.where(m == CAR, car_color, image)
    image = np.where(m == POLE, dark, image)
    image = np.where(m == SIGN, sign_colors, image)
    image = image * rng.uniform(0.75, 1.25) + 0.05 * noise
    return (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8), mask


def _blotches(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """``(H, W, 1)`` blocky low-frequency noise in about [-1, 1]."""
    coarse = rng.uniform(-1.0, 1.0, (height // cell + 1, width // cell + 1))
    return np.kron(coarse, np.ones((cell, cell)))[:height, :width, None].astype(np.float32)
