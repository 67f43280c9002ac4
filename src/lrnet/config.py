"""The one config schema (typed dataclasses), loaded from YAML with ``key=value`` overrides.

Every field carries its help text and its check beside it; choices are ``Literal`` types, so
the reference page (``docs/config.md``, made by ``reference()``) cannot drift from the code.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from lrnet import __version__
from lrnet._annotations import coerce, type_name
from lrnet._errors import LrnetError
from lrnet._files import YAML_MARK, write_text
from lrnet._yaml import quote, read_yaml
from lrnet.inference.image import MIN_SIZE

ModelName = Literal["lrn", "lrn_gated", "segnet", "segnet_ds"]
EncoderName = Literal["vgg16", "vgg16_bn"]
DatasetName = Literal["camvid", "voc", "sunrgbd", "folder", "synthetic"]
ClassWeightMethod = Literal["median_frequency", "inverse_frequency", "enet"]
OptimizerName = Literal["sgd", "adamw"]
ScheduleName = Literal["step", "poly", "cosine", "constant"]
LossMode = Literal["resize_target", "upsample_logits"]
AmpMode = Literal["none", "bf16", "fp16"]

Check = Callable[[Any], "str | None"]  # returns what is wrong with a value, or None


def _finite(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _number(ok: Callable[[float], bool], problem: str) -> Check:
    return lambda value: None if _finite(value) and ok(value) else problem


positive = _number(lambda v: v > 0, "must be a positive number")
non_negative = _number(lambda v: v >= 0, "must be a number >= 0")
_fraction = _number(lambda v: 0 <= v < 1, "must be in [0, 1)")
_unit_interval = _number(lambda v: 0 < v <= 1, "must be in (0, 1]")


def _optional(check: Check) -> Check:
    return lambda value: None if value is None else check(value)


def _size(value: Any) -> str | None:
    if value is None or (len(value) == 2 and min(value) >= MIN_SIZE):
        return None
    return f"must be [H, W] with both at least {MIN_SIZE}"


def _weights(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return None
    ok = all(_finite(w) and w >= 0 for w in value) and any(value)
    return None if ok else "must be numbers >= 0, not all 0"


def _increasing(value: list[int]) -> str | None:
    ok = all(v > 0 for v in value) and all(a < b for a, b in itertools.pairwise(value))
    return None if ok else "must be positive and increasing (the schedule bisects them)"


def _scale_range(value: list[float]) -> str | None:
    ok = len(value) == 2 and _finite(value[0]) and 0 < value[0] <= value[1] < math.inf
    return None if ok else "must be [min, max] with 0 < min <= max"


def _void_255(value: int) -> str | None:
    return None if value == 255 else "must stay 255: the datasets map every void label to 255"


def opt(default: Any, help: str, check: Check | None = None) -> Any:
    """A config field: its default, its help (the reference page) and its check."""
    metadata = {"help": help, "check": check}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class ModelConfig:
    """Which network to build."""

    name: ModelName = opt("lrn", "lrn | lrn_gated (G-FRNet gates) | segnet | segnet_ds")
    num_classes: int | None = opt(
        None, "number of classes; null: taken from the dataset", _optional(positive)
    )
    encoder: EncoderName = opt("vgg16_bn", "VGG16 with or without BatchNorm")
    width: float = opt(1.0, "encoder channel multiplier; 1.0 is VGG16", positive)
    skip_channels: int | None = opt(
        None,
        "LRN only: reduced skip width in each refinement module; null: num_classes",
        _optional(positive),
    )
    encoder_weights: str | None = opt(
        None, "null | imagenet (torchvision download) | path of a torchvision VGG16 state dict"
    )
    init: str | None = opt(
        None,
        "start from a trained model (zoo name, checkpoint or folder): every weight whose name "
        "and shape fit is loaded, the others (the class layers for other classes) start afresh",
    )


@dataclass
class DataConfig:
    """Where the data is and how it is augmented and batched."""

    dataset: DatasetName = opt("synthetic", "camvid | voc | sunrgbd | folder | synthetic")
    root: str = opt("data/synthetic", "dataset folder (stored absolute in the run's config)")
    options: dict[str, Any] = opt(
        {}, "dataset-specific options: voc sbd_root; synthetic num_train, num_val, size, seed"
    )
    train_split: str = opt("train", "split to train on")
    val_split: str = opt("val", "split to validate on")
    base_size: list[int] | None = opt(
        None, "[H, W] images are resized to before augmentation; null: as read", _size
    )
    crop_size: list[int] = opt([360, 480], "[H, W] of the training crops", _size)
    scale_range: list[float] = opt([0.5, 2.0], "random scale range [min, max]", _scale_range)
    hflip: bool = opt(True, "random horizontal flips")
    color_jitter: float = opt(0.0, "brightness/contrast/saturation jitter strength", _fraction)
    photometric: bool = opt(
        False,
        "mmseg's PhotoMetricDistortion (brightness, contrast, saturation, hue) and a random gamma",
    )
    eval_size: list[int] | None = opt(
        None, "[H, W] the model runs at in validation and predict; null: the image's size", _size
    )
    batch_size: int = opt(10, "images per batch and process", positive)
    num_workers: int = opt(2, "DataLoader worker processes", non_negative)
    class_weights: ClassWeightMethod | list[float] | None = opt(
        None, "null | median_frequency | inverse_frequency | enet | a list of C weights", _weights
    )
    ignore_index: int = opt(255, "label of void pixels", _void_255)


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule, counted in iterations."""

    optimizer: OptimizerName = opt("sgd", "sgd (the paper's) | adamw")
    lr: float = opt(1e-3, "base learning rate", positive)
    momentum: float = opt(0.9, "SGD momentum", _fraction)
    weight_decay: float = opt(5e-4, "weight decay (not on biases and BatchNorm)", non_negative)
    iterations: int = opt(80_000, "training iterations", positive)
    schedule: ScheduleName = opt("step", "step | poly | cosine | constant")
    milestones: list[int] = opt([50_000], "step schedule: iterations of each decay", _increasing)
    gamma: float = opt(0.1, "step schedule: factor at each milestone", _unit_interval)
    power: float = opt(0.9, "poly schedule: exponent of (1 - t/T)", positive)
    warmup_iters: int = opt(0, "linear warm-up iterations", non_negative)
    warmup_factor: float = opt(0.001, "warm-up starts at this fraction of lr", _unit_interval)
    grad_clip: float | None = opt(None, "max gradient norm; null: no clipping", _optional(positive))


