"""ONNX export with dynamic batch, height and width, checked against PyTorch (``lrnet export``)."""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from lrnet._errors import LrnetError

INPUT_NAME = "images"
MIN_SIZE = 32  # the networks' total stride; the exported graph needs H, W >= 32 too
VERIFY_TOLERANCE = 1e-3  # logit difference --verify accepts everywhere (float32 gives ~1e-6)
MAX_OUTLIER_FRACTION = 1e-3  # ... or at this fraction of pixels (see OnnxParity.ok)


class OnnxModel(nn.Module):
    """What a deployed model returns: the final stage's logits, or every stage's.

    The wrapped model normalises internally, so the exported graph takes raw images.

    Args:
        model: returns a tuple of stage logits, coarse to fine.
        all_stages: return the whole tuple instead of the final logits.

    Shape:
        input ``(N, 3, H, W)`` RGB in [0, 1]; output ``(N, C, H, W)`` logits, or with
        ``all_stages`` one ``(N, C, H_k, W_k)`` tensor per stage (s_1 at stride 32 ... s_6 at 1).
    """

    def __init__(self, model: nn.Module, all_stages: bool = False):
        super().__init__()
        self.model = model
        self.all_stages = all_stages

    def forward(self, images: Tensor) -> Tensor | tuple[Tensor, ...]:
        stages = self.model(images)
        return tuple(stages) if self.all_stages else stages[-1]


def output_names(model: nn.Module, all_stages: bool, example: Tensor) -> list[str]:
    """``["logits"]``, or ``["s1", ..., "sK"]`` for every stage the model returns on ``example``."""
    if not all_stages:
        return ["logits"]
    with torch.no_grad():
        count = len(model(example))
    return [f"s{k + 1}" for k in range(count)]


@contextlib.contextmanager
def _quiet_onnx_logs() -> Iterator[None]:
    """Hide onnx_ir's benign warnings about empty attribute lists (from SegNet's unpooling)."""
    logger = logging.getLogger("onnx_ir")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def export_onnx(
    model: nn.Module,
    path: str | Path,
    all_stages: bool = False,
    example_size: tuple[int, int] = (360, 480),
    opset: int | None = None,
) -> Path:
    """Export a segmentation model to ONNX with ``torch.onnx.export(..., dynamo=True)``.

    The graph's input ``images`` is ``(batch, 3, height, width)`` with all three dynamic (height
    and width at least 32); SegNet's max-unpooling is exported as a scatter. BatchNorm is folded
    into the convolutions by the ONNX optimiser.

    Args:
        model: returns a tuple of stage logits for ``(N, 3, H, W)`` images in [0, 1]; exported in
            eval mode on the CPU (the model itself is left as it was).
        path: the ``.onnx`` file to write.
        all_stages: output every stage (``s1`` ... ``s6``) instead of the final ``logits``.
        example_size: ``(H, W)`` of the example input used for tracing.
        opset: ONNX opset version; ``None``: the exporter's default.

    Returns:
        ``path``.

    Raises:
        LrnetError: the example size is under 32, or onnx / onnxscript are not installed.
    """
    height, width = example_size
    if min(height, width) < MIN_SIZE:
        raise LrnetError(f"export size {height}x{width} is under {MIN_SIZE} on a side")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    device = next(model.parameters()).device
    wrapper = OnnxModel(model.cpu().eval(), all_stages).eval()
    example = torch.rand(1, 3, height, width)
    names = output_names(model, all_stages, example)
    batch = torch.export.Dim("batch")
    dynamic = {
        INPUT_NAME: {
            0: batch,
            2: torch.export.Dim("height", min=MIN_SIZE),
            3: torch.export.Dim("width", min=MIN_SIZE),
        }
    }
    try:
        with _quiet_onnx_logs():
            torch.onnx.export(
                wrapper,
                (example,),
                str(path),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=names,
                dynamic_shapes=dynamic,
                opset_version=opset,
                external_data=False,  # one self-contained file (VGG16 models are < 2 GB)
                verbose=False,
            )
    except ImportError as exc:
        raise LrnetError(
            f"ONNX export needs onnx and onnxscript ({exc}): pip install 'lrnet[onnx]'"
        ) from None
    finally:
        model.to(device).train(was_training)
    return path


@dataclass(frozen=True)
class OnnxParity:
    """How closely onnxruntime reproduces PyTorch on one batch.

    Attributes:
        max_abs_diff: the largest absolute logit difference over all outputs.
        outlier_fraction: fraction of output pixels where some logit differs by more than
            ``VERIFY_TOLERANCE`` (a pixel is one ``(n, :, y, x)`` position of any output).
        label_agreement: fraction of pixels where the final stage's argmax is the same.
    """

    max_abs_diff: float
    outlier_fraction: float
    label_agreement: float

    @property
    def ok(self) -> bool:
        """Equal up to float rounding, or off only at a few isolated pixels.

        SegNet's max-unpooling puts a value where the pooling's argmax was; where two inputs of a
        pool window are equal up to rounding, a different (equally valid) position can win and
        move one value, so a handful of pixels may differ even between PyTorch with and without
        BatchNorm folded. A broken export differs almost everywhere.
        """
        return self.max_abs_diff <= VERIFY_TOLERANCE or (
            self.outlier_fraction <= MAX_OUTLIER_FRACTION and self.label_agreement >= 0.999
        )


