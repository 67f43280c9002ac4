"""Paired (image, mask) transforms on torchvision ``transforms.v2``: masks nearest, padded void."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from lrnet.data._io import IGNORE_INDEX


def resize_image(image: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear resize with antialiasing of ``(..., 3, H, W)`` float images to ``size`` ``(h, w)``;
    the one image resize of the project, so a model sees the same pixels in every path."""
    size = [int(size[0]), int(size[1])]
    if list(image.shape[-2:]) == size:
        return image
    return TF.resize(image, size, interpolation=v2.InterpolationMode.BILINEAR, antialias=True)


def _resize(inpt: Any, size: list[int]) -> Any:
    """Images through ``resize_image``; masks nearest at exact pixel centres, so both align."""
    if isinstance(inpt, tv_tensors.Mask):
        return TF.resize(inpt, size, interpolation=v2.InterpolationMode.NEAREST_EXACT)
    return tv_tensors.wrap(resize_image(inpt.as_subclass(Tensor), size), like=inpt)


class Resize(v2.Transform):
    """Resize image and mask to a fixed ``(H, W)``."""

    def __init__(self, size: Sequence[int]):
        super().__init__()
        self.size = [int(size[0]), int(size[1])]

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return _resize(inpt, self.size)


class RandomScale(v2.Transform):
    """Scale image and mask by one factor drawn uniformly from ``scale_range``, of ``base_size``
    ``(H, W)`` if given, in one resize from the original pixels (so (180, 240) x 2.0 reads a
    360x480 CamVid image at full detail rather than enlarging a half-size copy)."""

    def __init__(self, scale_range: Sequence[float], base_size: Sequence[int] | None = None):
        super().__init__()
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.base_size = None if base_size is None else (int(base_size[0]), int(base_size[1]))

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = self.base_size or v2.query_size(flat_inputs)
        scale = float(torch.empty(1).uniform_(*self.scale_range))  # torch RNG, like v2
        return {"size": [max(1, round(height * scale)), max(1, round(width * scale))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return _resize(inpt, params["size"])


class PhotoMetricDistortion(v2.Transform):
    """MMSegmentation's ``PhotoMetricDistortion`` plus a random gamma, on the image only: each
    step with probability 0.5, contrast before or after the others at random, as in mmseg."""

    def __init__(
        self,
        brightness_delta: float = 32 / 255,
        contrast_range: tuple[float, float] = (0.5, 1.5),
        saturation_range: tuple[float, float] = (0.5, 1.5),
        hue_delta: float = 18 / 180,
        gamma_range: tuple[float, float] = (0.6, 1.6),
    ):
        super().__init__()
        self.brightness_delta = float(brightness_delta)
        self.contrast_range = contrast_range
        self.saturation_range = saturation_range
        self.hue_delta = float(hue_delta)
        self.gamma_range = gamma_range

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        apply, value = torch.rand(6).tolist(), torch.rand(5).tolist()  # torch RNG, like v2

        def draw(i: int, low: float, high: float) -> float | None:
            return low + (high - low) * value[i] if apply[i] < 0.5 else None

        return {
            "brightness": draw(0, -self.brightness_delta, self.brightness_delta),
            "contrast": draw(1, *self.contrast_range),
            "saturation": draw(2, *self.saturation_range),
            "hue": draw(3, -self.hue_delta, self.hue_delta),
            "gamma": draw(4, *self.gamma_range),
            "contrast_first": apply[5] < 0.5,
        }

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image):
            return inpt
        image = inpt.as_subclass(Tensor)
        if params["brightness"] is not None:
            image = (image + params["brightness"]).clamp_(0.0, 1.0)
        if params["contrast_first"] and params["contrast"] is not None:
            image = TF.adjust_contrast(image, params["contrast"])
        if params["saturation"] is not None:
            image = TF.adjust_saturation(image, params["saturation"])
        if params["hue"] is not None:
            image = TF.adjust_hue(image, params["hue"])
        if not params["contrast_first"] and params["contrast"] is not None:
            image = TF.adjust_contrast(image, params["contrast"])
        if params["gamma"] is not None:
            image = image.clamp(0.0, 1.0).pow_(params["gamma"])
        return tv_tensors.wrap(image, like=inpt)


class PairTransform:
    """Apply a v2 pipeline to image ``(3, H, W)`` float in [0, 1] and mask ``(H, W)`` int64;
    returns plain tensors: image ``(3, h, w)`` float32 in [0, 1], mask ``(h, w)`` int64."""

    def __init__(self, transforms: Sequence[v2.Transform]):
        self.pipeline = v2.Compose(list(transforms) or [v2.Identity()])

    def __call__(self, image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        image, mask = self.pipeline(tv_tensors.Image(image), tv_tensors.Mask(mask))
        image = image.as_subclass(Tensor).clamp_(0.0, 1.0).to(torch.float32)
        return image, mask.as_subclass(Tensor).to(torch.int64)

    def __repr__(self) -> str:
        return f"PairTransform({self.pipeline!r})"


def train_transforms(
    crop_size: tuple[int, int],
    scale_range: tuple[float, float] = (0.5, 2.0),
    hflip: bool = True,
    color_jitter: float = 0.0,
    ignore_index: int = IGNORE_INDEX,
    base_size: tuple[int, int] | None = None,
    photometric: bool = False,
) -> PairTransform:
    """The training preset: random scale, random crop to ``crop_size`` ``(H, W)``, flip, jitter.

    Args:
        crop_size: ``(H, W)`` of the output; smaller scaled images are padded with 0 and
            ``ignore_index`` (the mask), so padding never counts in the loss.
        scale_range: range of the random scale factor ((1.0, 1.0): no scaling).
        hflip: random horizontal flip with probability 0.5.
        color_jitter: strength of brightness/contrast/saturation jitter (0 = off).
        ignore_index: mask value of padded pixels.
        base_size: ``(H, W)`` the scale factor applies to, e.g. (180, 240) to train CamVid at
            half resolution.
        photometric: add ``PhotoMetricDistortion``.

    Returns:
        A ``PairTransform`` whose outputs are ``crop_size``.
    """
    steps: list[v2.Transform] = []
    if tuple(scale_range) != (1.0, 1.0):
        steps.append(RandomScale(scale_range, base_size))
    elif base_size is not None:
        steps.append(Resize(base_size))
    fill = {tv_tensors.Image: 0.0, tv_tensors.Mask: ignore_index}
    steps.append(v2.RandomCrop(list(crop_size), pad_if_needed=True, fill=fill))
    if hflip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    if color_jitter > 0:
        steps.append(
            v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter)
        )
    if photometric:
        steps.append(PhotoMetricDistortion())
    return PairTransform(steps)


def eval_transforms(size: tuple[int, int] | None = None) -> PairTransform:
    """The evaluation preset: an optional resize to ``size`` ``(H, W)`` (masks nearest)."""
    return PairTransform([Resize(size)] if size is not None else [])
