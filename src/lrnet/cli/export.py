"""The ``lrnet export`` command: a model as an ONNX file (fp32 or int8), checked against PyTorch."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lrnet._errors import LrnetError
from lrnet._files import atomic_write, check_replaceable
from lrnet.cli.common import MODEL_SOURCE, add_overwrite_argument
from lrnet.inference.backends import OnnxRuntimeBackend
from lrnet.inference.export import (
    MAX_OUTLIER_FRACTION,
    VERIFY_TOLERANCE,
    check_opset,
    check_sizes,
    export_onnx,
    model_metadata,
    verify_onnx,
    write_metadata,
    written_opset,
)
from lrnet.inference.graphs import (
    CALIBRATION_IMAGES,
    cached_int8,
    cached_onnx,
    calibration_images,
    weights_fingerprint,
)
from lrnet.inference.image import MIN_SIZE, load_image
from lrnet.inference.predictor import Predictor

if TYPE_CHECKING:
    from lrnet.pretrained import LoadedModel


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``lrnet export``."""
    parser.epilog = (
        "The graph takes raw RGB in [0, 1] (normalisation is inside) of shape (batch, 3, height, "
        "width), all dynamic, sides >= 32, and returns the final logits (batch, C, height, width), "
        "or with --all-stages s1 .. s6 coarse to fine; its metadata holds classes, palette, run "
        "size and this contract (docs/deploy.md). --int8 makes the graph `--precision int8` runs, "
        "cached under $LRNET_HOME (default ~/.cache/lrnet)."
    )
    parser.add_argument("checkpoint", metavar="MODEL", help=MODEL_SOURCE)
    parser.add_argument(
        "--onnx",
        type=Path,
        metavar="FILE",
        help="ONNX file to write (default: only the cache, whose path is printed)",
    )
    add_overwrite_argument(parser, "an --onnx file")
    parser.add_argument(
        "--all-stages", action="store_true", help="output every stage, not only the final logits"
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="static post-training int8 quantisation (ONNX Runtime QDQ, per-channel weights)",
    )
    parser.add_argument(
        "--calibrate",
        metavar="ROOT",
        help="--int8: a folder of training images, or a root of the model's dataset (its train "
        "split)",
    )
    parser.add_argument(
        "--calibration-images",
        type=int,
        default=CALIBRATION_IMAGES,
        metavar="N",
        help=f"--int8: images to calibrate on, evenly spaced (default {CALIBRATION_IMAGES})",
    )
    parser.add_argument(
        "--height",
        type=int,
        help="example input height for tracing (default: the config's eval, else crop size)",
    )
    parser.add_argument("--width", type=int, help="example input width (see --height)")
    parser.add_argument("--opset", type=int, help="ONNX opset version (default: the exporter's)")
    parser.add_argument(
        "--verify",
        action="store_true",
        help=f"compare onnxruntime with PyTorch at two sizes; exit 2 unless the logits agree "
        f"within {VERIFY_TOLERANCE:g} (SegNet: at all but {100 * MAX_OUTLIER_FRACTION:g}%% of "
        "pixels); --int8: print the share of labels equal to fp32 PyTorch on calibration images",
    )


def _example_size(args: argparse.Namespace, default: Sequence[int]) -> tuple[int, int]:
    height = args.height if args.height is not None else int(default[0])
    width = args.width if args.width is not None else int(default[1])
    if min(height, width) < MIN_SIZE:
        raise LrnetError(f"--height and --width must be at least {MIN_SIZE}, got {height}x{width}")
    return height, width