def verify_onnx(
    path: str | Path, model: nn.Module, images: Tensor, all_stages: bool = False
) -> OnnxParity:
    """Run the exported file with onnxruntime and PyTorch on the same images and compare.

    Args:
        path: an ``.onnx`` file written by ``export_onnx``.
        model: the PyTorch model it was exported from.
        images: ``(N, 3, H, W)`` float32 in [0, 1].
        all_stages: whether the file was exported with every stage.

    Returns:
        The largest difference, the fraction of pixels beyond the tolerance and the agreement
        of the final label maps.

    Raises:
        LrnetError: onnxruntime is not installed, or the outputs differ in number or shape.
    """
    try:
        import onnxruntime
    except ImportError:
        raise LrnetError("verifying needs onnxruntime: pip install 'lrnet[onnx]'") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {INPUT_NAME: images.cpu().numpy().astype(np.float32)})
    was_training = model.training
    with torch.no_grad():
        expected = OnnxModel(model.eval(), all_stages)(images.to(next(model.parameters()).device))
    model.train(was_training)
    references = list(expected) if isinstance(expected, tuple) else [expected]
    if len(outputs) != len(references):
        raise LrnetError(f"{path} has {len(outputs)} outputs, PyTorch gives {len(references)}")
    max_diff, outliers, pixels = 0.0, 0, 0
    for got, ref in zip(outputs, references, strict=True):
        ref_array = ref.float().cpu().numpy()
        if got.shape != ref_array.shape:
            raise LrnetError(
                f"{path} gives shape {got.shape} where PyTorch gives {ref_array.shape}"
            )
        diff = np.abs(got - ref_array).max(axis=1)  # (N, H, W): worst class per pixel
        max_diff = max(max_diff, float(diff.max()))
        outliers += int((diff > VERIFY_TOLERANCE).sum())
        pixels += diff.size
    agreement = float((outputs[-1].argmax(1) == references[-1].cpu().numpy().argmax(1)).mean())
    return OnnxParity(max_diff, outliers / pixels, agreement)


def _check_sizes(height: int, width: int) -> list[tuple[int, int, int]]:
    """``(N, H, W)`` inputs to verify on: the export size and an odd, different one in batch 2."""
    other = (max(MIN_SIZE, height // 2 + 17), max(MIN_SIZE, width // 2 + 9))
    return [(1, height, width), (2, *other)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "The ONNX graph takes raw RGB images in [0, 1] (normalisation is inside) of shape "
        "(batch, 3, height, width), all dynamic with height, width >= 32, and returns the final "
        "logits (batch, C, height, width), or with --all-stages s1 .. s6 coarse to fine."
    )
    parser.add_argument("checkpoint", help="a .pt checkpoint or a save_pretrained folder")
    parser.add_argument(
        "--onnx", type=Path, required=True, metavar="FILE", help="ONNX file to write"
    )
    parser.add_argument(
        "--all-stages", action="store_true", help="output every stage, not only the final logits"
    )
    parser.add_argument(
        "--height",
        type=int,
        help="example input height for tracing (default: the config's eval size, else crop size)",
    )
    parser.add_argument("--width", type=int, help="example input width (see --height)")
    parser.add_argument("--opset", type=int, help="ONNX opset version (default: the exporter's)")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="compare onnxruntime with PyTorch at the example size and another size; exit 2 "
        f"unless the logits agree within {VERIFY_TOLERANCE:g} (SegNet: at all but "
        f"{100 * MAX_OUTLIER_FRACTION:g}%% of pixels)",
    )


def _example_size(args: argparse.Namespace, default: Sequence[int]) -> tuple[int, int]:
    height = args.height if args.height is not None else int(default[0])
    width = args.width if args.width is not None else int(default[1])
    if min(height, width) < MIN_SIZE:
        raise LrnetError(f"--height and --width must be at least {MIN_SIZE}, got {height}x{width}")
    return height, width


def main(args: argparse.Namespace) -> int:
    from lrnet.checkpoint import load_model

    loaded = load_model(args.checkpoint)
    data = loaded.config.data
    height, width = _example_size(args, data.eval_size or data.crop_size)
    path = export_onnx(
        loaded.model,
        args.onnx,
        all_stages=args.all_stages,
        example_size=(height, width),
        opset=args.opset,
    )
    size_mb = path.stat().st_size / 2**20
    print(f"wrote {path} ({size_mb:.1f} MiB, {loaded.config.model.name}, example {height}x{width})")
    if args.verify:
        generator = torch.Generator().manual_seed(0)
        for n, h, w in _check_sizes(height, width):
            images = torch.rand(n, 3, h, w, generator=generator)
            parity = verify_onnx(path, loaded.model, images, all_stages=args.all_stages)
            print(
                f"onnxruntime vs PyTorch at {n}x3x{h}x{w}: max abs diff {parity.max_abs_diff:.3g}, "
                f"pixels over {VERIFY_TOLERANCE:g}: {100 * parity.outlier_fraction:.3f}%, "
                f"same labels: {100 * parity.label_agreement:.3f}%"
            )
            if not parity.ok:
                raise LrnetError(f"{path} does not reproduce PyTorch at {n}x3x{h}x{w} (see above)")
    return 0
