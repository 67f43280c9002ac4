"""Any model source -> a model (``load_model``), and a model -> a folder to share
(``save_pretrained``, its card by ``lrnet._card``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save
from torch import nn

from lrnet import __version__, zoo
from lrnet._card import card_classes, model_card
from lrnet._errors import LrnetError
from lrnet._files import MARK, atomic_write, cannot_write, check_replaceable, write_text
from lrnet.checkpoint import check_finite, unwrap
from lrnet.config import Config
from lrnet.sources import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    LoadedModel,
    _read,
    as_tensors,
    open_model,
    read_config,
)


def load_model(source: Any) -> LoadedModel:
    """The model (float32, eval mode, on the CPU), its config, class names and palette, from any
    source ``lrnet.sources.open_model`` reads.

    Raises:
        LrnetError: as ``open_model``, or the weights do not fit the config.
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
    return as_tensors(tensors) if isinstance(tensors, Mapping) else tensors


# model.init must fill at least this share of a model's weights (by count): a new class
# count leaves only the class layers fresh, another width or network leaves most of it.
MIN_INIT_SHARE = 0.5


def init_from(model: nn.Module, source: Any, *, strict: bool) -> tuple[list[str], list[str]]:
    """Load the weights of ``source`` that fit ``model`` (name and shape).

    Args:
        strict: every weight must fit (``--load-from``); otherwise the ones that do not fit
            (the class layers of a model with other classes, say) keep their fresh values.

    Returns:
        The names loaded (without BatchNorm step counters) and the names left as initialised.

    Raises:
        LrnetError: ``strict`` and something does not fit, or under ``MIN_INIT_SHARE`` fits.
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
    """The terms a model trained with ``config`` carries: its dataset's and, when fine-tuned
    (``model.init``), those of the model it started from, followed back to where it started."""
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

    ``config.json`` holds all that loading needs; the folder can go to the Hugging Face Hub as is
    and back through ``load_model``. No pickles; files are 0644.

    Args:
        model: the network (DDP / compiled wrappers are unwrapped).
        classes: class names; default: the config's dataset's (or ``classes.yaml`` at
            ``data.root``).
        palette: one RGB colour per class; default: the dataset's, else the VOC colour map.
        dtype: ``torch.float16`` to ship at half the size (loaded back as float32).
        name: the model's name in the card (default: the folder's name).
        val_miou: validation mIoU per stage s_1 .. s_6, in percent, for the card; ``val_note``
            says where it comes from, ``command`` what trained it.
        licence: the terms of the training data (default: ``data_licence(config)``).
        overwrite: replace files in ``directory`` that lrnet did not write.

    Raises:
        LrnetError: no class names or not the model's count; a file in the way that lrnet did
            not write (without ``overwrite``); a folder that cannot be written.
    """
    directory = Path(directory)
    names, colours = card_classes(config, classes, palette)
    meta = {  # all that loading needs, then the scores and origin
        "format": "lrnet-pretrained",
        "lrnet_version": __version__,
        "name": name or directory.resolve().name,
        "classes": names,
        "palette": [list(c) for c in colours],
        "run_size": config.data.eval_size,
        "init": config.model.init,
        "config": config.to_dict(),
        "val_miou": list(val_miou or []),
        "val_note": val_note,
        "training_command": command,
        "licence": licence or data_licence(config),
    }
    _make_folder(directory, overwrite)
    save_weights(model, directory / WEIGHTS_NAME, dtype=dtype)
    parameters = sum(p.numel() for p in unwrap(model).parameters())
    write_text(directory / CONFIG_NAME, json.dumps(meta, indent=2))
    write_text(directory / "README.md", model_card(meta, parameters))
    return directory


def _make_folder(directory: Path, overwrite: bool) -> None:
    """Make ``directory`` once no file there that lrnet did not write would be replaced."""
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
    """Write the unwrapped state dict of ``model`` to one safetensors file (0644, atomically),
    its floating-point tensors cast to ``dtype`` unless ``None``."""
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
