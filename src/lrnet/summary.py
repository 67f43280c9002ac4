"""Parameters and FLOPs of a model at an input size (``lrnet summary``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lrnet._checks import whole_number
from lrnet._memory import check_fits, run_bytes
from lrnet.inference.image import MIN_SIZE


@dataclass(frozen=True)
class ModelSummary:
    """Size and cost of one model at one input size."""

    name: str
    params: int
    gflops: float  # multiply and add counted as 2 FLOPs
    stage_shapes: tuple[tuple[int, int], ...]


def summarize(
    model: nn.Module, height: int = 360, width: int = 480, name: str = ""
) -> ModelSummary:
    """Count parameters and the FLOPs of one forward pass on a ``(1, 3, height, width)`` input."""
    whole_number("height", height, MIN_SIZE)
    whole_number("width", width, MIN_SIZE)
    encoder = getattr(model, "encoder", None)
    channels = encoder.out_channels[0] if encoder is not None else 8
    check_fits(
        run_bytes(1, height, width, channels),
        f"--size {height} {width}",
        "give a smaller --size (360 480 is CamVid's)",
    )
    params = sum(p.numel() for p in model.parameters())
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        stages = model(torch.zeros(1, 3, height, width))
    model.train(was_training)
    shapes = tuple((int(s.shape[-2]), int(s.shape[-1])) for s in stages)
    gflops = counter.get_total_flops() / 1e9
    return ModelSummary(name or type(model).__name__, params, gflops, shapes)


def format_table(rows: list[ModelSummary], height: int, width: int) -> str:
    """A Markdown table of summaries."""
    lines = [
        f"| model | params | GFLOPs at {height}x{width} | stage sizes |",
        "|---|---:|---:|---|",
    ]
    for r in rows:
        sizes = ", ".join(f"{h}x{w}" for h, w in r.stage_shapes)
        lines.append(f"| {r.name} | {r.params:,} | {r.gflops:.1f} | {sizes} |")
    return "\n".join(lines)
