"""Training (``lrnet train CONFIG key=value ...``): ``setup``, ``train_step``, ``validate``, ``save``, a loop.

One sample's path: ``lrnet.data.build`` reads and augments it, ``train_step`` runs the model and
``StageLoss`` scores all six stages, ``validate`` scores every stage on the val split with
``evaluate``, and ``save`` writes the checkpoint that ``lrnet.checkpoint`` reads back.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shlex
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from lrnet import checkpoint as ckpt
from lrnet import data, pretrained
from lrnet._distributed import (
    DistInfo,
    ResumableSampler,
    ShardSampler,
    barrier,
    cleanup_distributed,
    init_distributed,
    resolve_device,
)
from lrnet._errors import LrnetError
from lrnet._memory import check_fits, run_bytes
from lrnet.config import Config, dump_config, load_config, quote
from lrnet.data.class_weights import compute_class_weights, masks_fingerprint
from lrnet.evaluate import evaluate
from lrnet.inference.outputs import check_replaceable, write_text, written_by_lrnet
from lrnet.loss import StageLoss
from lrnet.models.encoder import scaled_width
from lrnet.report import read_records
from lrnet.schedule import lr_factor

LAST, BEST, HISTORY, CLASS_WEIGHTS = "last.pt", "best.pt", "history.jsonl", "class_weights.json"


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


class RunLog:
    """Rank 0's record of a run: JSON lines, TensorBoard (when installed), progress or log lines."""

    def __init__(self, out_dir: Path, config: Config, info: DistInfo, initial: int):
        self.enabled = info.is_main
        self.path = out_dir / HISTORY
        self.total = config.optim.iterations
        self.writer: Any = None
        self.bar: Any = None
        if not self.enabled:
            return
        # A fresh run starts the log afresh; a resumed one keeps what came before its checkpoint
        # (a line torn by a kill counts as absent).
        old = read_records(self.path) if initial and self.path.is_file() else []
        kept = [r for r in old if r["iteration"] <= initial]
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        if config.run.tensorboard is not False:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(out_dir / "tensorboard"))
            except ImportError:
                if config.run.tensorboard:  # asked for explicitly
                    print("tensorboard is not installed (pip install lrnet[tensorboard])")
        if config.run.progress and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=initial, desc="train", dynamic_ncols=True)

    def write(self, record: dict[str, Any]) -> None:
        """Append one record to history.jsonl (and TensorBoard)."""
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is None:
            return
        step = record["iteration"]
        if record["kind"] == "train":
            self.writer.add_scalar("train/loss", record["loss"], step)
            self.writer.add_scalar("train/lr", record["lr"], step)
            for k, v in enumerate(record["stage_losses"]):
                self.writer.add_scalar(f"train/loss_s{k + 1}", v, step)
        else:
            for k, s in enumerate(record["stages"]):
                for name in ("global_acc", "class_acc", "miou"):
                    self.writer.add_scalar(f"val/{name}_s{k + 1}", s[name], step)

    def progress(self, record: dict[str, Any], steps: int, seconds: float) -> None:
        """The progress bar on a terminal, else one plain line per log interval."""
        stages = " ".join(f"{v:.2f}" for v in record["stage_losses"])
        text = f"loss {record['loss']:.3f} [{stages}]"
        if self.bar is not None:
            self.bar.update(steps)
            self.bar.set_postfix_str(text)
        elif self.enabled:
            print(
                f"iter {record['iteration']}/{self.total} {text} lr {record['lr']:.3g} "
                f"{seconds / max(steps, 1):.2f} s/it",
                flush=True,
            )

    def message(self, text: str) -> None:
        if self.enabled:
            (self.bar.write if self.bar is not None else print)(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


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
    checkpoint = None
    if resume is not None:
        resume = out_dir / LAST if resume == "auto" else Path(resume)
        checkpoint = ckpt.load_checkpoint(resume)
        check_resume_config(config, checkpoint.get("config"), resume)
    elif not overwrite:
        _check_fresh(out_dir)
    _check_memory(config)
    _clean_temporaries(out_dir)
    random.seed(config.run.seed + info.rank)
    torch.manual_seed(config.run.seed + info.rank)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_set, val_set = _datasets(config, info)
    if info.is_main:
        dump_config(config, out_dir / "config.yaml")

    fresh = checkpoint is None and load_from is None and config.model.init is None
    model = ckpt.build_from_config(config, encoder_weights=fresh)
    _initialise(model, config, load_from, info)
    model.to(device)
    if config.run.channels_last:
        model.to(memory_format=torch.channels_last)
    if info.world_size > 1 and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = build_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(it, config.optim))
    amp_dtype = autocast_dtype(config, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    weights = class_weights(config, train_set, out_dir, info)
    criterion = StageLoss(
        config.loss.stage_weights, weights, config.data.ignore_index, config.loss.mode
    ).to(device)
    state = TrainState()
    if checkpoint is not None:
        parts = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
        assert resume is not None
        state = TrainState(**ckpt.restore_training(checkpoint, Path(resume), info.rank, **parts))
    sampler, loader, val_loader = _loaders(config, info, device, state, train_set, val_set)
    net: nn.Module = model
    if info.world_size > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if config.run.compile:
        net = torch.compile(net)  # type: ignore[assignment]
    log = RunLog(out_dir, config, info, state.iteration)
    log.message(
        f"training {config.model.name} ({sum(p.numel() for p in model.parameters()):,} parameters) "
        f"on {device} x{info.world_size}, {len(train_set)} train / {len(val_set)} val images, "
        f"run dir {out_dir}"
    )
    return Run(
        config, out_dir, device, info, model, net, optimizer, scheduler, scaler, criterion,
        amp_dtype, train_set, sampler, loader, val_loader, state, log,
        None if checkpoint is None else checkpoint.get("command"),
    )  # fmt: skip


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
    """Refuse to resume with a changed value the checkpoint's state would override.

    ``optim.iterations`` (train longer or shorter), the data, the loss and the run's intervals
    may change; a change of a ``FIXED_ON_RESUME`` key is one line naming each key with its old
    and new value and what to do instead.
    """
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


def _check_fresh(out_dir: Path) -> None:
    """A fresh run never replaces another run's checkpoints or history."""
    found = [name for name in (LAST, BEST, HISTORY) if (out_dir / name).exists()]
    if found:
        raise LrnetError(
            f"{out_dir} already holds a run ({', '.join(found)}); continue it with --resume, "
            "replace it with --overwrite, or set run.out_dir to a new folder"
        )


def _clean_temporaries(out_dir: Path) -> None:
    """Temporary files a kill mid-save left behind (the files they were for are intact).

    Only ``atomic_write``'s names for the files a run writes: ``.last.pt.<random>.tmp`` ...
    """
    for name in (LAST, BEST, HISTORY, CLASS_WEIGHTS) if out_dir.is_dir() else ():
        for stale in out_dir.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)


