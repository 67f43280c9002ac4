"""The Label Refinement Network: a coarse label map from VGG16, refined five times with skips."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lrnet._checks import whole_number
from lrnet.models.encoder import Normalize, VGGEncoder, check_input

NUM_STAGES = 6


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv (no bias), BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class GateUnit(nn.Module):
    """G-FRNet's multiplicative gate (Islam et al., CVPR 2017).

    The finer encoder feature and the next deeper one are each mapped to ``channels`` by
    conv3x3 + BN + ReLU; the deeper one is upsampled to the finer one's size and the element-wise
    product, batch-normalised, replaces the plain skip feature.
    """

    def __init__(self, fine_channels: int, deep_channels: int, channels: int):
        super().__init__()
        self.fine = conv_bn_relu(fine_channels, channels)
        self.deep = conv_bn_relu(deep_channels, channels)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, fine: Tensor, deep: Tensor) -> Tensor:
        deep = F.interpolate(
            self.deep(deep), size=fine.shape[-2:], mode="bilinear", align_corners=False
        )
        return self.norm(self.fine(fine) * deep)


class RefinementModule(nn.Module):
    """One refinement step ("RE"): label map at stride 2s and skip at stride s -> label map at s.

    The skip feature is reduced to ``skip_channels`` (conv3x3 + BN + ReLU), the previous label map
    is upsampled bilinearly to the skip's exact size, both are concatenated and a conv3x3 gives the
    ``num_classes``-channel label map.
    """

    def __init__(self, in_channels: int, skip_channels: int, num_classes: int):
        super().__init__()
        self.reduce = conv_bn_relu(in_channels, skip_channels)
        self.fuse = nn.Conv2d(skip_channels + num_classes, num_classes, 3, padding=1)

    def forward(self, label_map: Tensor, skip: Tensor) -> Tensor:
        upsampled = F.interpolate(
            label_map, size=skip.shape[-2:], mode="bilinear", align_corners=False
        )
        return self.fuse(torch.cat([self.reduce(skip), upsampled], dim=1))


class LabelRefinementNetwork(nn.Module):
    """Label Refinement Network (Islam et al., "Label Refinement Network for Coarse-to-Fine
    Semantic Segmentation", arXiv 1703.00551).

    A VGG16 encoder gives the coarse label map s_1 from its pooled conv5 output; five refinement
    modules each upsample the current map x2 and combine it with the encoder feature of that
    resolution (conv5_3, conv4_3, conv3_3, conv2_2, conv1_2), giving s_2 .. s_6. For a 360 x 480
    input the six maps are 12x15, 23x30, 45x60, 90x120, 180x240 and 360x480 (strides 32 .. 1).

    Args:
        num_classes: number of classes C (every stage has C channels).
        encoder: ``"vgg16_bn"`` (default) or ``"vgg16"``.
        width: encoder channel multiplier (1.0 is the paper's VGG16).
        skip_channels: width the skip features are reduced to inside each refinement module;
            ``None`` uses ``num_classes``, as in the journal version of the paper.
        gated: put G-FRNet gate units before the refinement modules.
        encoder_weights: ``None``, ``"imagenet"`` or a path to a torchvision VGG16 state dict.

    Shape:
        input ``(N, 3, H, W)`` RGB in [0, 1], H and W >= 32; output a tuple of six logits
        ``(N, C, H_k, W_k)``, coarse to fine, the last exactly ``(N, C, H, W)``.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        encoder: str = "vgg16_bn",
        width: float = 1.0,
        skip_channels: int | None = None,
        gated: bool = False,
        encoder_weights: str | None = None,
    ):
        super().__init__()
        self.num_classes = whole_number("num_classes", num_classes, 1)
        if skip_channels is not None:
            whole_number("skip_channels", skip_channels, 1)
        self.normalize = Normalize()
        self.encoder = VGGEncoder(encoder, width, encoder_weights)
        skip_channels = skip_channels or num_classes
        channels = self.encoder.out_channels  # conv1_2 .. conv5_3
        self.coarse = nn.Conv2d(channels[-1], num_classes, 3, padding=1)
        # Refinement runs deepest skip first: conv5_3 (stride 16) ... conv1_2 (stride 1).
        self.gates: nn.ModuleList | None = None
        if gated:  # each gate joins a skip and the feature one level deeper
            self.gates = nn.ModuleList(
                GateUnit(channels[i], channels[min(i + 1, 4)], skip_channels)
                for i in reversed(range(5))
            )
        refine_in = [skip_channels] * 5 if gated else [channels[i] for i in reversed(range(5))]
        self.refinements = nn.ModuleList(
            RefinementModule(c, skip_channels, num_classes) for c in refine_in
        )

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        check_input(images, channels=self.encoder.out_channels[0])
        skips, pooled = self.encoder(self.normalize(images))
        label_map = self.coarse(pooled)
        stages = [label_map]
        deeper = [*skips[1:], pooled]  # the feature one level below each skip, for the gates
        for k, refine in enumerate(self.refinements):
            level = 4 - k
            skip = skips[level]
            if self.gates is not None:
                skip = self.gates[k](skip, deeper[level])
            label_map = refine(label_map, skip)
            stages.append(label_map)
        return tuple(stages)
