"""Reading images and label masks from disk, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from lrnet._errors import LrnetError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")

# Pillow modes that hold one integer per pixel, i.e. class indices.
INDEX_MODES = ("P", "L", "I", "I;16", "I;16B", "I;16L", "1")

# What Pillow raises for an unreadable, truncated or oversized file.
_READ_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    UnidentifiedImageError,
    Image.DecompressionBombError,
)


class DatasetError(LrnetError):
    """A dataset file or layout problem; the message names the file and says what to do."""


class SplitNotFoundError(DatasetError):
    """The split's list file or folder does not exist under the dataset root."""


class MaskModeError(DatasetError):
    """A mask file holds colours (e.g. RGB) where class indices are expected."""


def read_image(path: str | Path) -> Tensor:
    """Read an image file as RGB.

    Grayscale is repeated to three channels, alpha is dropped, palette images are expanded,
    16-bit images are scaled by 65535 and the EXIF orientation is applied (phone photos).

    Args:
        path: image file.

    Returns:
        ``(3, H, W)`` float32 tensor in [0, 1].

    Raises:
        DatasetError: the file is missing, truncated or not an image.
    """
    path = Path(path)
    try:
        with Image.open(path) as file:
            array = _to_rgb_array(ImageOps.exif_transpose(file))
    except FileNotFoundError:
        raise DatasetError(f"image file {path} does not exist; check the dataset root") from None
    except _READ_ERRORS as exc:
        raise DatasetError(
            f"cannot read image {path} ({exc}); the file is corrupt or truncated: "
            "re-download it or remove it from the split"
        ) from None
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """``(H, W, 3)`` float32 in [0, 1] from any Pillow mode."""
    if img.mode.startswith("I;16") or img.mode == "I":
        # 16-bit grayscale (Pillow reads 16-bit PNGs as "I;16" or "I").
        gray = np.asarray(img, dtype=np.float32) / 65535.0
        return np.repeat(np.clip(gray, 0.0, 1.0)[:, :, None], 3, axis=2)
    if img.mode == "F":
        gray = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode != "RGB":
        img = img.convert("RGBA" if "A" in img.mode or img.mode == "P" else "RGB").convert("RGB")
    return np.asarray(img, dtype=np.float32) / 255.0


def read_index_png(path: str | Path) -> np.ndarray:
    """Read a single-channel label image (palette "P", "L" or 16-bit) as its stored indices.

    Palette PNGs are read as indices, never converted to colours. No EXIF rotation is applied:
    label files carry none.

    Args:
        path: mask file.

    Returns:
        ``(H, W)`` integer array of the raw values in the file.

    Raises:
        DatasetError: the file is missing, unreadable, or holds colours (RGB) instead of indices.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode not in INDEX_MODES:
                raise MaskModeError(
                    f"mask {path} is a {mode} image, but class indices are expected "
                    "(a single-channel or palette PNG whose pixel values are class ids); "
                    "convert colour masks to index masks first"
                )
            array = np.asarray(img)
    except FileNotFoundError:
        raise DatasetError(f"mask file {path} does not exist; check the dataset root") from None
    except _READ_ERRORS as exc:
        raise DatasetError(
            f"cannot read mask {path} ({exc}); the file is corrupt or truncated: "
            "re-download it or remove it from the split"
        ) from None
    if array.dtype == bool:
        array = array.astype(np.uint8)
    return array


def read_mat_label(
    path: str | Path, struct: str = "GTcls", field: str = "Segmentation"
) -> np.ndarray:
    """Read a label map from a MATLAB ``.mat`` file, e.g. SBD's ``GTcls.Segmentation``.

    scipy is imported here only, so that it stays optional.

    Raises:
        DatasetError: scipy is missing, or the file is unreadable or lacks ``struct.field``.
    """
    path = Path(path)
    try:
        from scipy.io import loadmat
    except ImportError:
        raise DatasetError(
            f"reading the SBD label {path} needs scipy: pip install lrnet[sbd]"
        ) from None
    try:
        mat = loadmat(path, squeeze_me=True, struct_as_record=False)
        array = np.asarray(getattr(mat[struct], field))
    except FileNotFoundError:
        raise DatasetError(f"mask file {path} does not exist; check the SBD root") from None
    except (KeyError, AttributeError):
        raise DatasetError(
            f"{path} has no {struct}.{field} label map; is it an SBD cls/*.mat file?"
        ) from None
    except (OSError, ValueError, TypeError) as exc:
        raise DatasetError(f"cannot read the .mat label {path} ({exc}); re-download it") from None
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise DatasetError(f"{path}: {struct}.{field} is not a 2-D integer label map")
    return array