def check_outputs(config: Config, *, overwrite: bool, inputs: Sequence[Path] = ()) -> None:
    """What a run writes into ``run.out_dir`` besides its checkpoints (``config.yaml``, the class
    weights cache) may replace lrnet's files, or with ``overwrite`` any file, but never an input
    (the config file being read)."""
    out_dir = Path(config.run.out_dir)
    names = ["config.yaml"] + (
        [CLASS_WEIGHTS] if isinstance(config.data.class_weights, str) else []
    )
    for name in names:
        check_replaceable(
            out_dir / name,
            overwrite=overwrite,
            inputs=inputs,
            advice="set run.out_dir to another folder, move the file, or give --overwrite",
        )


class OldRun:
    """The run ``--overwrite`` replaces: moved into a hidden folder of ``out_dir`` until the new
    run has written its first checkpoint (then deleted), and moved back if the new run fails
    before that, so a failed start never loses both runs."""

    NAMES = (LAST, BEST, HISTORY, "config.yaml", CLASS_WEIGHTS, "tensorboard")

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.aside = out_dir / ".lrnet-replaced-run"
        if self.aside.exists():
            raise LrnetError(
                f"{self.aside} holds the run an interrupted --overwrite set aside; move its "
                f"files back into {out_dir} (or delete it), then run again"
            )
        self.moved = [n for n in self.NAMES if (out_dir / n).exists() or (out_dir / n).is_symlink()]
        if self.moved:
            self.aside.mkdir()
            for name in self.moved:
                os.replace(out_dir / name, self.aside / name)

    def discard(self) -> None:
        """The new run has a checkpoint: delete the old run."""
        shutil.rmtree(self.aside, ignore_errors=True)
        self.moved = []

    def restore(self) -> None:
        """The new run failed before its first checkpoint: put the old run back as it was."""
        if not self.moved:
            return
        for name in self.NAMES:  # what the new run wrote under the old run's names
            new = self.out_dir / name
            if new.is_dir() and not new.is_symlink():
                shutil.rmtree(new)
            else:
                new.unlink(missing_ok=True)
        for name in self.moved:
            os.replace(self.aside / name, self.out_dir / name)
        self.aside.rmdir()
        self.moved = []


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


