"""The page's example images (CamVid street frames that ship in ``lrnet/samples``, or synthetic
scenes) and the notes on what a zoo model was trained on."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lrnet import zoo
from lrnet.data.synthetic import synthetic_scene

EXAMPLE_SIZE = (240, 320)  # (H, W) of the bundled synthetic scenes
EXAMPLE_SEEDS = (3, 11, 20)
# The CamVid training frames in lrnet/samples (daylight, dusk, daylight): CamVid models' examples.
SAMPLES = ("camvid_0006R0_f02640.jpg", "camvid_0001TP_008460.jpg", "camvid_0016E5_04410.jpg")


def model_notes(source: Any) -> str:
    """What a zoo model was trained on and where it is known to fail, for the page's header
    (``lrnet.zoo``: ``training_data``, ``limits``); ``""`` for other models."""
    entry = zoo.ZOO.get(str(source))
    if entry is None or Path(str(source)).exists():  # a local path wins over a zoo name
        return ""
    notes = f"**{entry.name}** was trained on the {entry.training_data}."
    return notes + (f" It was {entry.limits}." if entry.limits else "")


def write_street_frames(folder: Path) -> list[Path]:
    """The CamVid street frames that ship in ``lrnet/samples``, copied into ``folder``."""
    samples = Path(str(resources.files("lrnet") / "samples"))
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copyfile(samples / name, folder / name)) for name in SAMPLES]


def examples_for(dataset: str, folder: Path) -> tuple[list[Path], str]:
    """The page's example images for a model trained on ``dataset``, and their caption: none for
    data other than CamVid and synthetic (no image that ships with lrnet is of that kind)."""
    if dataset == "camvid":
        return write_street_frames(folder), (
            "Examples: CamVid street frames (lrnet/samples; research and personal use only, "
            "CC BY-NC 4.0)"
        )
    if dataset == "synthetic":
        return write_examples(folder), "Examples: synthetic street scenes made by lrnet"
    return [], ""


def write_examples(folder: Path) -> list[Path]:
    """Synthetic street scenes (``lrnet.data.synthetic``) as PNGs, made here: free to share."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in EXAMPLE_SEEDS:
        pixels, _ = synthetic_scene(np.random.default_rng(seed), *EXAMPLE_SIZE)
        path = folder / f"synthetic_scene_{seed}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths
