"""What the benchmark measures: the networks, their inference variants and a training step."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import segmentation as tv_segmentation

from lrnet.loss import StageLoss
from lrnet.models import build_model
from lrnet.models.encoder import Normalize
from lrnet.models.fuse import fuse_conv_bn

NUM_CLASSES = 11  # CamVid


class PadToMultiple(nn.Module):
    """Runs a model that needs sizes divisible by ``multiple`` on any size: zero-pad, then crop.

    SMP's Unet rejects 360 x 480 (360 is not a multiple of 32) and names 384 x 480 as the size to
    pad to; the padding is part of what it costs to run it on CamVid, so it is timed with it.
    """

    def __init__(self, model: nn.Module, multiple: int = 32):
        super().__init__()
        self.normalize = Normalize()
        self.model = model
        self.multiple = multiple

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        h, w = images.shape[-2:]
        pad_h, pad_w = -h % self.multiple, -w % self.multiple
        x = F.pad(self.normalize(images), (0, pad_w, 0, pad_h))
        return (self.model(x)[..., :h, :w],)


class TorchvisionSegmentation(nn.Module):
    """A torchvision segmentation model (dict output) under our contract: images in, tuple out."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.normalize = Normalize()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        return (self.model(self.normalize(images))["out"],)


def _torchvision(builder: Callable[..., nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        model = builder(weights=None, weights_backbone=None, num_classes=NUM_CLASSES)
        return TorchvisionSegmentation(model)

    return build


# Network name -> builder with random weights; every model takes raw [0, 1] images and
# returns a tuple of logits, the last (N, 11, H, W).
NETWORKS: dict[str, Callable[[], nn.Module]] = {
    "lrn": lambda: build_model("lrn", NUM_CLASSES, encoder="vgg16_bn", width=1.0),
    "segnet": lambda: build_model("segnet", NUM_CLASSES, encoder="vgg16_bn", width=1.0),
    "unet": lambda: PadToMultiple(
        smp.Unet(encoder_name="vgg16", encoder_weights=None, classes=NUM_CLASSES)
    ),
    "fcn_resnet50": _torchvision(tv_segmentation.fcn_resnet50),
    "deeplabv3_resnet50": _torchvision(tv_segmentation.deeplabv3_resnet50),
    "lraspp_mobilenet_v3_large": _torchvision(tv_segmentation.lraspp_mobilenet_v3_large),
}

# The networks whose training step is timed.
TRAINED = ("lrn", "segnet", "unet")


@dataclass(frozen=True)
class Variant:
    """One way of running one network for inference.

    The default is what a user writes first: ``model.eval()`` under ``torch.no_grad()``,
    NCHW tensors, fp32, eager PyTorch.
    """

    name: str
    network: str
    inference_mode: bool = False
    channels_last: bool = False
    fused_bn: bool = False
    bf16: bool = False
    onnxruntime: bool = False

    @property
    def recipe(self) -> str:
        """The variant's settings in words, for the table."""
        if self.onnxruntime:
            return "ONNX Runtime (dynamo export), fp32"
        parts = [
            "inference_mode" if self.inference_mode else "no_grad",
            "channels_last" if self.channels_last else "NCHW",
        ]
        if self.fused_bn:
            parts.append("BN fused into conv")
        parts.append("bf16 autocast" if self.bf16 else "fp32")
        return ", ".join(parts)


_IM_CL = {"inference_mode": True, "channels_last": True}
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("lrn", "lrn"),
        Variant("lrn-im-cl", "lrn", **_IM_CL),
        Variant("lrn-im-cl-fused", "lrn", fused_bn=True, **_IM_CL),
        Variant("lrn-ort", "lrn", onnxruntime=True),
        Variant("lrn-im-cl-fused-bf16", "lrn", fused_bn=True, bf16=True, **_IM_CL),
        Variant("segnet", "segnet"),
        Variant("segnet-im-cl", "segnet", **_IM_CL),
        Variant("unet", "unet"),
        Variant("unet-im-cl", "unet", **_IM_CL),
        Variant("fcn_resnet50", "fcn_resnet50"),
        Variant("deeplabv3_resnet50", "deeplabv3_resnet50"),
        Variant("lraspp_mobilenet_v3_large", "lraspp_mobilenet_v3_large"),
    )
}


def build_network(name: str, seed: int = 0) -> nn.Module:
    """The named network in eval mode, with random weights drawn from ``seed``."""
    torch.manual_seed(seed)
    return NETWORKS[name]().eval()


def onnx_session(model: Path | bytes, threads: int) -> ort.InferenceSession:
    """A CPU session for an ONNX file (or its bytes): ``threads`` threads, all graph optimisations."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle ORT threads would otherwise spin and steal the cores from the next (PyTorch) run
    # in the round-robin.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def make_runner(
    variant: Variant,
    network: nn.Module | None,
    images: Tensor,
    onnx_path: Path | None,
    threads: int,
) -> Callable[[], Tensor]:
    """A call that runs one inference of ``variant`` on ``images`` ``(N, 3, H, W)``.

    It returns the final-stage logits ``(N, C, H, W)`` as fp32. ``network`` is the eager model
    the variant derives from (copied, never modified); ONNX Runtime variants need ``onnx_path``
    instead.
    """
    if variant.onnxruntime:
        if onnx_path is None:
            raise ValueError(f"{variant.name} needs an exported ONNX file")
        session = onnx_session(onnx_path, threads)
        feed = {"images": images.numpy()}
        return lambda: torch.from_numpy(np.asarray(session.run(None, feed)[0]))
    if network is None:
        raise ValueError(f"{variant.name} needs its eager network")
    model = fuse_conv_bn(network) if variant.fused_bn else copy.deepcopy(network).eval()
    if variant.channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    grad_mode = torch.inference_mode if variant.inference_mode else torch.no_grad

    def run() -> Tensor:
        autocast = (
            torch.autocast("cpu", dtype=torch.bfloat16)
            if variant.bf16
            else contextlib.nullcontext()
        )
        with grad_mode(), autocast:
            return model(images)[-1].float()

    return run


def make_train_step(
    network: nn.Module, batch: int, height: int, width: int
) -> Callable[[], Tensor]:
    """A call that runs one SGD step (forward, stage loss, backward, update) on a random batch.

    The loss is the project's ``StageLoss`` (cross-entropy summed over the stages; one stage for
    the baselines). ``network`` is copied, so the eager inference models stay untouched.
    """
    model = copy.deepcopy(network).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    criterion = StageLoss()
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(batch, 3, height, width, generator=generator)
    target = torch.randint(0, NUM_CLASSES, (batch, height, width), generator=generator)

    def step() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss, _ = criterion(model(images), target)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step
