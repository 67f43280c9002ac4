"""The flags several commands share, each defined once, and the predictor the backend flags make."""

from __future__ import annotations

import argparse
import sys
import typing
from typing import Any

from lrnet._errors import LrnetError
from lrnet.config import DatasetName
from lrnet.inference.auto import AUTO_TOLERANCE, check_threads
from lrnet.inference.backends import BACKENDS, PRECISIONS, describe, gpu_driver_loaded
from lrnet.inference.predictor import Predictor

# Every source ``lrnet.pretrained.load_model`` takes, in the words of every command's help.
MODEL_SOURCE = (
    "a zoo name such as camvid-lite (lrnet models), a .pt checkpoint, a save_pretrained folder "
    "or a Hugging Face Hub repo id (user/repo)"
)


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device``: where PyTorch runs."""
    parser.add_argument(
        "--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)"
    )


def device_of(args: argparse.Namespace) -> Any:
    """The device of ``--device``: ``"cpu"`` for cpu and for auto without a GPU driver (told
    without importing torch, so the default path stays torch-free), else the ``torch.device``."""
    if args.device == "cpu" or (args.device == "auto" and not gpu_driver_loaded()):
        return "cpu"
    from lrnet._distributed import resolve_device  # imports torch

    try:
        return resolve_device(args.device)
    except RuntimeError as exc:
        raise LrnetError(f"--device {args.device!r} is not a device: {exc}") from None


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """``--backend``, ``--precision`` and ``--threads``, shared by predict and evaluate."""
    group = parser.add_argument_group(
        "backend",
        f"auto runs the fastest path measured to keep CamVid val mIoU within {AUTO_TOLERANCE} of "
        "fp32 PyTorch on this kind of CPU (other models: their `lrnet export --int8` graph where "
        "it agreed with fp32, else ONNX Runtime fp32); int8 and bf16 run only after agreeing "
        "with fp32 on the shipped check images here (once; cached), what cannot run is skipped, "
        "and the choice is printed (docs/deploy.md).",
    )
    group.add_argument("--backend", default="auto", choices=["auto", *BACKENDS])
    group.add_argument(
        "--precision",
        default="auto",
        choices=["auto", *PRECISIONS],
        help="bf16: PyTorch autocast (AVX512-BF16 or AMX CPUs); int8: the graph of `lrnet export "
        "MODEL --int8 --calibrate ROOT` (default: auto)",
    )
    group.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="threads of ONNX Runtime / OpenVINO (default: PyTorch's, the physical cores)",
    )


def predictor_for(args: argparse.Namespace, model: Any, device: Any) -> Predictor:
    """``Predictor.from_pretrained`` with the command's backend flags; says what it runs."""
    check_threads(args.threads, "--threads")
    predictor = Predictor.from_pretrained(
        model, backend=args.backend, precision=args.precision, device=device, threads=args.threads
    )
    notes = f" ({'; '.join(predictor.notes)})" if predictor.notes else ""
    print(f"lrnet: running {describe(predictor.backend)}{notes}", file=sys.stderr)
    return predictor


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """What the dataset tools share: ``dataset root [--splits ...] [--sbd-root DIR]``."""
    parser.add_argument("dataset", choices=typing.get_args(DatasetName), help="dataset name")
    parser.add_argument("root", help="dataset root folder")
    parser.add_argument("--sbd-root", default=None, help="SBD root (voc split trainaug)")


def add_overwrite_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """The ``--overwrite`` flag of a command whose output ``what`` may be a user's file."""
    text = f"replace {what} that lrnet did not write (never an input)"
    parser.add_argument("--overwrite", action="store_true", help=text)
