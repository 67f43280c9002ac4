"""The VGG16 encoder, built from torchvision's VGG definition and split at its five pools."""

from __future__ import annotations

import http.client
import math
import pickle
import typing
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models import vgg as tv_vgg

from lrnet._errors import ArgumentError, ArgumentTypeError, LrnetError
from lrnet._memory import check_fits, run_bytes
from lrnet.config import EncoderName

# torchvision's configuration "D" is VGG16: 13 convs in five blocks, "M" marks a max-pool.
VGG16_LAYOUT: list[int | str] = list(tv_vgg.cfgs["D"])
ENCODERS = typing.get_args(EncoderName)  # the config schema lists them

# Image statistics the ImageNet VGG weights were trained with; the models normalise internally.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def scaled_width(channels: int, width: float) -> int:
    """Channel count ``channels * width``, rounded to a multiple of 8 and at least 8."""
    return max(8, round(channels * width / 8) * 8)


class VGGEncoder(nn.Module):
    """The 13 conv layers of VGG16 with their five max-pools.

    The layers sit in ``features`` exactly as in torchvision's ``vgg16().features`` (same indices,
    so torchvision state dicts load unchanged), except that the pools round up (``ceil_mode``) so
    that odd sizes keep every pixel: a 360 x 480 input gives 1/32 features of 12 x 15.

    Args:
        encoder: ``"vgg16"`` or ``"vgg16_bn"`` (BatchNorm after every conv).
        width: channel multiplier; 1.0 is VGG16.
        weights: ``None`` (random), ``"imagenet"`` (torchvision's weights API; downloads on first
            use) or a path to a local torchvision VGG16 state dict (``.pth``).

    Shape:
        input ``(N, 3, H, W)`` normalised images; ``forward`` returns the five skip features
        ``conv1_2 .. conv5_3`` at strides 1, 2, 4, 8, 16 and the pooled conv5 output at stride 32.
    """

    def __init__(self, encoder: str = "vgg16_bn", width: float = 1.0, weights: str | None = None):
        super().__init__()
        if encoder not in ENCODERS:
            raise LrnetError(f"unknown encoder {encoder!r}; choose one of {', '.join(ENCODERS)}")
        if isinstance(width, bool) or not isinstance(width, (int, float)):
            raise ArgumentTypeError(f"width must be a number > 0, got {width!r}")
        if not (math.isfinite(width) and width > 0):
            raise ArgumentError(f"width must be a number > 0, got {width}")
        self.encoder = encoder
        self.width = width
        layout = [v if v == "M" else scaled_width(int(v), width) for v in VGG16_LAYOUT]
        convs = [int(v) for v in layout if v != "M"]
        params = sum(9 * a * b for a, b in zip([3, *convs], convs, strict=False))
        check_fits(
            params * 4,
            f"width {width} (a VGG16 encoder of {params:,} parameters)",
            "use a width of at most a few (1.0 is VGG16)",
        )
        self.features = tv_vgg.make_layers(layout, batch_norm=encoder == "vgg16_bn")
        self.pool_positions: tuple[int, ...] = tuple(
            i for i, m in enumerate(self.features) if isinstance(m, nn.MaxPool2d)
        )
        for i in self.pool_positions:
            self.features[i] = nn.MaxPool2d(2, 2, ceil_mode=True, return_indices=True)
        widths = [int(layout[i - 1]) for i, v in enumerate(layout) if v == "M"]  # before each pool
        self.out_channels: tuple[int, ...] = tuple(widths)
        if weights is not None:
            self.load_torchvision_weights(weights)

    def forward(self, images: Tensor) -> tuple[list[Tensor], Tensor]:
        """Skip features (stride 1..16) and the pooled deepest feature (stride 32)."""
        skips, _, pooled = self.forward_with_indices(images)
        return skips, pooled

    def forward_with_indices(self, images: Tensor) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """Like ``forward``, plus the argmax indices of each pool (SegNet unpools with them)."""
        skips: list[Tensor] = []
        indices: list[Tensor] = []
        x = images
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                skips.append(x)
                x, idx = layer(x)
                indices.append(idx)
            else:
                x = layer(x)
        return skips, indices, x

    def load_torchvision_weights(self, weights: str | Path) -> None:
        """Load ImageNet weights from torchvision (``"imagenet"``) or a local VGG16 state dict."""
        if self.width != 1.0:
            raise LrnetError(
                f"pretrained VGG16 weights need encoder width 1.0, not {self.width}; "
                "set model.encoder_weights=null for a narrower encoder"
            )
        imagenet = weights == "imagenet"
        state = _imagenet_state_dict(self.encoder) if imagenet else _state_dict_file(Path(weights))
        features = {
            k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")
        }
        if not features:
            features = dict(state)  # a state dict of `vgg16().features` itself
        kind = "vgg16_bn (with BatchNorm)" if self.encoder == "vgg16_bn" else "vgg16"
        try:
            result = self.features.load_state_dict(features, strict=False)
        except RuntimeError as exc:  # shapes differ: e.g. plain VGG16 weights for a BN encoder
            first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
            raise LrnetError(
                f"encoder weights {weights} do not fit a {kind} encoder: {first}"
            ) from None
        if result.missing_keys:
            missing = ", ".join(result.missing_keys[:4])
            more = " ..." if len(result.missing_keys) > 4 else ""
            raise LrnetError(
                f"encoder weights {weights} do not fit a {kind} encoder: missing {missing}{more}"
            )