@dataclass
class LossConfig:
    """The stage-wise loss."""

    mode: LossMode = opt(
        "resize_target",
        "resize_target (the paper: labels resized to each stage) | upsample_logits (G-FRNet)",
    )
    stage_weights: list[float] | None = opt(
        None, "one weight per stage, coarse to fine; null: 1 each; 0 switches a stage off", _weights
    )


@dataclass
class RunConfig:
    """Where the run goes and how it is driven."""

    out_dir: str = opt("runs/default", "run folder: config, checkpoints, history")
    seed: int = opt(0, "random seed")
    device: str = opt("auto", "auto | cpu | cuda | cuda:N")
    amp: AmpMode = opt("none", "autocast: none | bf16 | fp16 (fp16 on CUDA only)")
    compile: bool = opt(False, "torch.compile the model")
    channels_last: bool = opt(False, "channels-last memory format (faster on CPU)")
    val_interval: int = opt(1000, "iterations between validations (and best.pt)", positive)
    checkpoint_interval: int = opt(500, "iterations between last.pt saves", positive)
    log_interval: int = opt(20, "iterations between log lines", positive)
    tensorboard: bool = opt(True, "also log to TensorBoard when it is installed")
    progress: bool = opt(True, "progress bar on a terminal (plain log lines otherwise)")


@dataclass
class Config:
    """A whole experiment. ``lrnet train CONFIG key=value ...`` fills it."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON/checkpoint friendly)."""
        return dataclasses.asdict(self)


def choices(annotation: Any) -> tuple[Any, ...]:
    """The values of a ``Literal`` type (inside an optional or a union too)."""
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    return tuple(c for arg in typing.get_args(annotation) for c in choices(arg))


