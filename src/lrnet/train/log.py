"""``RunLog``: rank 0's record of a run (history.jsonl, TensorBoard, a progress bar or log lines)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lrnet._distributed import DistInfo
from lrnet._files import write_text
from lrnet.config import Config
from lrnet.report import read_records
from lrnet.train.folder import HISTORY


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