def _imagenet_state_dict(encoder: str) -> dict[str, Tensor]:
    """torchvision's ImageNet weights of ``encoder`` (downloaded once into torch's cache)."""
    family = tv_vgg.VGG16_BN_Weights if encoder == "vgg16_bn" else tv_vgg.VGG16_Weights
    api_weights = family.IMAGENET1K_V1
    try:
        state = api_weights.get_state_dict(progress=True)
    except (OSError, RuntimeError, http.client.HTTPException) as exc:  # URLError: OSError
        raise LrnetError(
            f"cannot fetch the ImageNet weights {api_weights.url} ({exc}); download that "
            "file by hand and set model.encoder_weights=PATH, or put it in "
            f"{Path(torch.hub.get_dir()) / 'checkpoints'} (torch's cache), or set "
            "model.encoder_weights=null for random weights"
        ) from None
    return state


def _state_dict_file(path: Path) -> dict[str, Tensor]:
    """A VGG16 state dict saved with ``torch.save``, loaded without running code."""
    if not path.is_file():
        raise LrnetError(
            f"encoder weights file {path} does not exist; give a torchvision VGG16 state "
            "dict, 'imagenet' to download one, or null for random weights"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # torch's message advises weights_only=False, which would run the file's code:
        # never quoted. A refused object is named "GLOBAL module.Name" in it.
        if isinstance(exc, pickle.UnpicklingError) and "GLOBAL" in str(exc):
            raise LrnetError(
                f"encoder weights {path} hold Python objects, which lrnet does not load (they "
                "can run code); give a plain state dict: torch.save(vgg.state_dict(), path)"
            ) from None
        raise LrnetError(
            f"cannot read encoder weights {path}: not a torch state-dict file "
            f"({type(exc).__name__}); give a torchvision VGG16 state dict, 'imagenet' or null"
        ) from None
    if not isinstance(state, dict):
        raise LrnetError(f"{path} does not hold a state dict")
    return state


class Normalize(nn.Module):
    """Maps raw ``[0, 1]`` RGB images to the encoder's statistics (buffers travel with exports)."""

    mean: Tensor
    std: Tensor

    def __init__(
        self, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD
    ):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        return (images - self.mean) / self.std


def check_input(images: Tensor, min_size: int = 32, channels: int = 0) -> None:
    """Raise a clear error unless ``images`` is ``(N, 3, H, W)`` with H, W >= ``min_size`` and,
    with ``channels`` (the first conv's), the first block fits in the device's memory."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return  # exporters and torch.compile see symbolic sizes; eager calls are checked
    if images.ndim != 4 or images.shape[1] != 3:
        raise LrnetError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
    h, w = images.shape[-2:]
    if h < min_size or w < min_size:
        raise LrnetError(
            f"input {h}x{w} is smaller than {min_size}x{min_size}, the network's total stride; "
            f"resize or pad it to at least {max(h, min_size)}x{max(w, min_size)}"
        )
    if channels and images.device.type != "meta":
        check_fits(
            run_bytes(len(images), h, w, channels),
            f"a batch of {len(images)} images of {h}x{w} (H x W)",
            "run at a smaller size (--eval-size, data.eval_size) or a smaller batch",
            images.device,
        )
