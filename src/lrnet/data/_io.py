"""Reading images and label masks from disk, with errors that name the file; tensors to numpy
without importing torch."""

from __future__ import annotations

import os
import re
import stat
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lrnet._errors import LrnetError
from lrnet._files import read_utf8

IGNORE_INDEX = 255  # the label of void pixels in every mask lrnet reads

if TYPE_CHECKING:
    from torch import Tensor

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")

# Pillow modes that hold one integer per pixel, i.e. class indices.
INDEX_MODES = ("P", "L", "I", "I;16", "I;16B", "I;16L", "1")
# Pillow modes read as colour masks (RGB; the alpha channel of RGBA is ignored).
COLOR_MODES = ("RGB", "RGBA")

# The largest image (width x height) read, checked from the file header before decoding: a
# 40-megapixel RGB image is 480 MB as float32. The environment variable overrides it.
MAX_PIXELS = 40_000_000
MAX_PIXELS_ENV = "LRNET_MAX_PIXELS"

# What Pillow's decoders raise for an unreadable, truncated or malformed file.
_READ_ERRORS = (
    OSError, SyntaxError, ValueError, UnidentifiedImageError, EOFError, struct.error, IndexError,
    KeyError, ZeroDivisionError, OverflowError,
)  # fmt: skip
_PILLOW_LIMIT_LOCK = threading.Lock()


class DatasetError(LrnetError):
    """A dataset file or layout problem; the message names the file and says what to do."""


class SplitNotFoundError(DatasetError):
    """The split's list file or folder does not exist under the dataset root."""


class MaskModeError(DatasetError):
    """A mask file holds colours (e.g. RGB) where class indices are expected."""


class ImageTooLargeError(DatasetError):
    """An image has more pixels than ``max_pixels()``."""


def max_pixels() -> int:
    """``$LRNET_MAX_PIXELS`` if set (LrnetError unless a positive number), else ``MAX_PIXELS``."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return MAX_PIXELS
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        value = float("nan")
    if not (value >= 1 and value < float("inf")):
        raise LrnetError(f"{MAX_PIXELS_ENV}={text!r} is not a positive pixel count, e.g. 100000000")
    return int(value)


def read_image(path: str | Path) -> Tensor:
    """``read_rgb`` as a ``(3, H, W)`` float32 tensor in [0, 1], what the datasets hand over."""
    import torch  # not at the top: inference reads images through read_rgb without torch

    return torch.from_numpy(read_rgb(path)).permute(2, 0, 1).contiguous()


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as an ``(H, W, 3)`` float32 RGB array in [0, 1].

    Grayscale is repeated, alpha dropped, palettes expanded, 16-bit scaled by 65535 and the EXIF
    orientation applied; images over ``max_pixels()`` are refused from their header.

    Raises:
        DatasetError: the file is missing, truncated, too large or not an image.
    """
    path = Path(path)
    return _decode(
        path, "image", lambda file: _to_rgb_array(ImageOps.exif_transpose(file), f"image {path}")
    )


def _to_rgb_array(img: Image.Image, name: str = "the image") -> np.ndarray:
    """``(H, W, 3)`` float32 in [0, 1] from any Pillow mode; "I;16" and "I" are read as 16-bit,
    "F" must be in [0, 1]: other values are errors naming ``name``, not clipped or guessed."""
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        # Pillow reads 16-bit PNGs as "I;16" or "I"; TIFFs may hold 32-bit ints or floats.
        gray = np.asarray(img, dtype=np.float32)
        scale, kind = (1.0, "float [0, 1]") if img.mode == "F" else (65535.0, "16-bit")
        low, high = (float(gray.min()), float(gray.max())) if gray.size else (0.0, 0.0)
        if not (low >= 0.0 and high <= scale):  # also NaN
            raise DatasetError(
                f"{name} is a mode {img.mode} image with values {low:g} .. {high:g}, outside the "
                f"{kind} range 0 .. {scale:g}; save it as an 8-bit or 16-bit PNG"
            )
        if img.mode == "I" and gray.size > 0 and high <= 255:
            # 8-bit data in a 32-bit image (Image.fromarray of an int32 array, say): divided
            # by 65535 it would run almost black. Ambiguous, so refused rather than guessed.
            raise DatasetError(
                f"{name} is a mode I (32-bit) image with values {low:g} .. {high:g}: 8-bit data? "
                "convert it to mode L (8-bit) or save it as an 8-bit or 16-bit PNG"
            )
        return np.repeat((gray / scale)[:, :, None], 3, axis=2)
    if img.mode != "RGB":
        img = img.convert("RGBA" if "A" in img.mode or img.mode == "P" else "RGB").convert("RGB")
    return np.asarray(img, dtype=np.float32) / 255.0


def read_index_png(path: str | Path) -> np.ndarray:
    """Read a single-channel mask (palette "P", "L" or 16-bit) as its ``(H, W)`` stored values.

    Palettes stay indices, never colours; no EXIF rotation is applied (label files carry none).

    Raises:
        DatasetError: unreadable, too large, or colours instead of indices (``MaskModeError``).
    """
    array = read_label_image(path)
    if array.ndim == 3:
        raise MaskModeError(
            f"mask {path} is a colour (RGB) image, but class indices are expected; convert it to a "
            "single-channel or palette PNG of class ids, or (folder dataset) give each class its "
            "colour in classes.yaml 'palette'"
        )
    return array


