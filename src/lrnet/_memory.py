"""Memory bounds: a size that cannot fit is refused with what it needs, before the allocator dies.

The bounds are lower bounds (what the first conv block alone holds, or the weights alone), so a
refusal is certain; a size under them may still run out of memory later, with torch's error.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from lrnet._errors import LrnetError

INPUT_BYTES = 4  # float32 image values
ACTIVATION_BYTES = 2  # bf16 under autocast: the smallest an activation value is stored in


def total_memory(device: Any = "cpu") -> int:
    """Bytes of memory of ``device``: the GPU's own for CUDA, else RAM plus swap."""
    kind = getattr(device, "type", str(device).split(":")[0])
    if kind == "cuda":
        import torch

        return int(torch.cuda.get_device_properties(device).total_memory)
    return _ram()


@functools.cache
def _ram() -> int:
    """RAM plus swap, read once (models check every forward)."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        return sum(int(fields[k].split()[0]) * 1024 for k in ("MemTotal", "SwapTotal"))
    except (OSError, KeyError, ValueError):  # not Linux
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def run_bytes(batch: int, height: int, width: int, channels: int, training: bool = False) -> int:
    """A lower bound of the memory one forward pass takes: the ``(N, 3, H, W)`` float32 input
    and the first conv's ``(N, channels, H, W)`` output (in training, the four tensors of the
    first block that backward keeps: two convs and their BatchNorms)."""
    kept = 4 if training else 1
    return batch * height * width * (3 * INPUT_BYTES + kept * channels * ACTIVATION_BYTES)


def size_text(count: float) -> str:
    """Bytes as ``1.2 GB`` (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if count < 1000 or unit == "PB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError


def check_fits(needed: int, what: str, advice: str, device: Any = "cpu") -> None:
    """Raise a one-line error when ``needed`` bytes exceed all of ``device``'s memory.

    Args:
        needed: a lower bound of the bytes the work takes.
        what: the size being refused, as the user gave it (``--eval-size 100000 100000``).
        advice: what to do instead.
    """
    available = total_memory(device)
    if needed > available:
        raise LrnetError(
            f"{what} needs at least {size_text(needed)} of memory, more than the "
            f"{size_text(available)} this machine has; {advice}"
        )
