"""The one preprocessing rule: the network input for an image, and the way back to its size.

``lrnet predict``, ``Predictor``, ``lrnet evaluate``, training's validation, int8 calibration, the
check ``auto`` runs and the app all call these, so what is scored is what is run. An image is
resized (antialiased bilinear) to fit inside the model's run size keeping its aspect ratio,
placed top-left and padded right and bottom with 0 (``letterbox``); the padding is cut off every
stage's output (``crop_stage``) and logits are resized back to the image's size
(``resize_logits``). Models without a run size run at the image's own size, scaled when a side is
under ``MIN_SIZE`` or over ``MAX_SIDE``. ``load_image`` is the one reader of an image given for
inference (a file, PIL, numpy or a tensor), as the datasets read files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

from lrnet._errors import LrnetError

if TYPE_CHECKING:  # torch is imported where it is used: `lrnet predict --help` stays quick
    from torch import Tensor

    ImageInput = str | Path | Image.Image | np.ndarray | Tensor

MIN_SIZE = 32  # the networks' total stride: smaller inputs are scaled up
MAX_SIDE = 1024  # without a run size, an image with a longer side is scaled down to it


def run_size(
    height: int,
    width: int,
    eval_size: Sequence[int] | None = None,
    min_size: int = MIN_SIZE,
    max_side: int = MAX_SIDE,
) -> tuple[int, int]:
    """The ``(h, w)`` network input for an ``height x width`` image.

    ``eval_size`` when given (the size the model was validated at; the image is fitted inside it,
    see ``fit_size``). Otherwise the image's own size, odd sizes included, scaled keeping its
    aspect when a side is under ``min_size`` (up) or the longer side over ``max_side`` (down), so
    memory stays bounded whatever the input.
    """
    if eval_size is not None:
        return int(eval_size[0]), int(eval_size[1])
    scale = 1.0
    if min(height, width) < min_size:
        scale = min_size / min(height, width)
    if max(height, width) * scale > max_side:
        scale = max_side / max(height, width)
    if scale == 1.0:
        return height, width
    return max(min_size, round(height * scale)), max(min_size, round(width * scale))


def fit_size(height: int, width: int, canvas: Sequence[int]) -> tuple[int, int]:
    """The ``(h, w)`` an image is resized to inside a ``canvas`` ``(H, W)``: as large as fits,
    keeping its aspect ratio (never squashed); the rest of the canvas is padding."""
    scale = min(canvas[0] / height, canvas[1] / width)
    return (
        max(1, min(int(canvas[0]), round(height * scale))),
        max(1, min(int(canvas[1]), round(width * scale))),
    )


def letterbox(
    pixels: Tensor, eval_size: Sequence[int] | None = None
) -> tuple[Tensor, tuple[int, int]]:
    """The network input for one image, and the part of it that holds the image.

    Args:
        pixels: ``(3, H, W)`` float32 in [0, 1], or a batch ``(N, 3, H, W)`` of one size.
        eval_size: the model's run size ``(h, w)``, or ``None`` (see ``run_size``).

    Returns:
        ``(..., 3, h, w)`` float32 at ``run_size`` (the image resized to ``fit_size`` at its
        top-left, zeros right and bottom) and the ``(h', w')`` it was resized to.
    """
    from lrnet.data.transforms import resize_image

    height, width = (int(v) for v in pixels.shape[-2:])
    canvas = run_size(height, width, eval_size)
    valid = fit_size(height, width, canvas)
    resized = resize_image(pixels, valid)
    if valid == canvas:
        return resized, valid
    padded = pixels.new_zeros(*pixels.shape[:-2], *canvas)
    padded[..., : valid[0], : valid[1]] = resized
    return padded, valid


def crop_stage(stage: Tensor, valid: Sequence[int], canvas: Sequence[int]) -> Tensor:
    """The part of a ``(..., h_k, w_k)`` stage that covers the image's ``valid`` part of the
    ``canvas`` (a partly covered cell is kept)."""
    h_k, w_k = stage.shape[-2:]
    rows = min(h_k, max(1, math.ceil(valid[0] * h_k / canvas[0])))
    cols = min(w_k, max(1, math.ceil(valid[1] * w_k / canvas[1])))
    return stage[..., :rows, :cols]


def resize_logits(logits: Tensor, size: Sequence[int]) -> Tensor:
    """``(N, C, h, w)`` logits at ``size``: plain bilinear when enlarging (half-pixel centres,
    edges clamped), ``resize_image``'s antialiased bilinear when shrinking.

    When enlarging, antialiasing changes nothing (its filter is the bilinear one; outputs agree
    to 1e-6), but plain interpolation is several times faster.
    """
    import torch.nn.functional as F

    from lrnet.data.transforms import resize_image

    size = (int(size[0]), int(size[1]))
    height, width = logits.shape[-2:]
    if (height, width) == size:
        return logits
    if size[0] >= height and size[1] >= width:
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return resize_image(logits, size)


def photometric(pixels: Tensor, gain: float = 1.0, gamma: float = 1.0) -> Tensor:
    """``clip(gain * pixels ** gamma, 0, 1)``: brighter (gain > 1), darker (< 1), washed out
    (gamma < 1) or deepened (gamma > 1) copies of ``(..., 3, H, W)`` images in [0, 1]."""
    return (pixels.clamp(0.0, 1.0) ** gamma * gain).clamp_(0.0, 1.0)


def _pil_to_tensor(image: Image.Image) -> Tensor:
    """``(3, H, W)`` float32 in [0, 1] from a PIL image, converted as the datasets read files
    (``lrnet.data._io``: EXIF rotation, 16-bit, alpha, palettes)."""
    import torch

    from lrnet.data._io import _to_rgb_array

    filename = getattr(image, "filename", "")  # set on images opened from a file
    name = f"image {filename}" if filename else "the image"
    array = _to_rgb_array(ImageOps.exif_transpose(image), name)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _checked_float(image: Tensor, what: str) -> Tensor:
    """A float image whose values must already be in [0, 1]: NaN or a value outside is an error."""
    import torch

    image = image.detach().float().cpu()
    if image.numel() == 0:
        raise LrnetError(f"{what} is empty ({tuple(image.shape)})")
    if not bool(torch.isfinite(image).all()):
        raise LrnetError(f"{what} holds NaN or infinite values; give RGB values in [0, 1]")
    low, high = (float(v) for v in image.aminmax())
    if low < 0.0 or high > 1.0:
        hint = " (divide 0..255 pixels by 255, or pass them as uint8)" if high > 1.0 else ""
        raise LrnetError(
            f"{what} has values from {low:.4g} to {high:.4g}; float images must be in [0, 1]{hint}"
        )
    return image


def load_image(image: ImageInput) -> Tensor:
    """``(3, H, W)`` float32 in [0, 1] from any single image ``Predictor.predict`` takes.

    Args:
        image: a file path; a PIL image; a numpy ``(H, W, 3)`` RGB array (uint8 0..255, or float
            in [0, 1]; OpenCV's BGR frames need ``frame[..., ::-1]`` first) or ``(H, W)`` gray;
            a ``(3, H, W)`` tensor, uint8 or float in [0, 1].

    Raises:
        LrnetError: the file cannot be read; a shape, dtype or value range that is not one of
            the above (float values outside [0, 1] or NaN are refused, not clipped); an image
            with no pixels; a tensor on the meta device (it has no values).
    """
    if getattr(image, "is_meta", False):
        raise LrnetError("the image tensor is on the meta device and has no values to label")
    pixels = _read_pixels(image)
    if pixels.shape[-2] == 0 or pixels.shape[-1] == 0:
        raise LrnetError(f"the image has no pixels ({pixels.shape[-2]}x{pixels.shape[-1]})")
    return pixels


def _read_pixels(image: ImageInput) -> Tensor:
    """``load_image`` before its size check."""
    import torch

    if isinstance(image, (str, Path)):
        from lrnet.data._io import read_image

        return read_image(image)
    if isinstance(image, Image.Image):
        return _pil_to_tensor(image)
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] != 3:
            raise LrnetError(
                f"expected a numpy (H, W, 3) RGB image (or (H, W) gray), got shape {image.shape}"
            )
        if not image.flags.writeable:  # torch.from_numpy warns on read-only memory
            image = image.copy()
        if image.dtype == np.uint8:
            array = np.ascontiguousarray(image)
            return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)
        if not np.issubdtype(image.dtype, np.floating):
            raise LrnetError(
                f"expected a uint8 or float numpy image, got {image.dtype}; convert to uint8 RGB"
            )
        pixels = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
        return _checked_float(pixels.permute(2, 0, 1).contiguous(), "the numpy image")
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise LrnetError(
                f"expected a (3, H, W) image tensor (uint8, or float in [0, 1]), got shape "
                f"{tuple(image.shape)}; a batch goes in as a list (list(images) for an "
                "(N, 3, H, W) tensor)"
            )
        if image.dtype == torch.uint8:
            return image.detach().cpu().float().div_(255.0)
        if not image.is_floating_point():
            raise LrnetError(f"expected a uint8 or float image tensor, got {image.dtype}")
        return _checked_float(image, "the image tensor")
    raise LrnetError(
        f"cannot predict on a {type(image).__name__}; give a path, a PIL image, a numpy (H, W, 3) "
        "RGB array, a (3, H, W) tensor or a list of them"
    )