def train_step(run: Run, images: Tensor, masks: Tensor) -> Tensor:
    """One optimisation step; returns the detached total and per-stage losses, ``(1 + S,)``."""
    images = images.to(run.device, non_blocking=True)
    masks = masks.to(run.device, non_blocking=True)
    if run.config.run.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(
        run.device.type, dtype=run.amp_dtype or torch.float32, enabled=run.amp_dtype is not None
    ):
        stages = run.net(images)
    loss, terms = run.criterion(stages, masks)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if run.config.optim.grad_clip:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.model.parameters(), run.config.optim.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    run.state.iteration += 1
    run.state.samples_in_epoch += run.config.data.batch_size
    return torch.stack([loss.detach(), *terms])


def validate(run: Run) -> None:
    """Score every stage on the val split, log it, and keep the best final stage in best.pt."""
    if run.info.world_size > 1:
        # Each rank's last step updated its own BatchNorm statistics; evaluate (and save) rank
        # 0's everywhere, as DDP would before its next forward.
        for buffer in run.model.buffers():
            torch.distributed.broadcast(buffer, src=0)
    stages = evaluate(
        run.model,
        run.val_loader,
        len(run.train_set.classes),
        device=run.device,
        ignore_index=run.config.data.ignore_index,
        eval_size=run.config.data.eval_size,
        autocast_dtype=run.amp_dtype,
    )
    metrics = [{k: s[k] for k in ("global_acc", "class_acc", "miou")} for s in stages]
    run.log.write({"kind": "val", "iteration": run.state.iteration, "stages": metrics})
    summary = " ".join(f"s{k + 1} {100 * s['miou']:.1f}" for k, s in enumerate(stages))
    run.log.message(f"iter {run.state.iteration}: val mIoU {summary}")
    miou = stages[-1]["miou"]
    if not math.isnan(miou) and miou > run.state.best_miou:
        run.state.best_miou = miou
        save(run, run.out_dir / BEST)
    run.net.train()


def save(run: Run, path: Path) -> None:
    """Write a checkpoint of the run atomically (every rank takes part; rank 0 writes)."""
    rng: list[Any] = [ckpt.capture_rng()]
    if run.info.world_size > 1:  # every rank's RNG, so each resumes its own augmentation stream
        rng = [None] * run.info.world_size
        torch.distributed.all_gather_object(rng, ckpt.capture_rng())
    if not run.info.is_main:
        return
    state = ckpt.training_state(
        run.model,
        run.config,
        classes=run.train_set.classes,
        palette=run.train_set.palette,
        optimizer=run.optimizer.state_dict(),
        scheduler=run.scheduler.state_dict(),
        scaler=run.scaler.state_dict(),
        train_state=vars(run.state),
        rng=rng,
        command=run.command,
    )
    ckpt.save_checkpoint(path, state)
    if run.old_run is not None:  # the new run has a checkpoint: the old one may go now
        run.old_run.discard()
        run.old_run = None


def _check_finite(run: Run, losses: Tensor) -> None:
    """Stop every rank together when the loss is no longer finite (checked per log interval)."""
    finite = torch.isfinite(losses[:1]).all().float()
    if run.info.world_size > 1:  # all ranks stop together rather than hang in the next all-reduce
        torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
    if not finite:
        raise LrnetError(
            f"the loss became {losses[0].item()} by iteration {run.state.iteration}; training "
            f"stopped. The last good checkpoint is {run.out_dir / LAST} (if one was written); "
            "lower optim.lr, set optim.grad_clip or use run.amp=none, then resume with --resume"
        )


