"""``lrnet train CONFIG key=value ...``: the command's ``main``."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from lrnet._errors import LrnetError
from lrnet.config import load_config
from lrnet.inference.outputs import written_by_lrnet
from lrnet.train.folder import BEST, HISTORY, LAST
from lrnet.train.loop import train


def main(args: argparse.Namespace) -> int:
    """Train from the parsed ``lrnet train`` arguments (declared in ``lrnet.cli``); 0 when done."""
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
