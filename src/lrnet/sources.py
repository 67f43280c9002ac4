"""Any model source, read: zoo names, ``save_pretrained`` folders, Hub repos and ``.pt``
checkpoints -> the config, class names, palette and weights (``open_model``).

Safetensors weights are read as numpy arrays and the network is built only on first use, so that
running a zoo model's shipped ONNX graphs never loads torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors.numpy import load_file as load_numpy

from lrnet import zoo
from lrnet._errors import LrnetError
from lrnet.config import Config, from_dict

if TYPE_CHECKING:
    from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class LoadedModel:
    """A model source read: its resolved config, class names, one RGB colour per class and
    ``weights`` (name -> numpy array or tensor); ``model`` is the network in eval mode, given or
    built from the weights on first use. ``where`` names the source in messages."""

    def __init__(
        self,
        model: nn.Module | None,
        config: Config,
        classes: list[str],
        palette: list[tuple[int, ...]],
        *,
        weights: Mapping[str, Any] | None = None,
        where: str = "the model",
    ):
        if model is None and weights is None:
            raise ValueError("LoadedModel needs a model or its weights")
        self._model = model
        self.config = config
        self.classes = classes
        self.palette = palette
        self.weights = weights
        self.where = where

    @property
    def model(self) -> nn.Module:
        """The network (float32, eval mode, on the CPU), built from the weights on first use."""
        if self._model is None:
            from lrnet.checkpoint import build_from_config  # torch, from here on

            model = build_from_config(self.config)
            _load_weights(model, self.weights, self.where)
            self._model = model.eval()
            self.weights = None  # the network holds them now
        return self._model

    def state(self) -> Mapping[str, Any]:
        """The built network's state dict once built (it may have changed since), else the
        weights as read."""
        if self._model is not None or self.weights is None:
            return self.model.state_dict()
        return self.weights


def open_model(source: Any) -> LoadedModel:
    """Read any model source; the network is built when ``model`` is first used.

    Args:
        source: a ``.pt`` checkpoint, a ``save_pretrained`` folder, a zoo name or
            ``lrnet.zoo.ZooEntry`` (a URL entry is downloaded once into ``$LRNET_HOME``) or a
            Hub repo id (``user/repo[@revision]``). A local path wins over a zoo or Hub name.

    Raises:
        LrnetError: the source does not exist, cannot be fetched, is damaged, or holds objects
            refused for safety (weights that do not fit are found when the model is built).
    """
    if source is None or isinstance(source, (bool, int, float, Mapping)):
        raise TypeError(
            f"the model source must be a zoo name, a path, a Hub repo id or a ZooEntry, got "
            f"{type(source).__name__}"
        )
    weights, meta, where = _read(source)
    _check_state(weights, where)
    config = _stored_config(meta, where)
    classes = [str(c) for c in meta.get("classes") or []]
    palette = [tuple(int(v) for v in c) for c in meta.get("palette") or []]
    return LoadedModel(None, config, classes, palette, weights=weights, where=where)


def read_config(source: Any) -> Config:
    """The resolved config of any source ``load_model`` takes, without building the network."""
    _, meta, where = _read(source)
    return _stored_config(meta, where)


def _read(source: Any) -> tuple[Any, dict[str, Any], str]:
    """Weights, metadata (``config``, ``classes``, ``palette``) and a name for messages."""
    if isinstance(source, zoo.ZooEntry):
        return _read_entry(source)
    path = Path(source).expanduser()
    if path.is_dir():
        return _read_folder(path)
    if path.is_file():
        return _read_file(path)
    text = str(source)
    if text in zoo.ZOO:
        return _read_entry(zoo.ZOO[text])
    if zoo.is_hub_id(text):
        folder = zoo.hub_folder(text, (CONFIG_NAME, WEIGHTS_NAME))
        return _read_folder(folder, name=f"Hub repo {text}")
    raise LrnetError(
        f"{text} does not exist; give a .pt checkpoint, a save_pretrained folder, a zoo model "
        f"({', '.join(zoo.ZOO)}; see lrnet models) or a Hugging Face Hub repo id (user/repo)"
    )


def _read_entry(entry: Any) -> tuple[Any, dict[str, Any], str]:
    """``_read`` of a zoo entry (its file checked by ``zoo.resolve``)."""
    path = zoo.resolve(entry)
    listed = {"classes": list(entry.classes), "palette": [list(c) for c in entry.palette]}
    if path.suffix == ".pt":
        tensors, meta, _ = _read_file(path)
        meta = {**listed, **{k: v for k, v in meta.items() if v}}
    else:
        tensors, meta = _read_safetensors(path), {"config": dict(entry.config), **listed}
    return tensors, meta, f"{path} (zoo model {entry.name})"


def _read_folder(directory: Path, name: str | None = None) -> tuple[Any, dict[str, Any], str]:
    """``_read`` of a ``save_pretrained`` folder."""
    where = name or str(directory)
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for p in (config_path, weights_path):
        if not p.is_file():
            raise LrnetError(f"{where} is not a pretrained lrnet folder: {p.name} is missing")
    try:
        meta = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise LrnetError(f"{config_path} cannot be read as JSON ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise LrnetError(
            f"{config_path} has no 'config' mapping, so the network cannot be rebuilt; it was "
            "not written by lrnet's save_pretrained (which stores the whole config there)"
        )
    return _read_safetensors(weights_path), meta, f"{where} ({WEIGHTS_NAME})"


def _read_file(path: Path) -> tuple[Any, dict[str, Any], str]:
    """``_read`` of a ``.pt`` checkpoint (or a folder's weights)."""
    if path.suffix == ".safetensors":
        if path.name == WEIGHTS_NAME and (path.parent / CONFIG_NAME).is_file():
            return _read_folder(path.parent)
        raise LrnetError(
            f"{path} holds weights only, without the config that rebuilds the network: load the "
            f"folder with its {CONFIG_NAME} (save_pretrained writes both) or a zoo name"
        )
    from lrnet.checkpoint import load_checkpoint  # a pickle: torch reads it

    state = load_checkpoint(path)
    return state["model"], state, f"checkpoint {path}"


def _read_safetensors(path: Path) -> dict[str, Any]:
    """The tensors of a safetensors file as numpy arrays (torch's for bfloat16, which numpy lacks)."""
    try:
        try:
            return load_numpy(str(path))
        except (TypeError, ValueError) as exc:
            if "bf16" not in str(exc).lower() and "bfloat16" not in str(exc).lower():
                raise
            from safetensors.torch import load_file as load_torch

            return load_torch(str(path))
    except Exception as exc:
        raise LrnetError(
            f"{path} cannot be read as safetensors ({type(exc).__name__}: {str(exc)[:160]}); it is "
            "truncated or not a weights file"
        ) from None


def _check_state(state: Any, where: str) -> None:
    """Weights must be a state dict (parameter name -> array or tensor); whether they fit the
    network is ``_load_weights``'s check."""
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and hasattr(v, "shape") and hasattr(v, "dtype") for k, v in state.items()
    ):
        kind = type(state).__name__
        raise LrnetError(
            f"{where}: its weights are a {kind}, not a state dict (parameter name -> "
            "tensor); save model.state_dict() (lrnet's checkpoints and save_pretrained do)"
        )