def _batches_forever(run: Run) -> Iterator[tuple[Tensor, Tensor]]:
    """Batches across epochs; the sampler starts where the state says, so resumed runs continue exactly."""
    run.sampler.set_epoch(run.state.epoch)
    run.sampler.skip(run.state.samples_in_epoch)
    while True:
        yield from run.loader
        run.state.epoch += 1
        run.state.samples_in_epoch = 0
        run.sampler.set_epoch(run.state.epoch)


def train(
    config: Config,
    *,
    resume: str | Path | None = None,
    load_from: str | Path | None = None,
    overwrite: bool = False,
    inputs: Sequence[Path] = (),
    command: str | None = None,
) -> Path:
    """Train the model a config describes (see ``setup`` for the arguments); returns the run folder.

    ``overwrite`` replaces the run in ``run.out_dir``: it is set aside (``OldRun``) and deleted
    once the new run has written its first checkpoint, or put back if the new run fails first.
    ``inputs`` (the config file) are never replaced. ``command``, the command that starts a
    fresh run, is kept in its checkpoints (a resumed run keeps the one its checkpoint holds).
    """
    config.run.out_dir = str(Path(config.run.out_dir).expanduser())  # ~/run: the home's
    check_outputs(config, overwrite=overwrite, inputs=inputs)
    main_rank = os.environ.get("RANK", "0") == "0"
    old_run = OldRun(Path(config.run.out_dir)) if overwrite and main_rank else None
    try:
        run = setup(config, resume=resume, load_from=load_from, overwrite=overwrite)
        run.old_run = old_run
        if resume is None:
            run.command = command
        _loop(run)
    except BaseException:
        if old_run is not None:
            old_run.restore()  # nothing to do once the new run has a checkpoint
        raise
    return run.out_dir


def _loop(run: Run) -> None:
    """Steps until ``optim.iterations``: logging, validation and checkpoints at their intervals."""
    config, c = run.config, run.config.run
    try:
        batches = _batches_forever(run)
        running, since, start = torch.zeros(0), run.state.iteration, time.perf_counter()
        logged_seconds = 0.0
        run.net.train()
        while run.state.iteration < config.optim.iterations:
            lr = run.optimizer.param_groups[0]["lr"]
            losses = train_step(run, *next(batches))
            running = losses if running.numel() == 0 else running + losses
            it, done = run.state.iteration, run.state.iteration >= config.optim.iterations
            if it % c.log_interval == 0 or it % c.checkpoint_interval == 0 or done:
                _check_finite(run, running)
            if it % c.log_interval == 0 or done:
                mean = (running / (it - since)).tolist()
                seconds = time.perf_counter() - start
                record = {"kind": "train", "iteration": it, "epoch": run.state.epoch, "lr": lr,
                          "loss": mean[0], "stage_losses": mean[1:], "seconds": seconds}  # fmt: skip
                run.log.write(record)
                run.log.progress(record, it - since, seconds - logged_seconds)
                running, since, logged_seconds = torch.zeros(0), it, seconds
            if it % c.val_interval == 0 or done:
                validate(run)
            if it % c.checkpoint_interval == 0 or done:
                save(run, run.out_dir / LAST)
        barrier()
    finally:
        run.log.close()
        cleanup_distributed()


def main(args: argparse.Namespace) -> int:
    if args.resume and args.resume_from:
        raise LrnetError("give --resume (run.out_dir/last.pt) or --resume-from CKPT, not both")
    resume = args.resume_from or ("auto" if args.resume else None)
    if resume and (args.load_from or args.overwrite):
        raise LrnetError("--resume continues a run; --load-from and --overwrite start a new one")
    config = load_config(args.config, args.overrides)
    given = Path(args.config).expanduser()
    # The config file is never replaced by the resolved one, unless it is lrnet's own (a run's).
    inputs = [given] if given.is_file() and not written_by_lrnet(given) else []
    recipe = ["lrnet", "train", args.config, *args.overrides]
    recipe += ["--load-from", str(args.load_from)] if args.load_from else []
    out_dir = train(
        config,
        resume=resume,
        load_from=args.load_from,
        overwrite=args.overwrite,
        inputs=inputs,
        command=shlex.join(recipe),
    )
    if os.environ.get("RANK", "0") == "0":
        written = [name for name in (LAST, BEST) if (out_dir / name).exists()]
        print(
            f"done: {', '.join(written) or 'no checkpoint'} in {out_dir}, log {out_dir / HISTORY}"
        )
    return 0
