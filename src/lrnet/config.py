"""The one config schema (typed dataclasses), loaded from YAML with ``key=value`` overrides."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lrnet._errors import LrnetError


@dataclass
class ModelConfig:
    """Which network to build."""

    name: str = "lrn"  # lrn | lrn_gated | segnet | segnet_ds
    num_classes: int | None = None  # None: taken from the dataset
    encoder: str = "vgg16_bn"  # vgg16 | vgg16_bn
    width: float = 1.0  # encoder channel multiplier; 1.0 is VGG16
    skip_channels: int | None = None  # reduced skip width in each RE; None: num_classes
    encoder_weights: str | None = None  # None | imagenet | path to a torchvision VGG16 state dict


@dataclass
class DataConfig:
    """Where the data is and how it is augmented and batched."""

    dataset: str = "synthetic"  # camvid | voc | sunrgbd | folder | synthetic
    root: str = "data/synthetic"
    options: dict[str, Any] = field(default_factory=dict)  # dataset-specific, e.g. sbd_root
    train_split: str = "train"
    val_split: str = "val"
    base_size: list[int] | None = None  # [H, W] images are resized to before augmentation
    crop_size: list[int] = field(default_factory=lambda: [360, 480])  # [H, W] training crop
    scale_range: list[float] = field(default_factory=lambda: [0.5, 2.0])
    hflip: bool = True
    color_jitter: float = 0.0
    eval_size: list[int] | None = None  # [H, W] the model runs at in validation; None: native
    batch_size: int = 10
    num_workers: int = 2
    # None | median_frequency | inverse_frequency | enet | a list of C weights
    class_weights: str | list[float] | None = None
    ignore_index: int = 255


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule, counted in iterations."""

    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    iterations: int = 80_000
    schedule: str = "step"  # step | poly | cosine | constant
    milestones: list[int] = field(default_factory=lambda: [50_000])  # step schedule
    gamma: float = 0.1  # step schedule factor
    power: float = 0.9  # poly schedule exponent
    warmup_iters: int = 0  # linear warm-up from warmup_factor * lr
    warmup_factor: float = 0.001
    grad_clip: float | None = None  # max gradient norm


@dataclass
class LossConfig:
    """The stage-wise loss."""

    mode: str = "resize_target"  # resize_target (paper) | upsample_logits (G-FRNet release)
    stage_weights: list[float] | None = None  # None: 1 for every stage


@dataclass
class RunConfig:
    """Where the run goes and how it is driven."""

    out_dir: str = "runs/default"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "none"  # none | bf16 | fp16 (fp16 on CUDA only)
    compile: bool = False
    channels_last: bool = False
    val_interval: int = 1000  # iterations between validations (and best-checkpoint updates)
    checkpoint_interval: int = 500  # iterations between last.pt saves
    log_interval: int = 20
    tensorboard: bool = True
    progress: bool = True


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


CLASS_WEIGHT_METHODS = ("median_frequency", "inverse_frequency", "enet")