def read_label_image(path: str | Path) -> np.ndarray:
    """Read a mask file as stored: ``(H, W)`` integer indices (modes P, L, 1, I, I;16), or
    ``(H, W, 3)`` uint8 colours (RGB, RGBA with alpha ignored).

    Raises:
        DatasetError: unreadable or too large, or another mode (``MaskModeError``: CMYK, float ...).
    """
    path = Path(path)

    def convert(img: Image.Image) -> np.ndarray:
        if img.mode in INDEX_MODES:
            array = np.asarray(img)
            return array.astype(np.uint8) if array.dtype == bool else array
        if img.mode in COLOR_MODES:
            return np.asarray(img.convert("RGB"))
        raise MaskModeError(
            f"mask {path} is a {img.mode} image; masks are single-channel or palette PNGs of "
            "class indices, or (folder dataset with colours in classes.yaml) RGB colour masks"
        )

    return _decode(path, "mask", convert)


def pack_colors(colors: np.ndarray) -> np.ndarray:
    """``(..., 3)`` uint8 RGB -> ``(...)`` int64 ``r << 16 | g << 8 | b`` (one number a colour)."""
    c = np.asarray(colors).astype(np.int64)
    return (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]


def read_text(path: str | Path, what: str = "split file") -> str:
    """The UTF-8 text of a list or class file; DatasetError naming the file (and the first bad
    byte) when it is missing, unreadable or not UTF-8."""
    path = Path(path)
    advice = "it is damaged or not a list of names: re-download it or write it again"
    try:
        check_regular_file(path, what)
        text = read_utf8(path, what, advice, DatasetError)
    except FileNotFoundError:
        raise DatasetError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise DatasetError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    return text.removeprefix("\ufeff")  # a byte-order mark some editors write


def check_regular_file(path: Path, what: str) -> None:
    """DatasetError unless ``path`` is a regular file (a named pipe blocks a reader for ever, a
    device never ends); checked before opening. A missing file raises FileNotFoundError."""
    mode = path.stat().st_mode  # follows links; stat never blocks, unlike open on a pipe
    if stat.S_ISREG(mode):
        return
    kinds = {stat.S_IFDIR: "a folder", stat.S_IFIFO: "a named pipe (FIFO)"}
    kind = kinds.get(stat.S_IFMT(mode), "a device or socket")
    raise DatasetError(f"{what} {path} is {kind}, not a regular file; give an image file")


def _decode(path: Path, what: str, convert: Callable[[Image.Image], np.ndarray]) -> np.ndarray:
    """Open ``path`` with Pillow, check its size from the header, then ``convert`` it."""
    limit = max_pixels()
    try:
        check_regular_file(path, what)
        with warnings.catch_warnings():
            # Pillow warns about what it skips in damaged files (corrupt EXIF, truncated tags);
            # the file is either read or refused below, so the warnings add nothing.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below
            with _pillow_allows(limit):
                opened = Image.open(path)
            with opened as img:
                width, height = img.size
                if width * height > limit:
                    raise ImageTooLargeError(_too_large(what, path, f"{width}x{height}", limit))
                return convert(img)
    except FileNotFoundError:
        raise DatasetError(f"{what} file {path} does not exist; check the dataset root") from None
    except PermissionError:
        raise DatasetError(f"cannot read {what} {path}: permission denied") from None
    except Image.DecompressionBombError as exc:
        # Pillow refuses far larger images already when opening; its message has the pixel count.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)):,} pixels" if found else "far larger than that"
        raise ImageTooLargeError(_too_large(what, path, size, limit)) from None
    except _READ_ERRORS as exc:
        raise DatasetError(
            f"cannot read {what} {path} ({exc}); the file is corrupt or truncated: "
            "re-download it or remove it from the split"
        ) from None


def _too_large(what: str, path: Path, size: str, limit: int) -> str:
    return (
        f"{what} {path} is {size}, over lrnet's limit of {limit:,} pixels; shrink it, or raise "
        f"the limit with the environment variable {MAX_PIXELS_ENV} (e.g. {4 * limit})"
    )


@contextmanager
def _pillow_allows(limit: int) -> Iterator[None]:
    """Lift Pillow's bomb check (179 M pixels) to ``limit`` while opening, when that is higher."""
    current = Image.MAX_IMAGE_PIXELS
    if current is None or limit <= current:
        yield
        return
    with _PILLOW_LIMIT_LOCK:
        Image.MAX_IMAGE_PIXELS = limit
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = current


def read_mat_label(
    path: str | Path, struct: str = "GTcls", field: str = "Segmentation"
) -> np.ndarray:
    """Read a label map from a MATLAB ``.mat`` file, e.g. SBD's ``GTcls.Segmentation``.

    Raises:
        DatasetError: scipy (optional, imported here) is missing, or the file is unreadable or
            lacks ``struct.field``.
    """
    path = Path(path)
    try:
        from scipy.io import loadmat
    except ImportError:
        raise DatasetError(f"SBD label {path} needs scipy: pip install lrnet[sbd]") from None
    try:
        mat = loadmat(path, squeeze_me=True, struct_as_record=False)
        array = np.asarray(getattr(mat[struct], field))
    except FileNotFoundError:
        raise DatasetError(f"mask file {path} does not exist; check the SBD root") from None
    except (KeyError, AttributeError):
        raise DatasetError(
            f"{path} has no {struct}.{field}; is it an SBD cls/*.mat file?"
        ) from None
    except (OSError, ValueError, TypeError) as exc:
        raise DatasetError(f"cannot read the .mat label {path} ({exc}); re-download it") from None
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise DatasetError(f"{path}: {struct}.{field} is not a 2-D integer label map")
    return array


def to_numpy(value: Any) -> np.ndarray:
    """``value`` as numpy: a (CPU or GPU) tensor, told without importing torch, copied to the
    CPU, floating point as float32 (bf16 has no numpy dtype); anything else by ``np.asarray``."""
    if not hasattr(value, "detach"):
        return np.asarray(value)
    tensor = value.detach().cpu()
    return (tensor.float() if tensor.is_floating_point() else tensor).numpy()
