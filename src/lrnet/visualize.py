"""Drawing label maps: colour masks, overlays, coarse-to-fine stage panels and class legends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lrnet._checks import palette_colors, whole_number
from lrnet._errors import ArgumentError
from lrnet.data._io import to_numpy

if TYPE_CHECKING:
    from torch import Tensor

    ImageLike = Image.Image | Tensor | np.ndarray
    MaskLike = Tensor | np.ndarray

Color = tuple[int, int, int]

VOID_COLOR: Color = (0, 0, 0)
BACKGROUND: Color = (255, 255, 255)
TEXT_COLOR: Color = (0, 0, 0)
_PAD = 4  # pixels between tiles and around titles
_MIN_TILE = 128  # small images are shown larger so that the titles fit


def voc_colormap(n: int) -> list[tuple[int, int, int]]:
    """The VOC devkit's palette (``labelcolormap.m``): colour of index i from the bits of i."""
    colors = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colors.append((r, g, b))
    return colors


def default_palette(num_classes: int) -> list[Color]:
    """The PASCAL VOC colour map shifted by one (class k gets VOC's colour k + 1), for models
    without a palette: black stays free for void."""
    return voc_colormap(whole_number("num_classes", num_classes, 0) + 1)[1:]


def _mask_array(mask: MaskLike) -> np.ndarray:
    """``(H, W)`` int64 array from a tensor or array label map."""
    array = to_numpy(mask)
    if array.ndim != 2:
        raise ValueError(f"expected a (H, W) label map, got shape {array.shape}")
    return array.astype(np.int64, copy=False)


def _image_array(image: ImageLike) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB from PIL, or from a ``(3, H, W)`` (``Prediction.image``, a
    tensor) or ``(H, W, 3)`` array, float in [0, 1] or uint8."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = to_numpy(image)
    channels_first = array.ndim == 3 and array.shape[0] == 3 and array.shape[2] != 3
    if hasattr(image, "detach") and not channels_first:
        raise ValueError(f"expected a (3, H, W) image tensor, got shape {tuple(array.shape)}")
    if channels_first:
        array = array.transpose(1, 2, 0)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected a (H, W, 3) image array, got shape {array.shape}")
    if array.dtype != np.uint8:
        array = (np.clip(array.astype(np.float32), 0, 1) * 255).round().astype(np.uint8)
    return np.ascontiguousarray(array)


def colorize(
    mask: MaskLike, palette: Sequence[Sequence[int]], void_color: Color = VOID_COLOR
) -> Image.Image:
    """An ``(H, W)`` label map (tensor or array) as an RGB image of one colour per class;
    ``void_color`` for void (255) and any other value outside ``[0, len(palette))``."""
    labels = _mask_array(mask)
    palette = palette_colors("palette", palette)
    (void_color,) = palette_colors("void_color", [void_color])
    # Row len(palette) of the lookup table is the void colour; every invalid value points to it.
    table = np.array([*palette, void_color], dtype=np.uint8).reshape(-1, 3)
    valid = (labels >= 0) & (labels < len(palette))
    return Image.fromarray(table[np.where(valid, labels, len(palette))])


def overlay(
    image: ImageLike,
    mask: MaskLike,
    palette: Sequence[Sequence[int]],
    alpha: float = 0.5,
) -> Image.Image:
    """Blend the colour mask of ``(H, W)`` class indices over the image (PIL, ``(3, H, W)``
    float tensor in [0, 1] or ``(H, W, 3)`` uint8 array) with the mask's weight ``alpha``; void
    pixels show the image alone."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ArgumentError(f"alpha must be a number in [0, 1], got {alpha!r}")
    palette = palette_colors("palette", palette)
    pixels = _image_array(image)
    labels = _mask_array(mask)
    if labels.shape != pixels.shape[:2]:
        raise ValueError(f"mask {labels.shape} and image {pixels.shape[:2]} differ in size")
    # Every (class, channel value) pair blended once, in float32 and rounded: a lookup table
    # (classes + 1 void row that keeps the value, 256 values, 3 channels) replaces the per-pixel
    # float arithmetic (4x faster on a video frame, the same bytes).
    k = len(palette)
    values = np.arange(256, dtype=np.float32)[:, None]
    colors = np.array(palette, dtype=np.float32).reshape(k, 1, 3)
    table = np.empty((k + 1, 256, 3), dtype=np.uint8)
    table[:k] = np.round((1 - alpha) * values[None] + alpha * colors)
    table[k] = np.arange(256, dtype=np.uint8)[:, None]
    rows = np.where((labels >= 0) & (labels < k), labels, k).astype(np.intp)
    index = (rows * 256)[..., None] + pixels
    index *= 3
    index += np.arange(3)
    return Image.fromarray(table.reshape(-1)[index])


def _text_size(
    draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont
) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return int(right - left), int(bottom - top)


def legend(
    classes: Sequence[str],
    palette: Sequence[Sequence[int]],
    *,
    width: int | None = None,
    swatch: int = 12,
) -> Image.Image:
    """An RGB image of coloured swatches (``swatch`` pixels a side) with class names, wrapped
    into rows of ``width`` pixels (``None``: one row)."""
    palette = palette_colors("palette", palette)
    whole_number("swatch", swatch, 1)
    if width is not None:
        whole_number("width", width, 1)
    font = ImageFont.load_default(12)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    entries = []
    for index, name in enumerate(classes):
        text = f"{index} {name}"
        color = palette[index] if index < len(palette) else VOID_COLOR
        entries.append((text, color, swatch + 4 + _text_size(probe, text, font)[0]))
    row_height = swatch + _PAD
    rows: list[list[tuple[str, Color, int]]] = [[]]
    line = _PAD
    for entry in entries:
        if width is not None and rows[-1] and line + entry[2] + _PAD > width:
            rows.append([])
            line = _PAD
        rows[-1].append(entry)
        line += entry[2] + 2 * _PAD
    total_width = width or max(_PAD + sum(e[2] + 2 * _PAD for e in row) for row in rows)
    canvas = Image.new("RGB", (max(total_width, 1), row_height * len(rows) + _PAD), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        x, y = _PAD, _PAD + r * row_height
        for text, color, entry_width in row:
            draw.rectangle([x, y, x + swatch - 1, y + swatch - 1], fill=color, outline=(96, 96, 96))
            draw.text(
                (x + swatch + 4, y + swatch // 2), text, fill=TEXT_COLOR, font=font, anchor="lm"
            )
            x += entry_width + 2 * _PAD
    return canvas


def _tile_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """``(h, w)`` of a display tile: the image's aspect, longer side in [_MIN_TILE, max_side]."""
    longer = max(height, width)
    target = max(longer, _MIN_TILE) if max_side is None else min(max(longer, _MIN_TILE), max_side)
    scale = target / longer
    return max(1, round(height * scale)), max(1, round(width * scale))


