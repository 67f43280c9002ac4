"""What ``tests/test_zoo.py`` pins of a shipped model: statistics of its predictions on a picture
made by formula, written by ``bench/ship_model.py`` into ``tests/zoo_pins.json``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lrnet.inference.predictor import Predictor
from lrnet.pretrained import load_model


def prediction_stats(source: Any, size: tuple[int, int] = (200, 300)) -> dict[str, Any]:
    """Statistics of a model's predictions on a ``size`` (H, W) ``probe_image``, by the whole
    ``Predictor`` path on PyTorch fp32 (the reference backend): the share of pixels given to each
    class by the final stage and by every stage, and the final softmax averaged over pixels."""
    predictor = Predictor.from_loaded(load_model(source))
    prediction = predictor.predict(probe_image(*size), probabilities=True)
    classes = predictor.num_classes

    def fractions(labels: np.ndarray) -> list[float]:
        counts = np.bincount(labels.reshape(-1), minlength=classes).astype(np.float64)
        return [round(v, 6) for v in (counts / counts.sum()).tolist()]

    assert prediction.probabilities is not None
    return {
        "size": list(size),
        "final_fractions": fractions(prediction.labels),
        "stage_fractions": [fractions(s) for s in prediction.stage_labels],
        "mean_probabilities": [
            round(v, 6) for v in prediction.probabilities.astype(np.float64).mean((1, 2)).tolist()
        ],
    }


def probe_image(height: int = 200, width: int = 300) -> torch.Tensor:
    """A fixed street-like picture made by formula (sky over road, a building with lit windows,
    a tree, a car), the same on every machine: ``(3, H, W)`` float32 in [0, 1]."""
    y = torch.linspace(0, 1, height)[:, None].expand(height, width)
    x = torch.linspace(0, 1, width)[None, :].expand(height, width)
    sky = torch.stack([0.55 + 0.2 * y, 0.7 + 0.15 * y, 0.95 - 0.1 * y])
    road = torch.stack([0.45 - 0.1 * y, 0.45 - 0.1 * y, 0.48 - 0.1 * y])
    image = torch.where(y < 0.45, sky, road)
    building = (x > 0.05) & (x < 0.45) & (y > 0.12) & (y < 0.6)
    windows = building & (torch.sin(x * 90) > 0.3) & (torch.sin(y * 70) > 0.2)
    image = torch.where(building, torch.tensor([0.35, 0.25, 0.2])[:, None, None], image)
    image = torch.where(windows, torch.tensor([0.85, 0.8, 0.6])[:, None, None], image)
    tree = (x - 0.68) ** 2 + ((y - 0.3) * height / width) ** 2 < 0.012
    image = torch.where(tree, torch.stack([0.15 + 0.1 * x, 0.45 + 0.1 * y, 0.1 + 0 * x]), image)
    car = (x > 0.55) & (x < 0.85) & (y > 0.62) & (y < 0.8)
    image = torch.where(car, torch.tensor([0.7, 0.1, 0.12])[:, None, None], image)
    lane = (y > 0.85) & (torch.sin(x * 40) > 0.6)
    image = torch.where(lane, torch.tensor([0.95, 0.95, 0.9])[:, None, None], image)
    return image.clamp(0, 1).float().contiguous()