_CHOICES = {
    "model.name": ("lrn", "lrn_gated", "segnet", "segnet_ds"),
    "model.encoder": ("vgg16", "vgg16_bn"),
    "data.dataset": ("camvid", "voc", "sunrgbd", "folder", "synthetic"),
    "optim.optimizer": ("sgd", "adamw"),
    "optim.schedule": ("step", "poly", "cosine", "constant"),
    "loss.mode": ("resize_target", "upsample_logits"),
    "run.amp": ("none", "bf16", "fp16"),
}


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check ``value`` against a field's type annotation, converting ints to floats and the like."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except LrnetError as exc:
                errors.append(str(exc))
        raise LrnetError(errors[-1] if errors else f"{key}: invalid value {value!r}")
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise LrnetError(f"{key} must be a list, got {value!r}")
        return [_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise LrnetError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if annotation is Any:
        return value
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        try:  # PyYAML reads "1e-3" (no dot) as a string
            return float(value)
        except ValueError:
            raise LrnetError(f"{key} must be a number, got {value!r}") from None
    if annotation is bool and not isinstance(value, bool):
        raise LrnetError(f"{key} must be true or false, got {value!r}")
    if annotation is int and isinstance(value, bool):
        raise LrnetError(f"{key} must be an integer, got {value!r}")
    if not isinstance(value, annotation):
        raise LrnetError(f"{key} must be {annotation.__name__}, got {value!r}")
    return value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _merge(instance: Any, updates: dict[str, Any], prefix: str) -> None:
    """Set fields of a config dataclass from a nested dict; unknown keys are errors."""
    if not isinstance(updates, dict):
        raise LrnetError(f"{prefix or 'config'} must be a mapping, got {updates!r}")
    hints = _hints(type(instance))
    for key, value in updates.items():
        name = f"{prefix}{key}"
        if key not in hints:
            known = ", ".join(f"{prefix}{k}" for k in hints)
            raise LrnetError(f"unknown config key {name!r}; known keys here: {known}")
        current = getattr(instance, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, f"{name}.")
        elif isinstance(current, dict) and isinstance(value, dict):
            setattr(instance, key, {**current, **value})  # data.options.size=... keeps the rest
        else:
            setattr(instance, key, _coerce(value, hints[key], name))


def validate(config: Config) -> Config:
    """Raise LrnetError naming the first invalid value."""
    for key, choices in _CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if value not in choices:
            raise LrnetError(f"{key}={value!r} is not one of {', '.join(choices)}")
    positive = {
        "model.width": config.model.width,
        "data.batch_size": config.data.batch_size,
        "optim.lr": config.optim.lr,
        "optim.iterations": config.optim.iterations,
        "run.val_interval": config.run.val_interval,
        "run.checkpoint_interval": config.run.checkpoint_interval,
        "run.log_interval": config.run.log_interval,
    }
    for key, value in positive.items():
        if value <= 0:
            raise LrnetError(f"{key} must be positive, got {value}")
    for key, size in {
        "data.crop_size": config.data.crop_size,
        "data.base_size": config.data.base_size,
        "data.eval_size": config.data.eval_size,
    }.items():
        if size is not None and (len(size) != 2 or min(size) < 32):
            raise LrnetError(f"{key} must be [H, W] with both at least 32, got {size}")
    if (
        len(config.data.scale_range) != 2
        or not 0 < config.data.scale_range[0] <= config.data.scale_range[1]
    ):
        raise LrnetError(
            f"data.scale_range must be [min, max] with 0 < min <= max, got {config.data.scale_range}"
        )
    if config.data.ignore_index != 255:
        raise LrnetError(
            f"data.ignore_index={config.data.ignore_index}: the datasets map every void label to 255, "
            "so keep 255 (a dataset's own void value is handled by its loader)"
        )
    weights = config.data.class_weights
    if isinstance(weights, str) and weights not in CLASS_WEIGHT_METHODS:
        raise LrnetError(
            f"data.class_weights={weights!r} is not one of {', '.join(CLASS_WEIGHT_METHODS)} or a list"
        )
    if config.model.num_classes is not None and config.model.num_classes < 1:
        raise LrnetError(f"model.num_classes must be at least 1, got {config.model.num_classes}")
    if config.optim.warmup_iters < 0 or config.data.num_workers < 0:
        raise LrnetError("optim.warmup_iters and data.num_workers must not be negative")
    return config


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=0.01"`` -> (["optim", "lr"], 0.01); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise LrnetError(f"override {text!r} is not of the form section.key=value")
    return key.strip().split("."), yaml.safe_load(raw) if raw.strip() else None


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


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the YAML file at ``path``, then ``key=value`` overrides, validated."""
    config = Config()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise LrnetError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise LrnetError(f"config file {path} is not valid YAML: {exc}") from exc
        try:
            _merge(config, data, "")
        except LrnetError as exc:
            raise LrnetError(f"{path}: {exc}") from exc
    for text in overrides or []:
        keys, value = parse_override(text)
        _merge(config, nest(keys, value), "")
    return validate(config)


def dump_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
