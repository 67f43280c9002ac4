"""Drawing label maps: palette colours, void, overlays, blocky stage tiles, legends."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lrnet.visualize import as_mask, colorize, default_palette, legend, overlay, stage_panel

PALETTE = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def test_colorize_uses_the_palette_and_draws_void_black() -> None:
    mask = torch.tensor([[0, 1], [2, 255]])
    pixels = np.asarray(colorize(mask, PALETTE))
    assert pixels.shape == (2, 2, 3)
    assert [tuple(p) for p in pixels.reshape(-1, 3)] == [*PALETTE, (0, 0, 0)]
    grey = np.asarray(colorize(mask.numpy(), PALETTE, void_color=(128, 128, 128)))
    assert tuple(grey[1, 1]) == (128, 128, 128)


def test_overlay_blends_classes_and_leaves_void_alone() -> None:
    image = torch.full((3, 2, 2), 0.4)  # grey 102
    mask = np.array([[0, 255], [1, 2]])
    pixels = np.asarray(overlay(image, mask, PALETTE, alpha=0.5)).astype(int)
    assert tuple(pixels[0, 0]) == (178, 51, 51)  # (102 + 255) / 2, 102 / 2
    assert tuple(pixels[0, 1]) == (102, 102, 102)
    assert np.array_equal(
        np.asarray(overlay(image, mask, PALETTE, alpha=0.0)), np.full((2, 2, 3), 102)
    )
    with pytest.raises(ValueError, match="differ in size"):
        overlay(image, np.zeros((3, 2), int), PALETTE)


@pytest.mark.parametrize("alpha", [0.5, 0.37, 1.0])
def test_overlay_equals_the_per_pixel_float_blend(alpha: float) -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (31, 45, 3), dtype=np.uint8)
    mask = rng.integers(-1, len(PALETTE) + 2, (31, 45))
    mask[0, :5] = 255
    colors = np.array([*PALETTE, (0, 0, 0)], dtype=np.float32)
    valid = (mask >= 0) & (mask < len(PALETTE))
    blend = (1 - alpha) * image.astype(np.float32) + alpha * colors[np.where(valid, mask, -1)]
    expected = np.round(np.where(valid[..., None], blend, image)).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(overlay(image, mask, PALETTE, alpha)), expected)


def test_stage_panel_tiles_are_blocky_and_the_ground_truth_adds_one() -> None:
    image = torch.rand(3, 64, 96)
    coarse = torch.tensor([[0, 1, 2], [2, 1, 0]])  # a 2x3 map, like s_1 of a 64x96 input
    stages = [coarse, torch.randint(0, 3, (64, 96))]
    plain = stage_panel(image, stages, PALETTE, max_tile_side=None)
    with_gt = stage_panel(image, stages, PALETTE, ground_truth=stages[-1], max_tile_side=None)
    # 64x96 is under the 128-pixel minimum: tiles are 85x128, padded by 4
    assert plain.width == 3 * (128 + 4) + 4 and with_gt.width == 4 * (128 + 4) + 4
    # the s_1 tile shows exactly its six cells, each a solid block (nearest, not smoothed)
    top = plain.height - 85 - 4
    tile = np.asarray(plain)[top : top + 85, 4 + 132 : 4 + 132 + 128]
    colors = {tuple(c) for c in tile.reshape(-1, 3)}
    assert colors == set(PALETTE)
    assert tuple(tile[5, 5]) == PALETTE[0] and tuple(tile[-5, -5]) == PALETTE[0]
    assert tuple(tile[5, 64]) == PALETTE[1] and tuple(tile[-5, 5]) == PALETTE[2]


def test_legend_and_default_palette() -> None:
    palette = default_palette(21)
    assert len(set(palette)) == 21 and (0, 0, 0) not in palette
    # VOC's devkit colours of labels 1 (aeroplane), 2 (bicycle) and 15 (person), one class early
    assert (
        palette[0] == (128, 0, 0) and palette[1] == (0, 128, 0) and palette[14] == (192, 128, 128)
    )
    key = legend(["sky", "road", "car"], PALETTE)
    colors = {tuple(c) for c in np.asarray(key).reshape(-1, 3)}
    assert set(PALETTE) <= colors
    assert legend(["a"] * 30, default_palette(30), width=200).height > key.height  # wrapped


def test_as_mask_stores_indices_in_8_bits() -> None:
    mask = as_mask(np.array([[0, 4], [255, 1]]))
    assert mask.mode == "L" and np.array_equal(np.asarray(mask), [[0, 4], [255, 1]])
    with pytest.raises(ValueError, match="8 bits"):
        as_mask(np.array([[300]]))
    assert isinstance(colorize(np.zeros((1, 1), int), PALETTE), Image.Image)


# ---------------------------------------------------------------- bad arguments (issue 21)

BAD_PALETTES = [
    ([(0, 0)], ValueError, r"palette\[0\] is \(0, 0\); each colour is \(r, g, b\)"),
    ([(0, 0, 300)], ValueError, r"palette\[0\] is \(0, 0, 300\).*0-255"),
    ([(0, -1, 3)], ValueError, r"palette\[0\] is \(0, -1, 3\)"),
    ([(0.5, 0, 0)], ValueError, r"whole numbers in 0-255"),
    (7, TypeError, r"palette must be a list of \(r, g, b\) colours, got int"),
]


@pytest.mark.parametrize(("palette", "error", "message"), BAD_PALETTES)
def test_a_bad_palette_is_refused_by_name(palette: object, error: type, message: str) -> None:
    mask = np.zeros((4, 4), np.int64)
    image = np.zeros((4, 4, 3), np.uint8)
    for draw in (
        lambda: colorize(mask, palette),  # type: ignore[arg-type]
        lambda: overlay(image, mask, palette),  # type: ignore[arg-type]
        lambda: legend(["a"], palette),  # type: ignore[arg-type]
    ):
        with pytest.raises(error, match=message):
            draw()


def test_counts_and_opacity_are_checked_by_name() -> None:
    with pytest.raises(TypeError, match="num_classes must be a whole number"):
        default_palette(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_classes must be a whole number >= 0, got -1"):
        default_palette(-1)
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\], got True"):
        overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.int64), [(1, 2, 3)], True)
    assert np.asarray(colorize(np.zeros((2, 2), np.int64), np.array([[1, 2, 3]], np.uint8)))[
        0, 0
    ].tolist() == [1, 2, 3]  # a palette read from an array is fine
