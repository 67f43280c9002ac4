"""The ``README.md`` card of a pretrained folder: what the model is, its classes, data and scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lrnet._errors import LrnetError
from lrnet.config import Config, from_dict
from lrnet.data.camvid import CAMVID_CLASSES, CAMVID_PALETTE
from lrnet.data.folder import read_class_file
from lrnet.data.sunrgbd import SUNRGBD_CLASSES, SUNRGBD_PALETTE
from lrnet.data.voc import VOC_CLASSES, VOC_PALETTE
from lrnet.visualize import default_palette


def card_classes(
    config: Config,
    classes: Sequence[str] | None,
    palette: Sequence[Sequence[int]] | None,
) -> tuple[list[str], list[tuple[int, ...]]]:
    """``save_pretrained``'s class names and one colour each: those given, else the dataset's,
    colours filled up from the VOC colour map; none, or not the model's count, is a LrnetError."""
    found_classes, found_palette = _dataset_classes(config) if classes is None else ([], [])
    names = list(classes) if classes is not None else found_classes
    num_classes = config.model.num_classes
    if not names:
        raise LrnetError(
            f"save_pretrained: no class names for the {config.data.dataset} data at "
            f"{config.data.root} (no classes.yaml there); pass classes=[...] "
            "(LoadedModel.classes of a checkpoint has them)"
        )
    if num_classes is not None and len(names) != num_classes:
        raise LrnetError(
            f"save_pretrained: {len(names)} class names for a model of {num_classes} classes"
        )
    colours = [tuple(int(v) for v in c)[:3] for c in (palette or found_palette)]
    colours += default_palette(len(names))[len(colours) :]
    return names, colours[: len(names)]


def _dataset_classes(config: Config) -> tuple[list[str], list[tuple[int, int, int]]]:
    """The class names and colours of the config's dataset, where they can be found."""
    dataset = config.data.dataset
    if dataset in ("folder", "synthetic"):
        try:
            spec = read_class_file(config.data.root)
        except LrnetError:
            return [], []
        return list(spec["names"]), [tuple(c) for c in spec["palette"]]
    known = {
        "camvid": (CAMVID_CLASSES, CAMVID_PALETTE),
        "voc": (VOC_CLASSES, VOC_PALETTE),
        "sunrgbd": (SUNRGBD_CLASSES, SUNRGBD_PALETTE),
    }
    names, colours = known.get(dataset, ([], []))
    return list(names), [tuple(int(v) for v in c) for c in colours]  # type: ignore[misc]


def model_card(meta: Mapping[str, Any], parameters: int) -> str:
    """The ``README.md`` of a pretrained folder: what the model is, its data, scores and command."""
    config = from_dict(meta["config"])
    m, d = config.model, config.data
    size = f"{d.eval_size[0]}x{d.eval_size[1]}" if d.eval_size else "the image's own size"
    lines = [
        "---",
        "library_name: lrnet",
        "pipeline_tag: image-segmentation",
        "tags: [semantic-segmentation, label-refinement-network]",
        "---",
        "",
        f"# {meta['name']}",
        "",
        f"A Label Refinement Network (Islam et al., arXiv 1703.00551; `{m.name}`, {m.encoder} "
        f"encoder at width {m.width}, skip channels {m.skip_channels or 'num_classes'}, "
        f"{parameters:,} parameters) for {len(meta['classes'])}-class semantic segmentation. It "
        f"runs at {size} and labels six stages, coarse (stride 32) to fine (full resolution).",
        "",
        "```",
        f"lrnet predict --model {meta['name']} photo.jpg --out out/   # or the folder's path",
        "```",
        "",
        "## Training data",
        "",
        f"The `{d.train_split}` split of the `{d.dataset}` dataset (validated on `{d.val_split}`); "
        "the training command below has the recipe."
        + (
            f" Fine-tuned from `{m.init}` (`model.init`): every weight whose name and shape fit "
            "started from it, so its training data is part of this model's too."
            if m.init
            else ""
        ),
        "",
        f"Licence of the data: {meta['licence']}",
        "",
        "## Classes",
        "",
        "| index | class | colour |",
        "|---:|---|---|",
        *(
            f"| {i} | {c} | {tuple(rgb)} |"
            for i, (c, rgb) in enumerate(zip(meta["classes"], meta["palette"], strict=True))
        ),
    ]
    lines += _score_lines(meta, d.val_split)
    lines += ["", "## Training command", "", "```", meta.get("training_command") or "not recorded"]
    return "\n".join([*lines, "```", ""])


def _score_lines(meta: Mapping[str, Any], split: str) -> list[str]:
    """The card's table of val mIoU per stage, and where the scores come from (if any)."""
    stages = meta.get("val_miou")
    if not stages:
        return []
    return [
        "",
        f"## Validation mIoU per stage (%, `{split}` split)",
        "",
        "| " + " | ".join(f"s_{k + 1}" for k in range(len(stages))) + " |",
        "|" + "---:|" * len(stages),
        "| " + " | ".join(f"{v:.1f}" for v in stages) + " |",
        *(["", meta["val_note"]] if meta.get("val_note") else []),
    ]