def _fields(instance: Any) -> dict[str, tuple[dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(type(instance))
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(instance)}


def _merge(instance: Any, updates: Any, prefix: str) -> None:
    """Set fields of a config dataclass from a nested dict; unknown keys are errors."""
    if not isinstance(updates, dict):
        raise LrnetError(
            f"{prefix.rstrip('.') or 'config'} must be a mapping, got {quote(updates)}"
        )
    fields = _fields(instance)
    for key, value in updates.items():
        name = f"{prefix}{key}"
        if key not in fields:
            known = ", ".join(f"{prefix}{k}" for k in fields)
            raise LrnetError(f"unknown config key {quote(name)}; known keys here: {known}")
        current = getattr(instance, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, f"{name}.")
        elif isinstance(current, dict) and value in (None, {}):
            setattr(instance, key, {})  # data.options={} or null clears them
        elif isinstance(current, dict) and isinstance(value, dict):
            setattr(instance, key, {**current, **value})  # data.options.size=... keeps the rest
        else:
            setattr(instance, key, coerce(value, fields[key][1], name))


def validate(config: Config) -> Config:
    """Raise LrnetError naming the first invalid value and its allowed range."""
    for section in dataclasses.fields(config):
        part = getattr(config, section.name)
        for name, (f, _) in _fields(part).items():
            check = f.metadata.get("check")
            problem = check(getattr(part, name)) if check else None
            if problem:
                raise LrnetError(f"{section.name}.{name}={quote(getattr(part, name))} {problem}")
    if config.model.skip_channels is not None and config.model.name.startswith("segnet"):
        raise LrnetError(
            f"model.skip_channels is an LRN option; {config.model.name} has no skips: remove it"
        )
    return config


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=0.01"`` -> (["optim", "lr"], 0.01); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not all(part.strip() for part in key.split(".")):
        raise LrnetError(f"override {quote(text)} is not of the form section.key=value")
    try:
        value = read_yaml(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise LrnetError(
            f"override {quote(text)}: the value is not valid YAML ({problem})"
        ) from None
    return key.strip().split("."), value


def nest(path: list[str], value: Any) -> dict[str, Any]:
    """(["a", "b"], 1) -> {"a": {"b": 1}}."""
    out: Any = value
    for part in reversed(path):
        out = {part: out}
    return out


def from_dict(data: dict[str, Any] | None) -> Config:
    """A validated Config from a nested dict such as a checkpoint's ``config``."""
    config = Config()
    _merge(config, data or {}, "")
    return validate(config)


def shipped_configs() -> list[str]:
    """Names of the configs that ship with lrnet (``lrnet train NAME``)."""
    folder = resources.files("lrnet") / "configs"
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def find_config(name_or_path: str | Path) -> Path:
    """A config file: a path, or the name of a shipped config (``camvid_cpu``) from anywhere."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    name = str(name_or_path).removesuffix(".yaml")
    if name in shipped_configs() and path.parent == Path("."):
        return Path(str(resources.files("lrnet") / "configs" / f"{name}.yaml"))
    raise LrnetError(
        f"config file {path} does not exist; give a YAML file or one of the shipped configs: "
        f"{', '.join(shipped_configs())}"
    )


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the YAML file (a path or a shipped config's name), then overrides."""
    config = Config()
    if path is not None:
        path = find_config(path)
        try:
            data = read_yaml(path.read_text(encoding="utf-8")) or {}
            _merge(config, data, "")
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            problem = " ".join(str(exc).split())  # PyYAML's message spans several lines
            raise LrnetError(f"config file {path} is not valid YAML: {problem}") from None
        except LrnetError as exc:
            raise LrnetError(f"{path}: {exc}") from None
    for text in overrides or []:
        keys, value = parse_override(text)
        _merge(config, nest(keys, value), "")
    return validate(config)


def dump_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically), under a comment marking it lrnet's."""
    header = f"{YAML_MARK} the resolved config of this run (lrnet {__version__})\n"
    write_text(path, header + yaml.safe_dump(config.to_dict(), sort_keys=False))


def reference() -> str:
    """The config reference page (docs/config.md) as Markdown, from the schema itself."""
    lines = [
        "# Config reference",
        "",
        "Every key of `lrnet train CONFIG key=value ...`, generated from `src/lrnet/config.py` "
        "(`python -c \"import lrnet.config as c; open('docs/config.md', 'w').write(c.reference())\"`; "
        "a test checks this page is current). Shipped configs, usable by name from anywhere: "
        + ", ".join(f"`{n}`" for n in shipped_configs())
        + ".",
    ]
    for section in dataclasses.fields(Config):
        part = getattr(Config(), section.name)
        lines += ["", f"## {section.name}", "", (type(part).__doc__ or "").strip(), ""]
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for name, (f, annotation) in _fields(part).items():
            default = yaml.safe_dump(getattr(part, name), default_flow_style=True).strip()
            default = default.removesuffix("\n...").removesuffix("...").strip()
            cells = [f"`{section.name}.{name}`", type_name(annotation), f"`{default}`"]
            cells.append(f.metadata["help"])
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
