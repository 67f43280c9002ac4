"""The paper's baselines: SegNet and SegNet with deep supervision, on the same VGG16 encoder."""

from __future__ import annotations

import itertools

import torch.nn.functional as F
from torch import Tensor, nn

from lrnet._checks import whole_number
from lrnet.models.encoder import Normalize, VGGEncoder, check_input
from lrnet.models.lrn import conv_bn_relu


def _decoder_blocks(channels: tuple[int, ...]) -> nn.ModuleList:
    """SegNet's decoder, the encoder mirrored: deepest block first, each ending at the next width."""
    c1, c2, c3, c4, c5 = channels
    layouts = [
        (c5, c5, c5, c4),  # block 5: 3 convs, ends at conv4's width
        (c4, c4, c4, c3),
        (c3, c3, c3, c2),
        (c2, c2, c1),  # block 2: 2 convs
        (c1, c1),  # block 1: 1 conv here; the classifier is the second
    ]
    return nn.ModuleList(
        nn.Sequential(*(conv_bn_relu(a, b) for a, b in itertools.pairwise(layout)))
        for layout in layouts
    )


class SegNet(nn.Module):
    """SegNet (Badrinarayanan et al., 2017) on the VGG16 encoder, the paper's baseline.

    The decoder mirrors the encoder: each block max-unpools with the indices of the matching
    encoder pool, then convolves; a final conv3x3 gives the logits.

    With ``deep_supervision=True`` it is the paper's "SegNet + deep supervision": a conv3x3 head
    predicts a label map at the pooled encoder output and after every decoder block, so it returns
    six maps at the same strides as LRN (32 .. 1), each trained with its own loss.

    Args:
        num_classes: number of classes C.
        encoder, width, encoder_weights: as for ``LabelRefinementNetwork``.
        deep_supervision: add the five intermediate heads.

    Shape:
        input ``(N, 3, H, W)`` RGB in [0, 1]; output a tuple of logits, coarse to fine (one for
        SegNet, six with deep supervision), the last ``(N, C, H, W)``.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        encoder: str = "vgg16_bn",
        width: float = 1.0,
        encoder_weights: str | None = None,
        deep_supervision: bool = False,
    ):
        super().__init__()
        self.num_classes = whole_number("num_classes", num_classes, 1)
        self.normalize = Normalize()
        self.encoder = VGGEncoder(encoder, width, encoder_weights)
        channels = self.encoder.out_channels
        self.decoder = _decoder_blocks(channels)
        self.classifier = nn.Conv2d(channels[0], num_classes, 3, padding=1)
        self.heads: nn.ModuleList | None = None
        if deep_supervision:
            # Heads on the pooled encoder output and on blocks 5..2; block 1 uses the classifier.
            head_in = [channels[4], channels[3], channels[2], channels[1], channels[0]]
            self.heads = nn.ModuleList(nn.Conv2d(c, num_classes, 3, padding=1) for c in head_in)

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        check_input(images, channels=self.encoder.out_channels[0])
        skips, indices, x = self.encoder.forward_with_indices(self.normalize(images))
        stages: list[Tensor] = []
        for k, block in enumerate(self.decoder):
            level = 4 - k
            if self.heads is not None:
                stages.append(self.heads[k](x))
            x = F.max_unpool2d(x, indices[level], (2, 2), output_size=skips[level].shape[-2:])
            x = block(x)
        stages.append(self.classifier(x))
        return tuple(stages)
