"""Training checkpoints: saved atomically, loaded safely (``weights_only``), resumed exactly; and
the network a training config describes. Models from any source are ``lrnet.pretrained``'s."""

from __future__ import annotations

import pickle
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lrnet import __version__
from lrnet._errors import LrnetError
from lrnet._files import atomic_write
from lrnet.config import Config
from lrnet.models import build_model


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel and ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod  # type: ignore[assignment]
        else:
            return model


def build_from_config(config: Config, *, encoder_weights: bool = False) -> nn.Module:
    """The network a resolved config describes, with random weights (and, with
    ``encoder_weights``, the encoder's ``model.encoder_weights``: off when a checkpoint's follow)."""
    m = config.model
    if m.num_classes is None:
        raise LrnetError("model.num_classes is not set; set it or let the dataset fill it in")
    return build_model(
        m.name,
        m.num_classes,
        encoder=m.encoder,
        width=m.width,
        skip_channels=m.skip_channels,
        encoder_weights=m.encoder_weights if encoder_weights else None,
    )


def capture_rng() -> dict[str, Any]:
    """This process's RNG states (torch, Python, CUDA), for exact resumption."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Undo ``capture_rng``."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def restore_training(
    checkpoint: dict[str, Any], source: Path, rank: int, **parts: Any
) -> dict[str, Any]:
    """Load a training checkpoint into ``model``, ``optimizer``, ``scheduler`` and ``scaler``,
    and this rank's RNG states; returns the saved ``train_state`` dict."""
    if isinstance(checkpoint.get("model"), Mapping):
        check_finite(checkpoint["model"], source)  # resuming a diverged run resumes nothing
    for name, part in parts.items():
        try:
            part.load_state_dict(checkpoint[name])
        except (KeyError, RuntimeError, ValueError) as exc:
            detail = " ".join(str(exc).split())[:160]  # load_state_dict's text spans lines
            raise LrnetError(
                f"the {name} state in {source} does not fit this run ({type(exc).__name__}: "
                f"{detail}); resume with the config it was trained with"
            ) from None
    rng = checkpoint["rng"]
    restore_rng(rng[rank] if rank < len(rng) else rng[0])
    return dict(checkpoint["train_state"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Atomically save a training checkpoint (a dict of tensors and plain Python values); a full
    disk or a folder not writable is a LrnetError, the previous file intact."""
    advice = (
        "the previous checkpoint is intact (free some space or set run.out_dir elsewhere, "
        "then --resume)"
    )
    try:
        atomic_write(path, lambda f: torch.save(state, f), advice=advice)
    except RuntimeError as exc:  # torch.save's own "write failed" on a full disk
        full = "write failed" in str(exc)
        reason = "no space left" if full else f"{type(exc).__name__}: {str(exc)[:120]}"
        raise LrnetError(f"cannot write {path}: {reason}; {advice}") from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint with ``weights_only=True``; a damaged file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise LrnetError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # weights_only names each refused object "GLOBAL module.Name"; its advice to turn
        # weights_only off is never quoted (lrnet never does for a file from elsewhere).
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if isinstance(exc, pickle.UnpicklingError) and found:
            raise LrnetError(
                f"checkpoint {path} holds objects lrnet refuses to load for safety (such as "
                f"{found.group(1)}): a pickle of Python objects can run code when loaded. Load "
                "it where it was made and save plain tensors (an lrnet checkpoint or folder)"
            ) from None
        # Any other file (an image, JSON, an .onnx graph, a cut-off .pt) is simply no checkpoint.
        detail = "" if isinstance(exc, pickle.UnpicklingError) else f": {str(exc)[:200]}"
        raise LrnetError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}{detail}); it is truncated "
            "or no torch checkpoint: use an lrnet .pt (runs keep last.pt and best.pt) or a "
            "save_pretrained folder"
        ) from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise LrnetError(f"{path} is not an lrnet checkpoint (no 'model' and 'config' entries)")
    if not isinstance(state["config"], dict):
        raise LrnetError(
            f"checkpoint {path}: its 'config' is {type_name(state['config'])}, not a mapping; it "
            "was not written by lrnet"
        )
    return state


def training_state(
    model: nn.Module,
    config: Config,
    *,
    classes: list[str] | None = None,
    palette: list[tuple[int, int, int]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The checkpoint dict: unwrapped weights, config, class names, palette and ``extra``."""
    return {
        "model": unwrap(model).state_dict(),
        "config": config.to_dict(),
        "classes": list(classes or []),
        "palette": [list(c) for c in palette or []],
        "lrnet_version": __version__,
        **extra,
    }


def type_name(value: Any) -> str:
    """``a module.Type`` of ``value``, for messages."""
    return f"a {type(value).__module__}.{type(value).__qualname__}".replace("builtins.", "")


def check_finite(state: Mapping[str, torch.Tensor], source: Any) -> None:
    """A LrnetError naming ``source`` if a floating tensor holds NaN or infinity."""
    broken = [
        k
        for k, v in state.items()
        if isinstance(v, torch.Tensor) and v.is_floating_point() and not v.isfinite().all()
    ]  # non-tensor values are load_state_dict's to refuse, with a message naming the file
    if broken:
        raise LrnetError(
            f"the weights in {source} hold NaN or infinite values ({len(broken)} tensors, e.g. "
            f"{', '.join(broken[:2])}): the run that saved them diverged; use an earlier "
            "checkpoint (its best.pt) or retrain with a lower optim.lr or with optim.grad_clip"
        )


__all__ = [
    "build_from_config",
    "capture_rng",
    "check_finite",
    "load_checkpoint",
    "restore_rng",
    "restore_training",
    "save_checkpoint",
    "training_state",
    "type_name",
    "unwrap",
]