def stage_panel(
    image: ImageLike,
    stage_predictions: Sequence[MaskLike],
    palette: Sequence[Sequence[int]],
    ground_truth: MaskLike | None = None,
    titles: Sequence[str] | None = None,
    *,
    classes: Sequence[str] | None = None,
    max_tile_side: int | None = 320,
) -> Image.Image:
    """One RGB row: the input, each stage's label map coarse to fine, then the ground truth.

    Every tile has the input's aspect ratio; the stage maps are scaled to it with nearest
    neighbour, so s_1 (stride 32) looks as blocky as it is.

    Args:
        image: PIL, ``(3, H, W)`` float tensor in [0, 1] or ``(H, W, 3)`` uint8 array.
        stage_predictions: ``(h_k, w_k)`` label maps, coarse to fine, each at its own resolution.
        ground_truth: ``(H, W)`` label map, drawn as the last tile.
        titles: one title per tile; default "input", "s_1 12x15" ... "ground truth".
        classes: class names; when given, a legend is drawn under the row.
        max_tile_side: the longer side of a tile at most (``None``: the input's); inputs under
            128 pixels are scaled up.
    """
    pixels = _image_array(image)
    tile_h, tile_w = _tile_size(pixels.shape[0], pixels.shape[1], max_tile_side)
    tiles = [Image.fromarray(pixels).resize((tile_w, tile_h), Image.Resampling.BILINEAR)]
    default_titles = ["input"]
    for k, labels in enumerate(stage_predictions):
        array = _mask_array(labels)
        tiles.append(colorize(array, palette).resize((tile_w, tile_h), Image.Resampling.NEAREST))
        default_titles.append(f"s_{k + 1} {array.shape[0]}x{array.shape[1]}")
    if ground_truth is not None:
        tiles.append(
            colorize(ground_truth, palette).resize((tile_w, tile_h), Image.Resampling.NEAREST)
        )
        default_titles.append("ground truth")
    titles = list(titles) if titles is not None else default_titles
    if len(titles) != len(tiles):
        raise ValueError(f"{len(tiles)} tiles but {len(titles)} titles")
    font = ImageFont.load_default(12)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    title_h = max(_text_size(probe, t, font)[1] for t in titles) + 2 * _PAD
    row_w = len(tiles) * (tile_w + _PAD) + _PAD
    row_h = title_h + tile_h + _PAD
    key = legend(classes, palette, width=row_w) if classes else None
    canvas = Image.new("RGB", (row_w, row_h + (key.height if key else 0)), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for i, (tile, title) in enumerate(zip(tiles, titles, strict=True)):
        x = _PAD + i * (tile_w + _PAD)
        canvas.paste(tile, (x, title_h))
        draw.text((x + tile_w // 2, title_h // 2), title, fill=TEXT_COLOR, font=font, anchor="mm")
    if key is not None:
        canvas.paste(key, (0, row_h))
    return canvas


def as_mask(labels: MaskLike) -> Image.Image:
    """A label map as an 8-bit single-channel ("L") image of its class indices (a value outside
    0..255 is a ValueError)."""
    array = _mask_array(labels)
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"label values {array.min()}..{array.max()} do not fit in 8 bits")
    return Image.fromarray(array.astype(np.uint8))


__all__ = ["as_mask", "colorize", "default_palette", "legend", "overlay", "stage_panel"]
