"""Paired transforms: output contract, image/mask alignment through every step, void padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lrnet.data.transforms import eval_transforms, train_transforms

NUM_CLASSES = 6
# One distinct colour per class, so the image encodes the mask: image == COLORS[mask].
COLORS = torch.tensor(
    [
        [0.9, 0.1, 0.1],
        [0.1, 0.9, 0.1],
        [0.1, 0.1, 0.9],
        [0.9, 0.9, 0.1],
        [0.5, 0.2, 0.7],
        [0.3, 0.6, 0.6],
    ]
)


def blocky_pair(height: int = 96, width: int = 128, cell: int = 16, seed: int = 0):
    """A mask of random classes in ``cell`` x ``cell`` blocks, with a void block, and its image."""
    gen = torch.Generator().manual_seed(seed)
    cells = torch.randint(0, NUM_CLASSES, (height // cell, width // cell), generator=gen)
    mask = cells.repeat_interleave(cell, 0).repeat_interleave(cell, 1)
    image = COLORS[mask].permute(2, 0, 1).contiguous()
    mask[:cell, :cell] = 255  # void keeps its class colour in the image; it is just not checked
    return image, mask.long()


def aligned_fraction(
    image: torch.Tensor, mask: torch.Tensor, margin: int = 2
) -> tuple[float, float]:
    """(fraction of checkable pixels, fraction of them where image == COLORS[mask]).

    Checkable: non-void pixels at least ``margin`` from the border whose (2*margin+1)^2
    neighbourhood has one label, so the bilinear blur of the image at block edges does not count.
    """
    valid = mask != 255
    labels = torch.where(valid, mask, torch.full_like(mask, NUM_CLASSES)).float()[None, None]
    size = 2 * margin + 1
    high = F.max_pool2d(labels, size, 1, margin)[0, 0]
    low = -F.max_pool2d(-labels, size, 1, margin)[0, 0]
    interior = valid & (high == low)
    # Pixels near the edge may be blurred by a boundary just outside a crop: not checkable.
    interior[:margin], interior[-margin:], interior[:, :margin], interior[:, -margin:] = (
        False,
    ) * 4
    if interior.sum() == 0:
        return 0.0, 0.0
    expected = COLORS[mask.clamp(max=NUM_CLASSES - 1)].permute(2, 0, 1)
    close = (image - expected).abs().amax(0) < 1e-3
    return interior.float().mean().item(), close[interior].float().mean().item()


def test_alignment_checker_can_fail():
    image, mask = blocky_pair()
    checkable, agree = aligned_fraction(image, mask)
    assert checkable > 0.4 and agree == 1.0
    _, agree_flipped = aligned_fraction(image.flip(-1), mask)
    _, agree_shifted = aligned_fraction(torch.roll(image, 6, dims=-2), mask)
    assert agree_flipped < 0.9 and agree_shifted < 0.9


@pytest.mark.parametrize("seed", range(16))
def test_train_transforms_keep_image_and_mask_aligned(seed):
    torch.manual_seed(seed)
    image, mask = blocky_pair(seed=seed)
    transform = train_transforms((48, 64), scale_range=(0.5, 2.0), hflip=True)
    out_image, out_mask = transform(image, mask)
    assert out_image.shape == (3, 48, 64) and out_image.dtype == torch.float32
    assert out_mask.shape == (48, 64) and out_mask.dtype == torch.int64
    assert out_image.min() >= 0.0 and out_image.max() <= 1.0
    assert set(out_mask.unique().tolist()) <= {*range(NUM_CLASSES), 255}  # nearest: no new values
    checkable, agree = aligned_fraction(out_image, out_mask)
    assert checkable > 0.1
    assert agree == 1.0


def test_train_transforms_pad_with_void_and_black():
    image, mask = blocky_pair(32, 48)
    torch.manual_seed(0)
    out_image, out_mask = train_transforms((64, 80), scale_range=(1.0, 1.0), hflip=False)(
        image, mask
    )
    assert (out_mask == 255).sum() == 64 * 80 - 32 * 48 + 16 * 16  # padding + the void block
    padded = (out_mask == 255) & (out_image.abs().sum(0) == 0)
    assert padded.sum() == 64 * 80 - 32 * 48
    _, agree = aligned_fraction(out_image, out_mask)
    assert agree == 1.0  # no resize: exact


def test_base_size_resizes_before_scaling():
    image, mask = blocky_pair(120, 160, cell=20)  # halved: 10-pixel cells
    out_image, out_mask = train_transforms(
        (60, 80), scale_range=(1.0, 1.0), hflip=False, base_size=(60, 80)
    )(image, mask)
    expected = mask[10::20, 10::20].repeat_interleave(10, 0).repeat_interleave(10, 1)
    assert torch.equal(out_mask, expected)
    _, agree = aligned_fraction(out_image, out_mask)
    assert agree == 1.0


def test_random_scale_of_base_size_reads_the_original_pixels():
    image, mask = blocky_pair(120, 160, cell=20)
    torch.manual_seed(0)  # base (60, 80) x 2.0 is the original size: one resize, so no change
    out_image, out_mask = train_transforms(
        (120, 160), scale_range=(2.0, 2.0), hflip=False, base_size=(60, 80)
    )(image, mask)
    assert torch.equal(out_mask, mask)
    assert torch.allclose(out_image, image)


@pytest.mark.parametrize("seed", range(4))
def test_photometric_distortion_changes_the_image_only(seed):
    image, mask = blocky_pair()
    torch.manual_seed(seed)
    transform = train_transforms((96, 128), (1.0, 1.0), hflip=False, photometric=True)
    changed = 0
    for _ in range(4):
        out_image, out_mask = transform(image, mask)
        assert torch.equal(out_mask, mask)
        assert out_image.min() >= 0.0 and out_image.max() <= 1.0
        changed += not torch.allclose(out_image, image, atol=1e-3)
    assert changed >= 2  # each of five changes has p=0.5: all off four times is 1 in 10^6


def test_color_jitter_changes_the_image_only():
    image, mask = blocky_pair()
    torch.manual_seed(1)
    out_image, out_mask = train_transforms(
        (96, 128), scale_range=(1.0, 1.0), hflip=False, color_jitter=0.5
    )(image, mask)
    assert torch.equal(out_mask, mask)
    assert not torch.allclose(out_image, image, atol=1e-3)


@pytest.mark.parametrize("size", [None, (48, 64), (120, 140)])
def test_eval_transforms_resize_mask_nearest_and_stay_aligned(size):
    image, mask = blocky_pair()
    out_image, out_mask = eval_transforms(size)(image, mask)
    assert tuple(out_mask.shape) == (size or (96, 128))
    assert out_image.shape == (3, *out_mask.shape) and out_mask.dtype == torch.int64
    assert set(out_mask.unique().tolist()) <= set(mask.unique().tolist())
    _, agree = aligned_fraction(out_image, out_mask, margin=1 if size is None else 2)
    assert agree == 1.0


def test_transform_applies_to_dataset_items(tmp_path):
    from PIL import Image

    from lrnet.data import build_dataset

    (tmp_path / "classes.yaml").write_text("names: [a, b, c, d, e, f]\n")
    image, mask = blocky_pair()
    for sub in ("images/train", "masks/train"):
        (tmp_path / sub).mkdir(parents=True)
    Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(
        tmp_path / "images/train/x.png"
    )
    Image.fromarray(mask.numpy().astype(np.uint8)).save(tmp_path / "masks/train/x.png")
    ds = build_dataset("folder", tmp_path, "train", transforms=train_transforms((32, 32)))
    out_image, out_mask = ds[0]
    assert out_image.shape == (3, 32, 32) and out_mask.shape == (32, 32)
    assert ds.read_mask(0).shape == (96, 128)  # original resolution, no transforms
