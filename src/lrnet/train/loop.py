"""The training loop: ``train_step``, ``validate``, ``save`` and ``train``, which runs them."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lrnet import checkpoint as ckpt
from lrnet._distributed import barrier, cleanup_distributed
from lrnet._errors import LrnetError
from lrnet.config import Config
from lrnet.evaluate import evaluate
from lrnet.train.folder import BEST, LAST, OldRun, check_outputs
from lrnet.train.run import Run, setup


def train_step(run: Run, images: Tensor, masks: Tensor) -> Tensor:
    """One optimisation step; returns the detached total and per-stage losses, ``(1 + S,)``."""
    images = images.to(run.device, non_blocking=True)
    masks = masks.to(run.device, non_blocking=True)
    if run.config.run.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(run.device.type, run.amp_dtype, enabled=run.amp_dtype is not None):
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
