"""Training (``lrnet train CONFIG key=value ...``): an explicit loop, resumable, single- or multi-process."""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from lrnet import _runtime
from lrnet._distributed import (
    DistInfo,
    ResumableSampler,
    ShardSampler,
    barrier,
    cleanup_distributed,
    init_distributed,
)
from lrnet._errors import LrnetError
from lrnet.checkpoint import load_checkpoint, load_model, save_checkpoint, training_state
from lrnet.config import Config, dump_config, load_config
from lrnet.evaluate import evaluate
from lrnet.loss import StageLoss
from lrnet.models import build_model
from lrnet.schedule import lr_factor

LAST, BEST = "last.pt", "best.pt"


@dataclass
class TrainState:
    """Where a run stands; saved in every checkpoint so a killed run resumes exactly."""

    iteration: int = 0
    epoch: int = 0
    samples_in_epoch: int = 0  # samples this rank has consumed in the current epoch
    best_miou: float = -1.0


def build_optimizer(model: nn.Module, config: Config) -> torch.optim.Optimizer:
    """SGD (the paper's) or AdamW; no weight decay on BatchNorm parameters and biases."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    o = config.optim
    groups = [
        {"params": decay, "weight_decay": o.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if o.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum)
    return torch.optim.AdamW(groups, lr=o.lr)


def resolve_class_weights(
    config: Config, dataset: Any, out_dir: Path, info: DistInfo
) -> list[float] | None:
    """Per-class loss weights: a list from the config, or computed from the training split once."""
    spec = config.data.class_weights
    num_classes = len(dataset.classes)
    if isinstance(spec, str):
        d = config.data
        source = {"method": spec, "dataset": d.dataset, "root": d.root, "split": d.train_split}
        cache = out_dir / "class_weights.json"
        if info.is_main:  # the one writer; the other ranks read after the barrier
            cached = json.loads(cache.read_text()) if cache.exists() else {}
            if cached.get("source") != source:
                from lrnet.data.class_weights import compute_class_weights

                weights = compute_class_weights(dataset, method=spec)
                cache.write_text(json.dumps({"source": source, "weights": weights}))
        barrier()
        spec = [float(w) for w in json.loads(cache.read_text())["weights"]]
    if spec is not None and len(spec) != num_classes:
        raise LrnetError(
            f"data.class_weights has {len(spec)} values but the dataset has {num_classes} classes"
        )
    return spec


def autocast_dtype(config: Config, device: torch.device) -> torch.dtype | None:
    if config.run.amp == "none":
        return None
    if config.run.amp == "fp16":
        if device.type != "cuda":
            raise LrnetError("run.amp=fp16 needs a CUDA GPU; use run.amp=bf16 on CPU")
        return torch.float16
    return torch.bfloat16


class RunLog:
    """Rank 0's record of a run: JSON lines, TensorBoard (when installed) and the progress bar."""

    def __init__(self, out_dir: Path, config: Config, info: DistInfo, initial: int):
        self.enabled = info.is_main
        self.path = out_dir / "history.jsonl"
        self.writer: Any = None
        self.bar: Any = None
        if not self.enabled:
            return
        # A fresh run starts the log afresh; a resumed one keeps what came before its checkpoint.
        kept = []
        if initial > 0 and self.path.exists():
            lines = self.path.read_text().splitlines()
            kept = [line for line in lines if line and json.loads(line)["iteration"] <= initial]
        self.path.write_text("".join(line + "\n" for line in kept))
        if config.run.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(out_dir / "tensorboard"))
            except ImportError:
                print(
                    "tensorboard is not installed; logging to history.jsonl only (pip install lrnet[tensorboard])"
                )
        if config.run.progress:
            self.bar = tqdm(
                total=config.optim.iterations, initial=initial, desc="train", dynamic_ncols=True
            )

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
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

    def progress(self, steps: int, loss: float, stage_losses: list[float]) -> None:
        if self.bar is not None:
            self.bar.update(steps)
            stages = " ".join(f"{v:.2f}" for v in stage_losses)
            self.bar.set_postfix_str(f"loss {loss:.3f} [{stages}]")

    def message(self, text: str) -> None:
        if self.enabled:
            (self.bar.write if self.bar is not None else print)(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _batches_forever(
    loader: Any, sampler: ResumableSampler, state: TrainState
) -> Iterator[tuple[Any, Any]]:
    """Batches across epochs; the sampler starts where the state says, so resumed runs continue exactly."""
    sampler.set_epoch(state.epoch)
    sampler.skip(state.samples_in_epoch)
    while True:
        yield from loader
        state.epoch += 1
        state.samples_in_epoch = 0
        sampler.set_epoch(state.epoch)


def _finite_or_stop(loss: torch.Tensor, state: TrainState, out_dir: Path, info: DistInfo) -> None:
    finite = torch.isfinite(loss.detach()).float()
    if info.world_size > 1:  # all ranks stop together rather than hang in the next all-reduce
        torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
    if not finite:
        raise LrnetError(
            f"the loss became {loss.item()} at iteration {state.iteration + 1}; training stopped. "
            f"The last good checkpoint is {out_dir / LAST} (if one was written); lower optim.lr, "
            "set optim.grad_clip or use run.amp=none, then resume with --resume"
        )


def train(
    config: Config,
    *,
    resume: str | Path | None = None,
    load_from: str | Path | None = None,
) -> Path:
    """Train the model a config describes; returns the run directory.

    Args:
        config: the resolved config (``load_config``).
        resume: ``"auto"`` for ``<out_dir>/last.pt``, or a checkpoint path: continue that run with
            its model, optimiser, scheduler, grad scaler, iteration, sampler position and RNG states.
        load_from: start a fresh run from these weights (a checkpoint or pretrained folder).
    """
    out_dir = Path(config.run.out_dir)
    device = _runtime.resolve_device(config.run.device)
    info = init_distributed(device.type)
    device = _runtime.resolve_device(config.run.device, info.local_rank)
    try:
        return _train(config, out_dir, device, info, resume, load_from)
    finally:
        cleanup_distributed()


def _train(
    config: Config,
    out_dir: Path,
    device: torch.device,
    info: DistInfo,
    resume: str | Path | None,
    load_from: str | Path | None,
) -> Path:
    checkpoint = None
    if resume is not None:
        path = out_dir / LAST if str(resume) == "auto" else Path(resume)
        checkpoint = load_checkpoint(path)
    _runtime.seed_everything(config.run.seed + info.rank)
    out_dir.mkdir(parents=True, exist_ok=True)

    train_set = _runtime.build_split(
        config.data, config.data.train_split, _runtime.train_transforms(config.data)
    )
    val_set = _runtime.build_split(config.data, config.data.val_split, _runtime.eval_transforms())
    classes, palette, num_classes = _runtime.dataset_meta(train_set)
    _runtime.fill_num_classes(config, num_classes)
    if info.is_main:
        dump_config(config, out_dir / "config.yaml")

    m = config.model
    assert m.num_classes is not None
    model = build_model(
        m.name,
        m.num_classes,
        encoder=m.encoder,
        width=m.width,
        skip_channels=m.skip_channels,
        encoder_weights=None if (checkpoint or load_from) else m.encoder_weights,
    )
    if load_from is not None and checkpoint is None:
        model.load_state_dict(load_model(load_from).model.state_dict())
    model.to(device)
    if config.run.channels_last:
        model.to(memory_format=torch.channels_last)
    if info.world_size > 1 and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)

    optimizer = build_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(it, config.optim))
    amp_dtype = autocast_dtype(config, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    class_weights = resolve_class_weights(config, train_set, out_dir, info)
    criterion = StageLoss(
        config.loss.stage_weights, class_weights, config.data.ignore_index, config.loss.mode
    )
    criterion.to(device)

    state = TrainState()
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        state = TrainState(**checkpoint["train_state"])
        rng = checkpoint["rng"]
        _set_rng_state(rng[info.rank] if info.rank < len(rng) else rng[0])

    net: nn.Module = model
    if info.world_size > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if config.run.compile:
        net = torch.compile(net)  # type: ignore[assignment]

    sampler = ResumableSampler(train_set, info, shuffle=True, seed=config.run.seed, drop_last=True)
    if len(sampler) < config.data.batch_size:
        raise LrnetError(
            f"the {config.data.train_split!r} split has {len(train_set)} samples, fewer than one batch of "
            f"{config.data.batch_size} per process; lower data.batch_size"
        )
    pin = device.type == "cuda"
    loader = _runtime.make_loader(
        train_set,
        config.data.batch_size,
        config.data.num_workers,
        sampler,
        drop_last=True,
        pin_memory=pin,
        # Worker seeds come from this; offset by the iteration so a resumed run does not replay
        # the first epoch's augmentations (exact replay is guaranteed with num_workers=0 only).
        seed=config.run.seed + info.rank + 1_000_003 * state.iteration,
    )
    val_loader = _runtime.make_loader(
        val_set, 1, config.data.num_workers, ShardSampler(len(val_set), info)
    )

    log = RunLog(out_dir, config, info, state.iteration)
    if info.is_main:
        log.message(
            f"training {m.name} ({sum(p.numel() for p in model.parameters()):,} parameters) on {device} "
            f"x{info.world_size}, {len(train_set)} train / {len(val_set)} val images, run dir {out_dir}"
        )

    def save(path: Path) -> None:
        rng_states = _gather_rng(info)  # every rank takes part; rank 0 writes
        if info.is_main:
            save_checkpoint(
                path,
                training_state(
                    model,
                    config,
                    classes=classes,
                    palette=palette,
                    optimizer=optimizer.state_dict(),
                    scheduler=scheduler.state_dict(),
                    scaler=scaler.state_dict(),
                    train_state=vars(state),
                    rng=rng_states,
                ),
            )

    def validate() -> None:
        if info.world_size > 1:
            # Each rank's last training step updated its own BatchNorm statistics; evaluate (and
            # save) rank 0's everywhere, as DDP would before its next forward.
            for buffer in model.buffers():
                torch.distributed.broadcast(buffer, src=0)
        stages = evaluate(
            model,
            val_loader,
            num_classes,
            device=device,
            ignore_index=config.data.ignore_index,
            eval_size=config.data.eval_size,
            autocast_dtype=amp_dtype,
        )
        record = {
            "kind": "val",
            "iteration": state.iteration,
            "stages": [{k: s[k] for k in ("global_acc", "class_acc", "miou")} for s in stages],
        }
        log.write(record)
        miou = stages[-1]["miou"]
        summary = " ".join(f"s{k + 1} {100 * s['miou']:.1f}" for k, s in enumerate(stages))
        log.message(f"iter {state.iteration}: val mIoU {summary}")
        if not math.isnan(miou) and miou > state.best_miou:
            state.best_miou = miou
            save(out_dir / BEST)

    batches = _batches_forever(loader, sampler, state)
    net.train()
    start, logged_at = time.perf_counter(), state.iteration
    running = torch.zeros(0)
    while state.iteration < config.optim.iterations:
        images, masks = next(batches)
        images = images.to(device, non_blocking=True)
        masks = masks.to(device, non_blocking=True)
        if config.run.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
        ):
            stages = net(images)
        loss, terms = criterion(stages, masks)
        _finite_or_stop(loss, state, out_dir, info)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if config.optim.grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        lr = optimizer.param_groups[0]["lr"]
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        state.iteration += 1
        state.samples_in_epoch += config.data.batch_size

        term_values = torch.stack([loss.detach(), *terms])
        running = term_values if running.numel() == 0 else running + term_values
        done = state.iteration >= config.optim.iterations
        if state.iteration % config.run.log_interval == 0 or done:
            steps = state.iteration - logged_at
            mean = (running / steps).tolist()
            log.write(
                {
                    "kind": "train",
                    "iteration": state.iteration,
                    "epoch": state.epoch,
                    "lr": lr,
                    "loss": mean[0],
                    "stage_losses": mean[1:],
                    "seconds": time.perf_counter() - start,
                }
            )
            log.progress(steps, mean[0], mean[1:])
            running, logged_at = torch.zeros(0), state.iteration
        if state.iteration % config.run.val_interval == 0 or done:
            validate()
            net.train()
        if state.iteration % config.run.checkpoint_interval == 0 or done:
            save(out_dir / LAST)
    log.close()
    barrier()
    return out_dir


def _gather_rng(info: DistInfo) -> list[Any]:
    """Every rank's RNG state, so each rank resumes its own augmentation stream."""
    state = _rng_state()
    if info.world_size == 1:
        return [state]
    gathered: list[Any] = [None] * info.world_size
    torch.distributed.all_gather_object(gathered, state)
    return gathered


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config (see configs/)")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="e.g. optim.lr=0.01 data.batch_size=4"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue a killed run from last.pt in run.out_dir"
    )
    parser.add_argument("--resume-from", metavar="CKPT", help="continue a run from this checkpoint")
    parser.add_argument("--load-from", metavar="CKPT", help="start a fresh run from these weights")


def main(args: argparse.Namespace) -> int:
    resume = args.resume_from or ("auto" if args.resume else None)
    if resume and args.load_from:
        raise LrnetError(
            "use either --resume (continue a run) or --load-from (new run from weights)"
        )
    config = load_config(args.config, args.overrides)
    out_dir = train(config, resume=resume, load_from=args.load_from)
    if os.environ.get("RANK", "0") == "0":
        print(f"done: checkpoints in {out_dir} ({LAST}, {BEST}), log {out_dir / 'history.jsonl'}")
    return 0