def _load_weights(model: nn.Module, state: Any, source: str | Path) -> None:
    """Copy ``state`` into ``model``, cast to its dtypes; a misfit is a LrnetError naming
    ``source``."""
    import torch

    from lrnet.checkpoint import check_finite, type_name

    state = as_tensors(state) if isinstance(state, Mapping) else state
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise LrnetError(
            f"{source}: its weights are {type_name(state)}, not a state dict (parameter name -> "
            "tensor); save model.state_dict() (lrnet's checkpoints and save_pretrained do)"
        )
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [
        f"{k} {tuple(state[k].shape)} (the model has {tuple(own[k].shape)})"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or reshaped:
        problems = [
            f"{len(what)} {label} (e.g. {', '.join(what[:2])})"
            for what, label in (
                (missing, "missing"),
                (unexpected, "unexpected"),
                (reshaped, "of another shape"),
            )
            if what
        ]
        hint = (
            "strip the 'module.' prefix of a DistributedDataParallel state dict"
            if unexpected and all(k.startswith("module.") for k in unexpected)
            else "the weights and the config it holds disagree: re-save them together"
        )
        raise LrnetError(
            f"the weights in {source} do not fit the model its config describes: "
            f"{'; '.join(problems)}; {hint}"
        )
    check_finite(state, source)
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


def as_tensors(state: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` with its numpy arrays made tensors (sharing their memory)."""
    import torch

    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in state.items()}


def _stored_config(meta: Mapping[str, Any], where: str) -> Config:
    try:
        return from_dict(meta["config"])
    except LrnetError as exc:
        raise LrnetError(f"the config stored in {where} is not valid here: {exc}") from None
