"""ONNX export and its checks: a graph with dynamic batch, height and width that takes raw images,
the model's metadata inside it, parity with PyTorch, and the int8 saturation check of a file.

torch is imported only where a model is traced or run: reading a graph's metadata needs none.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lrnet import __version__
from lrnet._errors import LrnetError
from lrnet._files import atomic_write
from lrnet._memory import check_fits, run_bytes
from lrnet.inference.backends import OnnxRuntimeBackend
from lrnet.inference.image import MIN_SIZE

if TYPE_CHECKING:
    from torch import Tensor, nn

    from lrnet.pretrained import LoadedModel

INPUT_NAME = "images"

# The dynamo exporter writes opset 18 natively; it converts to others and, where that fails,
# wrote opset 18 anyway after a traceback. Older opsets are refused; the result is checked.
MIN_OPSET = 18
VERIFY_TOLERANCE = 1e-3  # logit difference --verify accepts everywhere (float32 gives ~1e-6)
MAX_OUTLIER_FRACTION = 1e-3  # ... or at this fraction of pixels (see OnnxParity.ok)

INPUT_CONTRACT = (
    "images: (N, 3, H, W) float32 RGB in [0, 1], H and W >= 32 (normalisation is inside). "
    "Resize the image with antialiased bilinear (PIL Image.BILINEAR on float32 channels, or "
    "torchvision antialias=True) to fit inside run_size keeping its aspect, and pad right and "
    "bottom with 0 to run_size (no run_size: the image's own size). The last output is the final "
    "stage's logits (N, C, H, W): crop the padding, resize back to the image's size with the same "
    "resize and take the argmax over C."
)


def onnx_model(model: nn.Module, all_stages: bool = False) -> nn.Module:
    """``model`` (which normalises inside) returning what a deployed model returns: for
    ``(N, 3, H, W)`` RGB in [0, 1], the final ``(N, C, H, W)`` logits, or with ``all_stages`` the
    tuple of stage logits ``(N, C, H_k, W_k)``, s_1 at stride 32 ... s_6 at 1."""
    from torch import nn

    class OnnxModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, images: Tensor) -> Tensor | tuple[Tensor, ...]:
            stages = self.model(images)
            return tuple(stages) if all_stages else stages[-1]

    return OnnxModel()


def _check_example_size(model: nn.Module, height: int, width: int) -> None:
    """Refuse an example image under ``MIN_SIZE`` or too large for memory, before it is made
    (100000 x 100000 is 120 GB of it alone)."""
    import torch

    if min(height, width) < MIN_SIZE:
        raise LrnetError(f"export size {height}x{width} is under {MIN_SIZE} on a side")
    first_conv = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    check_fits(
        run_bytes(1, height, width, first_conv.out_channels if first_conv is not None else 0),
        f"export size {height}x{width} (H x W)",
        "give a smaller --height and --width: the graph takes any size, this is only the "
        "example it is traced with",
    )


def export_onnx(
    model: nn.Module,
    path: str | Path,
    all_stages: bool = False,
    example_size: tuple[int, int] = (360, 480),
    opset: int | None = None,
) -> Path:
    """Export a segmentation model to ONNX with ``torch.onnx.export(..., dynamo=True)``: input
    ``images`` is ``(batch, 3, height, width)``, all three dynamic (height and width >= 32).

    Args:
        model: returns a tuple of stage logits for ``(N, 3, H, W)`` images in [0, 1]; exported in
            eval mode on the CPU (the model itself is left as it was).
        path: the ``.onnx`` file to write, and return.
        all_stages: output every stage (``s1`` ... ``s6``) instead of the final ``logits``.
        example_size: ``(H, W)`` of the example input traced with.
        opset: ONNX opset version; ``None``: the exporter's default.

    Raises:
        LrnetError: the example is under 32 or too large for memory, or onnx is not installed.
    """
    import torch

    height, width = example_size
    _check_example_size(model, height, width)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training, device = model.training, next(model.parameters()).device
    wrapper = onnx_model(model.cpu().eval(), all_stages).eval()
    example = torch.rand(1, 3, height, width)
    with torch.no_grad():
        names = [f"s{k + 1}" for k in range(len(model(example)))] if all_stages else ["logits"]
    dim = torch.export.Dim
    sides = {2: dim("height", min=MIN_SIZE), 3: dim("width", min=MIN_SIZE)}
    logger = logging.getLogger("onnx_ir")  # its warnings on SegNet's unpooling are benign
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=names,
            dynamic_shapes={INPUT_NAME: {0: dim("batch"), **sides}},
            opset_version=opset,
            external_data=False,  # one self-contained file (VGG16 models are < 2 GB)
            verbose=False,
        )
    except ImportError as exc:
        raise LrnetError(
            f"ONNX export needs onnx and onnxscript ({exc}), dependencies of lrnet: "
            "pip install onnx onnxscript"
        ) from None
    finally:
        model.to(device).train(was_training)
        logger.setLevel(level)
    return path


@dataclass(frozen=True)
class OnnxParity:
    """How closely onnxruntime reproduces PyTorch on one batch: the largest logit difference,
    the fraction of output pixels (``(n, :, y, x)`` of any output) where a logit differs by more
    than ``VERIFY_TOLERANCE``, and the fraction where the final stage's argmax is the same."""

    max_abs_diff: float
    outlier_fraction: float
    label_agreement: float

    @property
    def ok(self) -> bool:
        """Equal up to float rounding, or off only at a few isolated pixels: where two inputs of a
        pool window tie up to rounding, SegNet's max-unpooling may move one value (even PyTorch
        with and without BatchNorm folded differ so). A broken export differs almost everywhere.
        """
        return self.max_abs_diff <= VERIFY_TOLERANCE or (
            self.outlier_fraction <= MAX_OUTLIER_FRACTION and self.label_agreement >= 0.999
        )


