"""What a training run holds (``Run``, ``TrainState``) and ``setup``, which builds it from a config."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from lrnet import checkpoint as ckpt
from lrnet import data, pretrained
from lrnet._distributed import (
    DistInfo,
    ResumableSampler,
    ShardSampler,
    barrier,
    init_distributed,
    resolve_device,
)
from lrnet._errors import LrnetError
from lrnet._files import write_text
from lrnet._memory import check_fits, run_bytes
from lrnet._yaml import quote
from lrnet.config import Config, dump_config
from lrnet.data.class_weights import compute_class_weights, masks_fingerprint
from lrnet.loss import StageLoss
from lrnet.models.encoder import scaled_width
from lrnet.schedule import lr_factor
from lrnet.train.folder import CLASS_WEIGHTS, LAST, OldRun, check_fresh, clean_temporaries
from lrnet.train.log import RunLog


@dataclass
class TrainState:
    """Where a run stands; saved in every checkpoint so a killed run resumes exactly."""

    iteration: int = 0
    epoch: int = 0
    samples_in_epoch: int = 0  # samples this rank has consumed in the current epoch
    best_miou: float = -1.0


@dataclass
class Run:
    """Everything a training run holds, built by ``setup``."""

    config: Config
    out_dir: Path
    device: torch.device
    info: DistInfo
    model: nn.Module  # the plain model (saved, validated)
    net: nn.Module  # what the step calls: the model, or its DDP / compiled wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    criterion: StageLoss
    amp_dtype: torch.dtype | None
    train_set: data.SegmentationDataset
    sampler: ResumableSampler
    loader: DataLoader
    val_loader: DataLoader
    state: TrainState
    log: RunLog
    old_run: OldRun | None = None  # what --overwrite set aside, until the first checkpoint
    command: str | None = None  # the `lrnet train ...` that started the run, for model cards


def build_optimizer(model: nn.Module, config: Config) -> torch.optim.Optimizer:
    """SGD (the paper's) or AdamW; no weight decay on BatchNorm parameters and biases."""
    params = [p for p in model.parameters() if p.requires_grad]
    o = config.optim
    groups = [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": o.weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    if o.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum)
    return torch.optim.AdamW(groups, lr=o.lr)


def class_weights(
    config: Config, dataset: Any, out_dir: Path, info: DistInfo
) -> list[float] | None:
    """Per-class loss weights: a list from the config, or computed from the training split once.

    Computed weights are cached in the run folder, keyed by everything that defines the data:
    the dataset, root, split and options, and the masks themselves (their paths, sizes and
    modification times, ``masks_fingerprint``), so edited masks are counted again.
    """
    spec = config.data.class_weights
    if isinstance(spec, str):
        d = config.data
        source: dict[str, Any] = {"method": spec, "dataset": d.dataset, "root": d.root}
        source |= {"split": d.train_split, "options": d.options}
        source |= {"masks": masks_fingerprint(dataset)}
        cache = out_dir / CLASS_WEIGHTS
        # One writer (rank 0); the other ranks read after the barrier.
        if info.is_main and _read_json(cache).get("source") != source:
            weights = compute_class_weights(dataset, method=spec)
            write_text(cache, json.dumps({"source": source, "weights": weights}))
        barrier()
        spec = [float(w) for w in _read_json(cache)["weights"]]
    if spec is not None and len(spec) != len(dataset.classes):
        raise LrnetError(
            f"data.class_weights has {len(spec)} values but the dataset has "
            f"{len(dataset.classes)} classes"
        )
    return spec


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON file written by lrnet, or {} when absent or torn by a kill."""
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def autocast_dtype(config: Config, device: torch.device) -> torch.dtype | None:
    """The autocast dtype ``run.amp`` asks for on this device (None: float32)."""
    if config.run.amp == "none":
        return None
    if config.run.amp == "fp16" and device.type != "cuda":
        raise LrnetError("run.amp=fp16 needs a CUDA GPU; use run.amp=bf16 on CPU")
    return torch.float16 if config.run.amp == "fp16" else torch.bfloat16


def setup(
    config: Config,
    *,
    resume: str | Path | None = None,
    load_from: str | Path | None = None,
    overwrite: bool = False,
) -> Run:
    """Build a run: data, model (fresh, initialised or resumed), optimiser, loss and loaders.

    Args:
        config: the resolved config (``load_config``); ``data.root`` and ``model.num_classes``
            are filled in (absolute root, the dataset's class count).
        resume: ``"auto"`` for ``<out_dir>/last.pt``, or a checkpoint path: continue that run with
            its model, optimiser, scheduler, grad scaler, iteration, sampler position and RNG states.
        load_from: start a fresh run from all the weights of this checkpoint or folder.
        overwrite: the run already in ``run.out_dir`` is being replaced (``train`` set it aside).
    """
    config.run.out_dir = str(Path(config.run.out_dir).expanduser())
    out_dir = Path(config.run.out_dir)
    info = init_distributed(resolve_device(config.run.device).type)
    device = resolve_device(config.run.device, info.local_rank)
    resumed = None if resume is None else out_dir / LAST if resume == "auto" else Path(resume)
    checkpoint = _prepare_folder(config, out_dir, resumed, overwrite)
    random.seed(config.run.seed + info.rank)
    torch.manual_seed(config.run.seed + info.rank)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_set, val_set = _datasets(config, info)
    if info.is_main:
        dump_config(config, out_dir / "config.yaml")
    fresh = checkpoint is None and load_from is None and config.model.init is None
    model = _model(config, device, info, load_from, encoder_weights=fresh)
    optimizer = build_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(it, config.optim))
    amp_dtype = autocast_dtype(config, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)  # fp16 only
    weights = class_weights(config, train_set, out_dir, info)
    criterion = StageLoss(
        config.loss.stage_weights, weights, config.data.ignore_index, config.loss.mode
    ).to(device)
    state = TrainState()
    if checkpoint is not None:
        parts = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
        assert resumed is not None
        state = TrainState(**ckpt.restore_training(checkpoint, resumed, info.rank, **parts))
    sampler, loader, val_loader = _loaders(config, info, device, state, train_set, val_set)
    net = _wrap(model, config, info, device)
    log = RunLog(out_dir, config, info, state.iteration)
    log.message(
        f"training {config.model.name} ({sum(p.numel() for p in model.parameters()):,} parameters) "
        f"on {device} x{info.world_size}, {len(train_set)} train / {len(val_set)} val images, "
        f"run dir {out_dir}"
    )
    return Run(
        config, out_dir, device, info, model, net, optimizer, scheduler, scaler, criterion,
        amp_dtype, train_set, sampler, loader, val_loader, state, log,
        command=None if checkpoint is None else checkpoint.get("command"),
    )  # fmt: skip


def _prepare_folder(
    config: Config, out_dir: Path, resume: Path | None, overwrite: bool
) -> dict[str, Any] | None:
    """The checkpoint a resumed run continues (its config checked against ``config``), after
    the checks a fresh run makes; temporaries of a killed save are removed."""
    checkpoint = None
    if resume is not None:
        checkpoint = ckpt.load_checkpoint(resume)
        check_resume_config(config, checkpoint.get("config"), resume)
    elif not overwrite:
        check_fresh(out_dir)
    _check_memory(config)
    clean_temporaries(out_dir)
    return checkpoint


def _model(
    config: Config, device: torch.device, info: DistInfo, load_from: Any, encoder_weights: bool
) -> nn.Module:
    """The plain model on ``device``: built, initialised (``_initialise``), laid out as asked."""
    model = ckpt.build_from_config(config, encoder_weights=encoder_weights)
    _initialise(model, config, load_from, info)
    model.to(device)
    if config.run.channels_last:
        model.to(memory_format=torch.channels_last)
    if info.world_size > 1 and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def _wrap(model: nn.Module, config: Config, info: DistInfo, device: torch.device) -> nn.Module:
    """What the step calls: the model, or its DDP and/or compiled wrapper."""
    net: nn.Module = model
    if info.world_size > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if config.run.compile:
        net = torch.compile(net)  # type: ignore[assignment]
    return net


# What a resumed run takes from its checkpoint rather than from the config: the optimiser's
# state holds lr, momentum and weight decay, the scheduler's its base rate and step, the RNG
# states the seed's streams, and the weights the architecture. A new value for one of these on
# --resume would be recorded in config.yaml while the run kept the old one: it is refused.
FIXED_ON_RESUME = {
    "model": ("name", "encoder", "width", "skip_channels", "num_classes"),
    "optim": (
        "optimizer", "lr", "momentum", "weight_decay", "schedule", "milestones", "gamma",
        "power", "warmup_iters", "warmup_factor",
    ),
    "run": ("seed",),
}  # fmt: skip


def check_resume_config(config: Config, saved: Any, source: str | Path) -> None:
    """Refuse to resume with a changed ``FIXED_ON_RESUME`` value (the others, such as
    ``optim.iterations``, the data, the loss and the intervals, may change)."""
    if not isinstance(saved, dict):
        return
    changed = []
    for section, keys in FIXED_ON_RESUME.items():
        old_part, new_part = saved.get(section), getattr(config, section)
        if not isinstance(old_part, dict):
            continue
        for key in keys:
            old, new = old_part.get(key), getattr(new_part, key)
            if key in old_part and new is not None and old != new:
                changed.append(f"{section}.{key} {quote(old)} -> {quote(new)}")
    if changed:
        raise LrnetError(
            f"--resume keeps the settings of {source}, which its optimiser, schedule and RNG "
            f"states carry, but the config changes {', '.join(changed)}; resume without the "
            f"change, or start a new run from its weights: --load-from {source} with another "
            "run.out_dir"
        )


def _datasets(
    config: Config, info: DistInfo
) -> tuple[data.SegmentationDataset, data.SegmentationDataset]:
    """The train and val splits; the root is made absolute and the class count filled in."""
    config.data.root = str(Path(config.data.root).expanduser().resolve())
    if info.is_main:  # synthetic data: one writer; the other ranks wait, then read
        data.build(config.data, config.data.train_split, generate=True)
    barrier()
    train_set = data.build(config.data, config.data.train_split, train=True)
    val_set = data.build(config.data, config.data.val_split)
    num_classes = len(train_set.classes)
    if config.model.num_classes is None:
        config.model.num_classes = num_classes
    elif config.model.num_classes != num_classes:
        raise LrnetError(
            f"model.num_classes={config.model.num_classes} but dataset {config.data.dataset!r} has "
            f"{num_classes} classes; remove model.num_classes or set it to {num_classes}"
        )
    return train_set, val_set


def _check_memory(config: Config) -> None:
    """A crop and batch size whose first block alone cannot fit is refused before any work."""
    d = config.data
    channels = scaled_width(64, config.model.width)
    check_fits(
        run_bytes(d.batch_size, d.crop_size[0], d.crop_size[1], channels, training=True),
        f"data.crop_size={list(d.crop_size)} with data.batch_size={d.batch_size}",
        "lower data.crop_size or data.batch_size",
        resolve_device(config.run.device),
    )
    if d.base_size is not None:  # one image at a time, resized before the crop
        check_fits(
            run_bytes(1, d.base_size[0], d.base_size[1], 0),
            f"data.base_size={list(d.base_size)}",
            "lower data.base_size",
        )


def _initialise(model: nn.Module, config: Config, load_from: Any, info: DistInfo) -> None:
    """``--load-from`` (every weight must fit) or ``model.init`` (the weights that fit)."""
    source = load_from or config.model.init
    if source is None:
        return
    loaded, fresh = pretrained.init_from(model, source, strict=load_from is not None)
    if info.is_main:
        print(f"initialised from {source}: {len(loaded)} tensors loaded", end="")
        print(f", {len(fresh)} started afresh ({', '.join(fresh)})" if fresh else "")


def _loaders(
    config: Config,
    info: DistInfo,
    device: torch.device,
    state: TrainState,
    train_set: data.SegmentationDataset,
    val_set: data.SegmentationDataset,
) -> tuple[ResumableSampler, DataLoader, DataLoader]:
    d = config.data
    sampler = ResumableSampler(train_set, info, shuffle=True, seed=config.run.seed, drop_last=True)
    if len(sampler) < d.batch_size:
        raise LrnetError(
            f"the {d.train_split!r} split has {len(train_set)} samples, fewer than one batch "
            f"of {d.batch_size} per process; lower data.batch_size"
        )
    # Worker seeds come from this; offset by the iteration so a resumed run does not replay the
    # first epoch's augmentations (exact replay is guaranteed with num_workers=0 only).
    seed = config.run.seed + info.rank + 1_000_003 * state.iteration
    loader = data.loader(
        train_set, d.batch_size, d.num_workers, sampler,
        drop_last=True, pin_memory=device.type == "cuda", seed=seed,
    )  # fmt: skip
    val_loader = data.loader(val_set, 1, d.num_workers, ShardSampler(len(val_set), info))
    return sampler, loader, val_loader
