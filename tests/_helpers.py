"""Makers and constants the test modules share (imported by name; not a test module itself)."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# The real CamVid (SegNet layout): ../shared/data/camvid beside the repository, or $LRNET_CAMVID.
CAMVID = Path(
    os.environ.get("LRNET_CAMVID", Path(__file__).resolve().parents[2] / "shared/data/camvid")
)


def save_rgb(path: Path, array: np.ndarray) -> None:
    """Write an ``(H, W, 3)`` array as an RGB PNG/JPEG, making the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def save_index(
    path: Path, mask: np.ndarray, palette: list[tuple[int, int, int]] | None = None
) -> None:
    """Write an ``(H, W)`` label map as a single-channel PNG, or a palette PNG if ``palette``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(mask.astype(np.uint8), mode="L")
    if palette is not None:
        img = img.convert("P")
        flat = [v for color in palette for v in color]
        img.putpalette(flat + [224, 224, 192] * (256 - len(palette)))
    img.save(path)


def make_camvid(
    root: Path, names: list[str], split: str = "train", size=(12, 16)
) -> list[np.ndarray]:
    """SegNet layout with a split file of absolute /SegNet/CamVid paths; returns the raw masks."""
    rng = np.random.default_rng(0)
    masks = []
    lines = []
    for name in names:
        mask = rng.integers(0, 12, size)  # 0..10 and void 11
        save_rgb(root / split / f"{name}.png", rng.integers(0, 256, (*size, 3)))
        save_index(root / f"{split}annot" / f"{name}.png", mask)
        masks.append(mask)
        lines.append(f"/SegNet/CamVid/{split}/{name}.png /SegNet/CamVid/{split}annot/{name}.png")
    (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return masks


# A tiny 5-class LRN for the predict, video and app tests.
TINY_CLASSES = ["sky", "road", "car", "tree", "person"]
TINY_PALETTE = [(70, 130, 180), (128, 64, 128), (0, 0, 142), (107, 142, 35), (220, 20, 60)]


def tiny_model():
    """The tiny LRN (width 0.125), seeded, in eval mode, with random BatchNorm statistics so
    that its labels vary across classes and pixels."""
    import torch

    from lrnet.models import build_model

    torch.manual_seed(0)
    model = build_model("lrn", len(TINY_CLASSES), width=0.125)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def write_tiny_checkpoint(path: Path) -> Path:
    """``tiny_model`` saved as an lrnet checkpoint with its class names and palette."""
    from lrnet import checkpoint
    from lrnet.config import load_config

    overrides = [f"model.num_classes={len(TINY_CLASSES)}", "model.width=0.125"]
    state = checkpoint.training_state(
        tiny_model(), load_config(None, overrides), classes=TINY_CLASSES, palette=TINY_PALETTE
    )
    checkpoint.save_checkpoint(path, state)
    return path


def read_only(folder: Path, monkeypatch: Any) -> None:
    """Make ``folder`` refuse new entries as a read-only folder does: by its mode, and for root
    (whom the mode does not stop) by refusing ``os.mkdir`` and creating ``os.open`` inside it."""
    folder.chmod(0o555)
    if os.geteuid() != 0:
        return
    real_open, real_mkdir = os.open, os.mkdir

    def refuse(path: Any) -> None:
        if Path(os.fsdecode(path)).parent == folder:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))

    def opens(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT:
            refuse(path)
        return real_open(path, flags, *args, **kwargs)

    def makes(path: Any, *args: Any, **kwargs: Any) -> None:
        refuse(path)
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", opens)
    monkeypatch.setattr(os, "mkdir", makes)
