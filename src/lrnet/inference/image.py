"""The one preprocessing rule: the network input for an image, and the way back to its size.

Everything that runs or scores a model calls these, so what is scored is what is run
(docs/deploy.md, "The aspect ratio"). Numpy and Pillow only: ``lrnet predict`` on ONNX Runtime
or OpenVINO starts without loading torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps

from lrnet._errors import ArgumentError, ArgumentTypeError, LrnetError
from lrnet._memory import check_fits, run_bytes
from lrnet.data._io import _to_rgb_array, read_rgb, to_numpy

if TYPE_CHECKING:
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
    """The ``(h, w)`` network input for an ``height x width`` image: ``eval_size`` when given
    (the image is fitted inside it, ``fit_size``), else the image's own size, scaled keeping its
    aspect when a side is under ``min_size`` or the longer side over ``max_side``."""
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


def resize(array: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """``(..., H, W)`` float32 planes at ``size`` ``(h, w)``: bilinear, antialiased when shrinking.

    Pillow's float resampling is the algorithm of torch's ``interpolate(mode="bilinear",
    antialias=True)``, so of the training transforms; the two agree to float rounding
    (tests/inference/test_predictor.py). At its own size the input itself comes back.
    """
    size = (int(size[0]), int(size[1]))
    if tuple(array.shape[-2:]) == size:
        return array
    planes = np.ascontiguousarray(array, dtype=np.float32).reshape(-1, *array.shape[-2:])
    out = np.empty((len(planes), *size), dtype=np.float32)
    for index, plane in enumerate(planes):
        image = Image.fromarray(plane).resize((size[1], size[0]), Image.Resampling.BILINEAR)
        out[index] = np.asarray(image)
    return out.reshape(*array.shape[:-2], *size)


def letterbox(
    pixels: np.ndarray, eval_size: Sequence[int] | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """The network input for ``(3, H, W)`` float32 ``pixels`` in [0, 1] (or a batch
    ``(N, 3, H, W)`` of one size): ``(..., 3, h, w)`` at ``run_size``, the image resized to
    ``fit_size`` at its top-left, zeros right and bottom; and the ``(h', w')`` it was resized to."""
    height, width = (int(v) for v in pixels.shape[-2:])
    canvas = run_size(height, width, eval_size)
    valid = fit_size(height, width, canvas)
    resized = resize(pixels, valid)
    if valid == canvas:
        return resized, valid
    padded = np.zeros((*pixels.shape[:-2], *canvas), dtype=np.float32)
    padded[..., : valid[0], : valid[1]] = resized
    return padded, valid


def crop_stage(stage: np.ndarray, valid: Sequence[int], canvas: Sequence[int]) -> np.ndarray:
    """The part of a ``(..., h_k, w_k)`` stage that covers the image's ``valid`` part of the
    ``canvas`` (a partly covered cell is kept)."""
    h_k, w_k = stage.shape[-2:]
    rows = min(h_k, max(1, math.ceil(valid[0] * h_k / canvas[0])))
    cols = min(w_k, max(1, math.ceil(valid[1] * w_k / canvas[1])))
    return stage[..., :rows, :cols]


def labels_at(logits: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """``(H, W)`` int64 argmax (first class wins a tie) of ``(C, h, w)`` logits resized to
    ``size``, one class plane at a time: memory stays at two ``(H, W)`` planes."""
    best = np.array(resize(logits[0], size), dtype=np.float32)  # a copy: written below
    labels = np.zeros(best.shape, dtype=np.int64)
    for index in range(1, len(logits)):
        plane = resize(logits[index], size)
        better = plane > best
        labels[better] = index
        np.maximum(best, plane, out=best)
    return labels


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    """Softmax over ``axis`` in float32."""
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return (shifted / shifted.sum(axis=axis, keepdims=True)).astype(np.float32, copy=False)


def photometric(pixels: np.ndarray, gain: float = 1.0, gamma: float = 1.0) -> np.ndarray:
    """``clip(gain * pixels ** gamma, 0, 1)``: brighter (gain > 1), darker (< 1), washed out
    (gamma < 1) or deepened (gamma > 1) copies of ``(..., 3, H, W)`` images in [0, 1]."""
    out = np.clip(pixels, 0.0, 1.0) ** np.float32(gamma) * np.float32(gain)
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)


def _pil_to_array(image: Image.Image) -> np.ndarray:
    """``(3, H, W)`` float32 in [0, 1] from a PIL image, converted as the datasets read files
    (``lrnet.data._io``: EXIF rotation, 16-bit, alpha, palettes)."""
    filename = getattr(image, "filename", "")  # set on images opened from a file
    name = f"image {filename}" if filename else "the image"
    try:
        array = _to_rgb_array(ImageOps.exif_transpose(image), name)
    except (OSError, ValueError) as exc:  # closed (ValueError) or truncated (OSError) images
        raise ArgumentError(
            f"image: cannot read {name} ({exc}); give an open, complete PIL image"
        ) from None
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def _from_channels(array: np.ndarray, what: str) -> np.ndarray:
    """``(3, H, W)`` float32 in [0, 1] from a uint8 or float channels-first array (a new array:
    the caller's memory is never written); float values outside [0, 1] or NaN are an error."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    if not np.issubdtype(array.dtype, np.floating):
        kind = what.removeprefix("the ")  # "numpy image", "image tensor"
        raise LrnetError(
            f"expected a uint8 or float {kind}, got {array.dtype}; convert to uint8 RGB"
        )
    image = np.array(array, dtype=np.float32, order="C")
    if image.size == 0:
        raise LrnetError(f"{what} is empty ({tuple(image.shape)})")
    if not bool(np.isfinite(image).all()):
        raise LrnetError(f"{what} holds NaN or infinite values; give RGB values in [0, 1]")
    low, high = float(image.min()), float(image.max())
    if low < 0.0 or high > 1.0:
        hint = " (divide 0..255 pixels by 255, or pass them as uint8)" if high > 1.0 else ""
        raise LrnetError(
            f"{what} has values from {low:.4g} to {high:.4g}; float images must be in [0, 1]{hint}"
        )
    return image


def load_image(image: ImageInput) -> np.ndarray:
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
    if isinstance(image, (str, Path)):
        pixels = np.ascontiguousarray(read_rgb(image).transpose(2, 0, 1))
    elif isinstance(image, Image.Image):
        pixels = _pil_to_array(image)
    elif isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] != 3:
            raise LrnetError(
                f"expected a numpy (H, W, 3) RGB image (or (H, W) gray), got shape {image.shape}"
            )
        pixels = _from_channels(image.transpose(2, 0, 1), "the numpy image")
    # A torch tensor, told without importing torch (a caller that has one has loaded it).
    elif type(image).__module__.startswith("torch") and hasattr(image, "detach"):
        tensor: Any = image
        if tensor.ndim != 3 or tensor.shape[0] != 3:
            raise LrnetError(
                f"expected a (3, H, W) image tensor (uint8, or float in [0, 1]), got shape "
                f"{tuple(tensor.shape)}; a batch goes in as a list (list(images) for an "
                "(N, 3, H, W) tensor)"
            )
        pixels = _from_channels(to_numpy(tensor), "the image tensor")
    else:
        raise ArgumentTypeError(
            f"image: cannot predict on a {type(image).__name__}; give a path, a PIL image, a "
            "numpy (H, W, 3) RGB array, a (3, H, W) tensor or a list of them"
        )
    if pixels.shape[-2] == 0 or pixels.shape[-1] == 0:
        raise LrnetError(f"the image has no pixels ({pixels.shape[-2]}x{pixels.shape[-1]})")
    return pixels


def scaled_size(base: Sequence[int], scale: float, batch: int = 1) -> tuple[int, int]:
    """The run size at test-time ``scale`` of ``base`` ``(h, w)``.

    Raises:
        LrnetError: a side falls under ``MIN_SIZE`` (it would run at another scale than the
            one reported), or the size cannot fit in memory.
    """
    size = (round(base[0] * scale), round(base[1] * scale))
    if min(size) < MIN_SIZE:
        least = MIN_SIZE / min(base)
        raise LrnetError(
            f"scale {scale} runs {base[0]}x{base[1]} (H x W) at {size[0]}x{size[1]}, under the "
            f"model's minimum of {MIN_SIZE} pixels a side; use scales of at least {least:.3g} "
            "(or a larger --eval-size)"
        )
    check_fits(
        run_bytes(batch, *size, channels=8),
        f"scale {scale} of {base[0]}x{base[1]} (a {size[0]}x{size[1]} input)",
        "give smaller --scales or --eval-size",
    )
    return size
