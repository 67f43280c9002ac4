"""The run folder: the names of the files a run writes, and what a new run may replace in it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from lrnet._errors import LrnetError
from lrnet._files import check_replaceable
from lrnet.config import Config

LAST, BEST, HISTORY, CLASS_WEIGHTS = "last.pt", "best.pt", "history.jsonl", "class_weights.json"


def check_fresh(out_dir: Path) -> None:
    """A fresh run never replaces another run's checkpoints or history."""
    found = [name for name in (LAST, BEST, HISTORY) if (out_dir / name).exists()]
    if found:
        raise LrnetError(
            f"{out_dir} already holds a run ({', '.join(found)}); continue it with --resume, "
            "replace it with --overwrite, or set run.out_dir to a new folder"
        )


def clean_temporaries(out_dir: Path) -> None:
    """Remove the temporaries (``.last.pt.<random>.tmp`` ...) a kill mid-save left behind; the
    files they were for are intact."""
    for name in (LAST, BEST, HISTORY, CLASS_WEIGHTS) if out_dir.is_dir() else ():
        for stale in out_dir.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)


def check_outputs(config: Config, *, overwrite: bool, inputs: Sequence[Path] = ()) -> None:
    """What a run writes into ``run.out_dir`` besides its checkpoints (``config.yaml``, the class
    weights cache) may replace lrnet's files, or with ``overwrite`` any file, but never an input
    (the config file being read)."""
    cached = isinstance(config.data.class_weights, str)  # a method: weights cached in the run
    advice = "set run.out_dir to another folder, move the file, or give --overwrite"
    for name in ["config.yaml", CLASS_WEIGHTS] if cached else ["config.yaml"]:
        path = Path(config.run.out_dir) / name
        check_replaceable(path, overwrite=overwrite, inputs=inputs, advice=advice)


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