def _export_int8(args: argparse.Namespace, loaded: LoadedModel) -> None:
    """``--int8``: the cached quantised graph (made first if needed), copied to ``--onnx``."""
    if args.calibrate is None:
        raise LrnetError("--int8 needs --calibrate ROOT: the training images to calibrate on")
    start = time.perf_counter()
    path = cached_int8(loaded, args.calibrate, images=args.calibration_images, progress=print)
    seconds = time.perf_counter() - start
    print(f"int8 graph {path} ({path.stat().st_size / 2**20:.1f} MiB, {seconds:.1f} s)")
    if args.verify:
        files = calibration_images(args.calibrate, loaded, min(8, args.calibration_images))
        size = loaded.config.data.eval_size
        reference = Predictor(loaded.model, eval_size=size)
        quantised = Predictor(
            OnnxRuntimeBackend(path, "int8"),
            eval_size=size,
            num_classes=loaded.config.model.num_classes,
        )
        same = total = 0
        for file in files:
            image = load_image(file)
            expected, got = reference.predict(image).labels, quantised.predict(image).labels
            same += int((expected == got).sum())
            total += expected.size
        share = 100 * same / total
        print(f"int8 labels equal to fp32 PyTorch on {len(files)} images: {share:.2f}%")
    if args.onnx is not None:
        atomic_write(Path(args.onnx), lambda f: f.write(path.read_bytes()))
        print(f"wrote {args.onnx}")


def _check_flags(args: argparse.Namespace) -> None:
    """Refuse flags that cannot go together, and an ``--onnx`` that is an input, before any work."""
    check_opset(args.opset)
    if args.int8:
        fp32_only = {"--opset": args.opset, "--height": args.height, "--width": args.width}
        given = [flag for flag, value in fp32_only.items() if value is not None]
        given += ["--all-stages"] if args.all_stages else []
        if given:
            raise LrnetError(
                f"{', '.join(given)} apply to the fp32 export, not to --int8 (its graph always "
                "has every stage and is made from the cached fp32 one); leave them out"
            )
    elif args.calibrate is not None:
        raise LrnetError("--calibrate applies to --int8")
    if args.onnx is not None:
        given = [args.checkpoint] + ([args.calibrate] if args.calibrate else [])
        inputs = [Path(p) for p in given if Path(p).exists()]
        check_replaceable(args.onnx, overwrite=args.overwrite, inputs=inputs)


def main(args: argparse.Namespace) -> int:
    """Export ``MODEL`` (fp32 to ``--onnx`` or the cache, or int8 with ``--int8``); 0 when done."""
    from lrnet.pretrained import load_model  # imports torch: after --help

    _check_flags(args)
    loaded = load_model(args.checkpoint)
    if args.int8:
        _export_int8(args, loaded)
        return 0
    data = loaded.config.data
    height, width = _example_size(args, data.eval_size or data.crop_size)
    all_stages = args.all_stages
    if args.onnx is None:
        path, all_stages = cached_onnx(loaded), True
        print(f"fp32 all-stages graph {path} (cached; --onnx FILE writes a copy elsewhere)")
    else:

        def write(tmp: Path) -> None:
            export_onnx(
                loaded.model,
                tmp,
                all_stages=all_stages,
                example_size=(height, width),
                opset=args.opset,
            )
            if args.opset is not None and written_opset(tmp) != args.opset:
                raise LrnetError(
                    f"the exporter wrote opset {written_opset(tmp)}, not the --opset "
                    f"{args.opset} asked for; nothing was written: leave --opset out"
                )
            meta = model_metadata(loaded, precision="fp32", fingerprint=weights_fingerprint(loaded))
            write_metadata(tmp, meta)

        path = atomic_write(Path(args.onnx), write, by_path=True)
        size_mb = path.stat().st_size / 2**20
        name = loaded.config.model.name
        print(f"wrote {path} ({size_mb:.1f} MiB, {name}, example {height}x{width})")
    if args.verify:
        _verify(path, loaded, (height, width), all_stages)
    return 0


def _verify(path: Path, loaded: LoadedModel, size: tuple[int, int], all_stages: bool) -> None:
    """``--verify``: ONNX Runtime against PyTorch at the example size and another one."""
    import torch

    generator = torch.Generator().manual_seed(0)
    for n, h, w in check_sizes(*size):
        images = torch.rand(n, 3, h, w, generator=generator)
        parity = verify_onnx(path, loaded.model, images, all_stages=all_stages)
        print(
            f"onnxruntime vs PyTorch at {n}x3x{h}x{w}: max abs diff {parity.max_abs_diff:.3g}, "
            f"pixels over {VERIFY_TOLERANCE:g}: {100 * parity.outlier_fraction:.3f}%, "
            f"same labels: {100 * parity.label_agreement:.3f}%"
        )
        if not parity.ok:
            raise LrnetError(f"{path} does not reproduce PyTorch at {n}x3x{h}x{w} (see above)")
