"""``lrnet train CONFIG key=value ...``: train a model from a YAML config (``lrnet.train``)."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from lrnet._errors import LrnetError
from lrnet._files import written_by_lrnet
from lrnet.config import load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``lrnet train``."""
    parser.add_argument("config", help="YAML config, or the name of a shipped one (camvid_cpu)")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="e.g. optim.lr=0.01 data.batch_size=4"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue a killed run from run.out_dir/last.pt; the model, optimiser, schedule and "
        "seed must stay the run's (a change is refused; a new run: --load-from), while "
        "optim.iterations, the data, the loss and the intervals may change",
    )
    parser.add_argument("--resume-from", metavar="CKPT", help="continue a run from this checkpoint")
    parser.add_argument("--load-from", metavar="CKPT", help="start a fresh run from CKPT's weights")
    parser.add_argument("--overwrite", action="store_true", help="replace the run in run.out_dir")


def main(args: argparse.Namespace) -> int:
    """Train from the parsed ``lrnet train`` arguments; 0 when done."""
    from lrnet.train import BEST, HISTORY, LAST, train  # imports torch

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
        saved = ", ".join(written) or "no checkpoint"
        print(f"done: {saved} in {out_dir}, log {out_dir / HISTORY}")
    return 0