def verify_onnx(
    path: str | Path, model: nn.Module, images: Tensor, all_stages: bool = False
) -> OnnxParity:
    """Run ``path`` (from ``export_onnx``) with onnxruntime and ``model`` with PyTorch on the same
    ``(N, 3, H, W)`` images in [0, 1] and compare; an error when the outputs differ in number or
    shape."""
    import torch

    outputs = OnnxRuntimeBackend(path).run(images)
    was_training = model.training
    with torch.no_grad():
        expected = onnx_model(model.eval(), all_stages)(images.to(next(model.parameters()).device))
    model.train(was_training)
    references = [r.float().cpu().numpy() for r in (expected if all_stages else [expected])]
    if len(outputs) != len(references):
        raise LrnetError(f"{path} has {len(outputs)} outputs, PyTorch gives {len(references)}")
    max_diff, outliers, pixels = 0.0, 0, 0
    for got, ref in zip(outputs, references, strict=True):
        if got.shape != ref.shape:
            raise LrnetError(f"{path} gives shape {got.shape} where PyTorch gives {ref.shape}")
        diff = np.abs(got - ref).max(axis=1)  # (N, H, W): worst class per pixel
        max_diff = max(max_diff, float(diff.max()))
        outliers += int((diff > VERIFY_TOLERANCE).sum())
        pixels += diff.size
    agreement = float((outputs[-1].argmax(1) == references[-1].argmax(1)).mean())
    return OnnxParity(max_diff, outliers / pixels, agreement)


def model_metadata(loaded: LoadedModel, **extra: Any) -> dict[str, str]:
    """What a user needs to run an exported file alone, as ``metadata_props`` strings (the keys
    are in docs/deploy.md), plus ``extra`` (``precision``, ``fingerprint``, ``calibration`` ...)."""
    eval_size = loaded.config.data.eval_size
    model = loaded.config.model
    meta = {
        "classes": json.dumps(list(loaded.classes)),
        "palette": json.dumps([list(c) for c in loaded.palette]),
        "run_size": json.dumps(None if eval_size is None else [int(v) for v in eval_size]),
        "input": INPUT_CONTRACT,
        "model": f"{model.name} {model.encoder} width {model.width} classes {model.num_classes}",
        "lrnet": __version__,
    }
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()})
    return meta


