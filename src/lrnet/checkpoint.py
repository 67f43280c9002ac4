"""Checkpoint I/O and model reconstruction: training checkpoints and shareable pretrained folders."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn

from lrnet import __version__
from lrnet._errors import LrnetError
from lrnet.config import Config, from_dict
from lrnet.models import build_model

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel and ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod  # type: ignore[assignment]
        else:
            return model


def model_from_config(config: Config) -> nn.Module:
    """Build the network a config describes (random weights; no download)."""
    m = config.model
    if m.num_classes is None:
        raise LrnetError("model.num_classes is not set; set it or let the dataset fill it in")
    return build_model(
        m.name, m.num_classes, encoder=m.encoder, width=m.width, skip_channels=m.skip_channels
    )


def _atomic_write(path: Path, write: Any) -> None:
    """Write through a temporary file in the same folder and rename: a kill never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Atomically save a training checkpoint (a dict of tensors and plain Python values)."""
    _atomic_write(Path(path), lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint with ``weights_only=True``; a damaged file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise LrnetError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise LrnetError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {str(exc)[:200]}); it is "
            "truncated, corrupted or not an lrnet checkpoint: use another one (runs keep last.pt "
            "and best.pt)"
        ) from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise LrnetError(f"{path} is not an lrnet checkpoint (no 'model' and 'config' entries)")
    return state


def training_state(
    model: nn.Module,
    config: Config,
    *,
    classes: list[str] | None = None,
    palette: list[tuple[int, int, int]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The checkpoint dict: unwrapped weights, resolved config, class names and palette, extras."""
    return {
        "model": unwrap(model).state_dict(),
        "config": config.to_dict(),
        "classes": list(classes or []),
        "palette": [list(c) for c in palette or []],
        "lrnet_version": __version__,
        **extra,
    }


class LoadedModel:
    """A model rebuilt from a checkpoint or pretrained folder, with what is needed to use it."""

    def __init__(
        self, model: nn.Module, config: Config, classes: list[str], palette: list[tuple[int, ...]]
    ):
        self.model = model
        self.config = config
        self.classes = classes
        self.palette = palette


def _load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise LrnetError(
            f"weights in {source} do not fit the model its config describes: {exc}"
        ) from None


def load_model(path: str | Path) -> LoadedModel:
    """Rebuild a model in eval mode from a ``.pt`` checkpoint or a ``save_pretrained`` folder."""
    path = Path(path)
    if path.is_dir():
        return from_pretrained(path)
    state = load_checkpoint(path)
    config = from_dict(state["config"])
    model = model_from_config(config)
    _load_weights(model, state["model"], path)
    palette = [tuple(int(v) for v in c) for c in state.get("palette", [])]
    return LoadedModel(model.eval(), config, list(state.get("classes", [])), palette)


def save_pretrained(
    model: nn.Module,
    config: Config,
    directory: str | Path,
    *,
    classes: list[str] | None = None,
    palette: list[tuple[int, int, int]] | None = None,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``directory`` (no pickles)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in unwrap(model).state_dict().items()}
    meta = {
        "config": config.to_dict(),
        "classes": list(classes or []),
        "palette": [list(c) for c in palette or []],
        "lrnet_version": __version__,
    }
    _atomic_write(directory / WEIGHTS_NAME, lambda f: f.write(save(tensors)))
    _atomic_write(directory / CONFIG_NAME, lambda f: f.write(json.dumps(meta, indent=2).encode()))
    return directory


def from_pretrained(directory: str | Path) -> LoadedModel:
    """Load a folder written by ``save_pretrained``."""
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for p in (config_path, weights_path):
        if not p.is_file():
            raise LrnetError(f"{directory} is not a pretrained lrnet folder: {p.name} is missing")
    try:
        meta = json.loads(config_path.read_text())
        tensors = load_file(str(weights_path))
    except Exception as exc:
        raise LrnetError(f"cannot read pretrained folder {directory}: {exc}") from None
    config = from_dict(meta["config"])
    model = model_from_config(config)
    _load_weights(model, tensors, weights_path)
    palette = [tuple(int(v) for v in c) for c in meta.get("palette", [])]
    return LoadedModel(model.eval(), config, list(meta.get("classes", [])), palette)


__all__ = [
    "LoadedModel",
    "from_pretrained",
    "load_checkpoint",
    "load_model",
    "model_from_config",
    "save_checkpoint",
    "save_pretrained",
    "training_state",
    "unwrap",
]
