"""Learning-rate schedules as plain functions of the iteration: step, poly and cosine, with warm-up."""

from __future__ import annotations

import bisect
import math

from lrnet.config import OptimConfig


def lr_factor(iteration: int, optim: OptimConfig) -> float:
    """Multiplier of the base learning rate at ``iteration`` (0-based) for the configured schedule.

    Linear warm-up from ``warmup_factor`` to 1 over ``warmup_iters``, times the schedule:
    ``step`` (x ``gamma`` at each milestone), ``poly`` ((1 - t/T) ** power), ``cosine``
    (half a cosine from 1 to 0) or ``constant``.
    """
    total = optim.iterations
    if optim.schedule == "step":
        factor = optim.gamma ** bisect.bisect_right(optim.milestones, iteration)
    elif optim.schedule == "poly":
        factor = (1 - min(iteration, total) / total) ** optim.power
    elif optim.schedule == "cosine":
        factor = 0.5 * (1 + math.cos(math.pi * min(iteration, total) / total))
    else:
        factor = 1.0
    if iteration < optim.warmup_iters:
        alpha = iteration / optim.warmup_iters
        factor *= optim.warmup_factor * (1 - alpha) + alpha
    return factor