def write_metadata(path: str | Path, meta: dict[str, str]) -> None:
    """Set ``meta`` in the ``.onnx`` file's ``metadata_props`` (replacing keys it already has)."""
    import onnx

    proto = onnx.load(str(path))
    outputs = [o.name for o in proto.graph.output]
    if outputs == ["logits"]:
        described = "logits: (N, C, H, W), the final stage"
    else:
        described = (
            f"{', '.join(outputs)}: every stage's logits (N, C, H_k, W_k), coarse (stride 32) to "
            "fine (stride 1); the last is the final stage"
        )
    kept = {p.key: p.value for p in proto.metadata_props}
    onnx.helper.set_model_props(proto, {**kept, "outputs": described, **meta})
    atomic_write(Path(path), lambda tmp: onnx.save(proto, str(tmp)), by_path=True)


def read_graph(path: str | Path) -> Any:
    """The ``onnx.ModelProto`` of an ``.onnx`` file (external data not loaded), or an error
    saying it is not readable."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: any unreadable file
        raise LrnetError(
            f"{path} is not a readable ONNX file ({type(exc).__name__}); delete it and export "
            "again (a file inside the package: reinstall lrnet)"
        ) from None


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ``.onnx`` file as a dict (``read_graph``'s errors)."""
    return {p.key: p.value for p in read_graph(path).metadata_props}


def check_opset(opset: int | None) -> None:
    """``--opset`` between ``MIN_OPSET`` and the newest opset the installed onnx knows."""
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if opset is not None and not MIN_OPSET <= opset <= newest:
        raise LrnetError(
            f"--opset {opset} is not one the exporter writes: give {MIN_OPSET} .. {newest}, or "
            "leave it out for the default"
        )


def written_opset(path: Path) -> int:
    opsets = read_graph(path).opset_import
    return max(i.version for i in opsets if i.domain in ("", "ai.onnx"))


def check_sizes(height: int, width: int) -> list[tuple[int, int, int]]:
    """``(N, H, W)`` inputs to verify on: the export size and an odd, different one in batch 2."""
    other = (max(MIN_SIZE, height // 2 + 17), max(MIN_SIZE, width // 2 + 9))
    return [(1, height, width), (2, *other)]


INT16_MAX = 32767  # VPMADDUBSW's saturating pair sum


def saturating_convs(path: str | Path) -> list[tuple[str, int]]:
    """The int8 convolutions of a QDQ graph in which two u8 x s8 products can leave int16.

    x86 CPUs without VNNI add pairs of neighbouring products into a saturating int16 (VPMADDUBSW,
    docs/deploy.md), the kernel choosing the pairs: a convolution is safe only when, for every
    output channel, 255 times its two largest weight magnitudes fits. Quantised weights that are
    not int8 are listed with ``-1`` (beyond what this vouches for); float convolutions are safe.

    Returns:
        ``(node name, worst pair sum)`` for each convolution that can saturate; ``[]``: none.
    """
    import onnx
    from onnx import numpy_helper

    graph = read_graph(path).graph
    initializers = {i.name: i for i in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    risky: list[tuple[str, int]] = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        dequantize = producers.get(node.input[1])
        if dequantize is None or dequantize.op_type != "DequantizeLinear":
            continue  # float weights: float arithmetic, nothing to saturate
        source = initializers.get(dequantize.input[0])
        if source is None or source.data_type != onnx.TensorProto.INT8:
            risky.append((node.name, -1))
            continue
        weights = np.abs(numpy_helper.to_array(source).astype(np.int32))
        weights = np.sort(weights.reshape(weights.shape[0], -1), axis=1)
        pair = weights[:, -2:].sum(axis=1).max() if weights.shape[1] > 1 else weights.max()
        if 255 * int(pair) > INT16_MAX:
            risky.append((node.name, 255 * int(pair)))
    return risky
