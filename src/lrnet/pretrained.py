"""Any model source -> a model: zoo names, checkpoints, ``save_pretrained`` folders, URLs and Hub
repos (``load_model``); and the other way, ``save_pretrained``: a folder to share, with its card
(``lrnet._card``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save
from torch import nn

from lrnet import __version__, zoo
from lrnet._card import card_classes, model_card
from lrnet._errors import LrnetError
from lrnet._files import MARK, atomic_write, cannot_write, check_replaceable
from lrnet.checkpoint import check_finite, unwrap
from lrnet.config import Config
from lrnet.sources import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    LoadedModel,
    _read,
    open_model,
    read_config,
)


def load_model(source: Any) -> LoadedModel:
    """Rebuild a model in eval mode from wherever it is.

    Args:
        source: any source ``lrnet.sources.open_model`` reads (a checkpoint, a
            ``save_pretrained`` folder, a zoo name or entry, a Hub repo id).

    Returns:
        The model (float32, eval mode, on the CPU), its config, class names and palette.

    Raises:
        LrnetError: the source does not exist or cannot be fetched, is damaged, holds objects
            that are refused for safety, or its weights do not fit its config.
    """
    loaded = open_model(source)
    loaded.model  # noqa: B018 (built now: a misfit is an error here, not at first use)
    return loaded


def from_pretrained(source: Any) -> LoadedModel:
    """Load a ``save_pretrained`` folder, or any other source ``load_model`` takes (a zoo name,
    a Hub repo id, a checkpoint)."""
    return load_model(source)


def read_weights(source: Any) -> dict[str, torch.Tensor]:
    """The state dict of any source ``load_model`` takes, without building a model."""
    tensors, _, _ = _read(source)
    if isinstance(tensors, Mapping):
        return {
            k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in tensors.items()
        }
    return tensors


# model.init must fill at least this share of a model's weights (by count): a new class
# count leaves only the class layers fresh, another width or network leaves most of it.
MIN_INIT_SHARE = 0.5


def init_from(model: nn.Module, source: Any, *, strict: bool) -> tuple[list[str], list[str]]:
    """Load the weights of ``source`` that fit ``model`` (name and shape).

    Args:
        strict: every weight must fit (``--load-from``); otherwise the ones that do not fit
            (the class layers of a model with other classes, say) keep their fresh values.

    Returns:
        The names loaded (BatchNorm step counters left out of the list) and the names left as
        initialised.

    Raises:
        LrnetError: ``strict`` and something does not fit, or less than ``MIN_INIT_SHARE`` of the
            model's weights (by count) fit, as into a model of another width.
    """
    state = read_weights(source)
    own = model.state_dict()
    fits = {
        k: v
        for k, v in state.items()
        if isinstance(v, torch.Tensor) and k in own and own[k].shape == v.shape
    }  # a value that is no tensor fits nothing
    fresh = [k for k in own if k not in fits]
    # BatchNorm's step counters are scalars: they fit any model, and say nothing about weights.
    learned = [k for k in fits if not k.endswith("num_batches_tracked")]
    # Into a model of another width the tensors sized by the class count still fit (biases, the
    # refinement layers): a load is one only when most of the model's weights come from it.
    share = sum(fits[k].numel() for k in learned) / max(1, sum(v.numel() for v in own.values()))
    if (strict and (fresh or len(fits) != len(state))) or share < MIN_INIT_SHARE:
        misfits = [k for k in state if k not in fits] + [k for k in fresh if k not in state]
        fix = (
            "train the same model.name, encoder, width and classes, or use model.init to load "
            "only what fits"
            if strict
            else f"model.init needs at least {MIN_INIT_SHARE:.0%} of them to fit: the same "
            "model.name, encoder and width (the classes may differ)"
        )
        raise LrnetError(
            f"the weights in {source} do not fit this model ({len(fits)} of {len(own)} tensors, "
            f"{share:.0%} of its weights, match; e.g. {', '.join(misfits[:3])}): {fix}"
        )
    check_finite(fits, source)
    model.load_state_dict({**own, **{k: v.to(own[k].dtype) for k, v in fits.items()}})
    return learned, fresh


def data_licence(config: Config, _depth: int = 0) -> str:
    """The terms a model trained with ``config`` carries: those of its dataset and, when it was
    fine-tuned (``model.init``), those of the model it started from (a zoo entry, a
    ``save_pretrained`` folder or a checkpoint, followed back to where it started).
    """
    own = zoo.DATA_LICENCES.get(config.data.dataset)
    init = config.model.init
    if not init or _depth > 8:
        return own or zoo.UNKNOWN_LICENCE
    folder_meta = Path(init).expanduser() / CONFIG_NAME
    if init in zoo.ZOO and not Path(init).expanduser().exists():
        parent = zoo.ZOO[init].licence
    elif folder_meta.is_file():
        parent = str(json.loads(folder_meta.read_text()).get("licence") or zoo.UNKNOWN_LICENCE)
    else:
        try:
            parent = data_licence(read_config(init), _depth + 1)
        except LrnetError:
            parent = f"not known ({init} cannot be read here; state its terms before sharing)"
    if own == parent:
        return own
    mine = own or "not recorded: state its terms before sharing this model"
    return f"started from {init}, whose terms it keeps: {parent}. Its own training data: {mine}."


def save_pretrained(
    model: nn.Module,
    config: Config,
    directory: str | Path,
    *,
    classes: Sequence[str] | None = None,
    palette: Sequence[Sequence[int]] | None = None,
    dtype: torch.dtype | None = None,
    name: str | None = None,
    val_miou: Sequence[float] | None = None,
    command: str | None = None,
    licence: str | None = None,
    val_note: str = "",
    overwrite: bool = False,
) -> Path:
    """Write a shareable folder: ``model.safetensors``, ``config.json`` and a ``README.md`` card.

    ``config.json`` holds all that loading needs (the whole config, class names, palette, the
    run size ``data.eval_size``); the folder can be uploaded to the Hugging Face Hub as is and
    loaded back with ``load_model(folder_or_repo_id)``. No pickles; files are 0644.

    Args:
        model: the network (DDP / compiled wrappers are unwrapped).
        config: its resolved config (``LoadedModel.config``, or a run's).
        directory: the folder, created if needed.
        classes: class names; default: those of the config's dataset (built-in datasets, or the
            folder dataset's ``classes.yaml`` at ``data.root``).
        palette: one RGB colour per class; default: the dataset's, else the VOC colour map.
        dtype: ``torch.float16`` to ship at half the size (loaded back as float32).
        name: the model's name in the card (default: the folder's name).
        val_miou: validation mIoU per stage s_1 .. s_6, in percent, for the card.
        command: the command that trained it, for the card.
        licence: the terms of the training data (default: ``data_licence(config)``, which
            carries the terms of the model it was fine-tuned from).
        val_note: where ``val_miou`` comes from, for the card.
        overwrite: replace files in ``directory`` that lrnet did not write (a folder's own
            ``README.md``, ``config.json`` ...); without it they are an error, nothing written.

    Raises:
        LrnetError: no class names or not the model's count; a file in the way that lrnet did
            not write (without ``overwrite``); a folder that cannot be written (a file, read-only).
    """
    directory = Path(directory)
    names, colours = card_classes(config, classes, palette)
    meta = _config_json(config, name or directory.resolve().name, names, colours)
    meta.update(val_miou=list(val_miou or []), val_note=val_note, training_command=command)
    meta["licence"] = licence or data_licence(config)
    _make_folder(directory, overwrite)
    save_weights(model, directory / WEIGHTS_NAME, dtype=dtype)
    parameters = sum(p.numel() for p in unwrap(model).parameters())
    atomic_write(directory / CONFIG_NAME, lambda f: f.write(json.dumps(meta, indent=2).encode()))
    card = model_card(meta, parameters)
    atomic_write(directory / "README.md", lambda f: f.write(card.encode()))
    return directory


def _config_json(
    config: Config, name: str, classes: list[str], palette: Sequence[Sequence[int]]
) -> dict[str, Any]:
    """What ``config.json`` holds besides the scores and origin: all that loading needs."""
    return {
        "format": "lrnet-pretrained",
        "lrnet_version": __version__,
        "name": name,
        "classes": classes,
        "palette": [list(c) for c in palette],
        "run_size": config.data.eval_size,
        "init": config.model.init,
        "config": config.to_dict(),
    }


def _make_folder(directory: Path, overwrite: bool) -> None:
    """``directory`` and its parents, made if missing, once no file there that lrnet did not
    write would be replaced (unless ``overwrite``); a file in the way or a read-only parent is a
    one-line error."""
    for file in (WEIGHTS_NAME, CONFIG_NAME, "README.md"):
        check_replaceable(
            directory / file,
            overwrite=overwrite,
            advice="save into another folder, move the file, or pass overwrite=True",
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot_write(directory, exc) from None


def save_weights(model: nn.Module, path: str | Path, *, dtype: torch.dtype | None = None) -> Path:
    """Write the unwrapped state dict of ``model`` to one safetensors file (0644, atomically).

    Args:
        dtype: cast floating-point tensors to it (``torch.float16`` halves the file; loading
            casts back to float32); ``None`` keeps them as they are.
    """
    if dtype not in (None, torch.float16, torch.bfloat16, torch.float32):
        raise LrnetError(f"dtype must be torch.float16, bfloat16 or float32, got {dtype}")
    tensors = {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v)
        .detach()
        .contiguous()
        .cpu()
        for k, v in unwrap(model).state_dict().items()
    }
    metadata = {"format": "pt", MARK: __version__}
    return atomic_write(path, lambda f: f.write(save(tensors, metadata=metadata)))


__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "LoadedModel",
    "data_licence",
    "from_pretrained",
    "init_from",
    "load_model",
    "read_config",
    "read_weights",
    "save_pretrained",
    "save_weights",
]
