"""ONNX export (``lrnet export``): dynamic batch, height and width, checked against PyTorch, with
the model's metadata inside; the cached all-stages graphs the fast backends run, fp32 and int8."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lrnet import __version__
from lrnet._errors import LrnetError
from lrnet.inference.image import MIN_SIZE
from lrnet.inference.outputs import add_overwrite_argument, atomic_write, check_replaceable

if TYPE_CHECKING:  # torch is imported where it is used, so `lrnet export --help` stays quick
    from torch import Tensor, nn

    from lrnet.checkpoint import LoadedModel

INPUT_NAME = "images"
# The dynamo exporter writes opset 18 natively; it converts to others and, where that fails,
# wrote opset 18 anyway after a traceback. Older opsets are refused; the result is checked.
MIN_OPSET = 18
VERIFY_TOLERANCE = 1e-3  # logit difference --verify accepts everywhere (float32 gives ~1e-6)
MAX_OUTLIER_FRACTION = 1e-3  # ... or at this fraction of pixels (see OnnxParity.ok)
# Bumped whenever what a cached graph contains changes, so old cache entries are not reused.
CACHE_FORMAT = 2  # 2: 7-bit int8 weights, calibration identity in the metadata
CALIBRATION_IMAGES = 300  # default number of training images int8 is calibrated on (NNCF's)
# Photometric copies (gain, gamma) that calibration cycles through, one per image: as it is,
# brighter, darker, washed out, deepened (``lrnet.inference.image.photometric``).
CALIBRATION_VARIANTS = ((1.0, 1.0), (1.6, 1.0), (0.6, 1.0), (1.0, 0.6), (1.0, 1.6))
# Integer formats of the int8 graph: activation type, weight type, weights in 7 bits.
# x86 CPUs without VNNI (AVX2, AVX-512 before Cascade Lake) multiply u8 activations by s8 weights
# with VPMADDUBSW, which adds each pair of products into a saturating int16: 255 * 127 * 2 does
# not fit, 255 * 64 * 2 does. 7-bit weights ("u8s7") therefore give the same labels on every x86
# CPU; full 8-bit weights ("u8s8") turn bright sky into building on AVX2 (docs/benchmarks.md).
# The last field names convolutions kept in float: "heads" (those that write a stage's logits,
# a graph output) and "first" (the one reading the image).
INT8_SCHEMES: dict[str, tuple[str, str, bool, tuple[str, ...]]] = {
    "u8s7": ("QUInt8", "QInt8", True, ()),
    "u8s7-heads": ("QUInt8", "QInt8", True, ("heads",)),
    "u8s7-first": ("QUInt8", "QInt8", True, ("first",)),
    "u8s8": ("QUInt8", "QInt8", False, ()),
    "u8u8": ("QUInt8", "QUInt8", False, ()),
    "s8s8": ("QInt8", "QInt8", False, ()),
}
INT8_SCHEME = "u8s7-heads"
INPUT_CONTRACT = (
    "images: (N, 3, H, W) float32 RGB in [0, 1], H and W >= 32 (normalisation is inside). "
    "Resize the image with antialiased bilinear (PIL Image.BILINEAR on float32 channels, or "
    "torchvision antialias=True) to fit inside run_size keeping its aspect, and pad right and "
    "bottom with 0 to run_size (no run_size: the image's own size). The last output is the final "
    "stage's logits (N, C, H, W): crop the padding, resize back to the image's size with the same "
    "resize and take the argmax over C."
)


def onnx_model(model: nn.Module, all_stages: bool = False) -> nn.Module:
    """What a deployed model returns: the final stage's logits, or every stage's.

    The wrapped model normalises internally, so the exported graph takes raw images.

    Args:
        model: returns a tuple of stage logits, coarse to fine.
        all_stages: return the whole tuple instead of the final logits.

    Returns:
        A module: input ``(N, 3, H, W)`` RGB in [0, 1]; output ``(N, C, H, W)`` logits, or with
        ``all_stages`` one ``(N, C, H_k, W_k)`` tensor per stage (s_1 at stride 32 ... s_6 at 1).
    """
    from torch import nn

    class OnnxModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, images: Tensor) -> Tensor | tuple[Tensor, ...]:
            stages = self.model(images)
            return tuple(stages) if all_stages else stages[-1]

    return OnnxModel()


def output_names(model: nn.Module, all_stages: bool, example: Tensor) -> list[str]:
    """``["logits"]``, or ``["s1", ..., "sK"]`` for every stage the model returns on ``example``."""
    import torch

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
    import torch

    height, width = example_size
    if min(height, width) < MIN_SIZE:
        raise LrnetError(f"export size {height}x{width} is under {MIN_SIZE} on a side")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    device = next(model.parameters()).device
    wrapper = onnx_model(model.cpu().eval(), all_stages).eval()
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
            f"ONNX export needs onnx and onnxscript ({exc}), dependencies of lrnet: "
            "pip install onnx onnxscript"
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
    import torch

    try:
        import onnxruntime
    except ImportError:
        raise LrnetError("verifying needs onnxruntime: pip install onnxruntime") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {INPUT_NAME: images.cpu().numpy().astype(np.float32)})
    was_training = model.training
    with torch.no_grad():
        expected = onnx_model(model.eval(), all_stages)(images.to(next(model.parameters()).device))
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


def model_metadata(loaded: LoadedModel, **extra: Any) -> dict[str, str]:
    """What a user needs to run an exported file alone, as ``metadata_props`` strings.

    Keys: ``classes`` and ``palette`` (JSON lists), ``run_size`` (JSON ``[H, W]`` or ``null``),
    ``input`` (the input contract in words), ``outputs``, ``model`` (architecture), ``lrnet``
    (version), plus ``extra`` (``precision``, ``fingerprint``, ``calibration`` ...).
    """
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


def _output_description(outputs: Sequence[str]) -> str:
    if list(outputs) == ["logits"]:
        return "logits: (N, C, H, W), the final stage"
    return (
        f"{', '.join(outputs)}: every stage's logits (N, C, H_k, W_k), coarse (stride 32) to fine "
        "(stride 1); the last is the final stage"
    )


def write_metadata(path: str | Path, meta: dict[str, str]) -> None:
    """Set ``meta`` in the ``.onnx`` file's ``metadata_props`` (replacing keys it already has)."""
    import onnx

    proto = onnx.load(str(path))
    outputs = [o.name for o in proto.graph.output]
    meta = {"outputs": _output_description(outputs), **meta}
    kept = [p for p in proto.metadata_props if p.key not in meta]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    atomic_write(Path(path), lambda tmp: onnx.save(proto, str(tmp)), by_path=True)


def read_graph(path: str | Path) -> Any:
    """The ``onnx.ModelProto`` of an ``.onnx`` file (external data not loaded).

    Raises:
        LrnetError: the file is not a readable ONNX model (truncated or another format).
    """
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


def cache_dir() -> Path:
    """Where exported and quantised graphs are kept: ``$LRNET_HOME/onnx`` (default
    ``~/.cache/lrnet/onnx``), beside the zoo's downloads."""
    from lrnet import zoo

    return zoo.cache_dir() / "onnx"


def fingerprint(loaded: LoadedModel) -> str:
    """SHA-256 of what an exported graph depends on: the weights, the model config, the classes,
    palette and run size (they are in its metadata) and ``CACHE_FORMAT``."""
    import torch

    digest = hashlib.sha256()
    header = {
        "format": CACHE_FORMAT,
        "model": loaded.config.to_dict()["model"],
        "eval_size": loaded.config.data.eval_size,
        "classes": list(loaded.classes),
        "palette": [list(c) for c in loaded.palette],
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    for name, tensor in sorted(loaded.model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cache_folder(loaded: LoadedModel) -> Path:
    """This model's folder in the cache (by ``fingerprint``)."""
    return cache_dir() / fingerprint(loaded)[:24]


def _trace_size(loaded: LoadedModel) -> tuple[int, int]:
    data = loaded.config.data
    size = data.eval_size or data.crop_size
    return max(MIN_SIZE, int(size[0])), max(MIN_SIZE, int(size[1]))


def cached_onnx(loaded: LoadedModel) -> Path:
    """The model's fp32 all-stages graph (``s1`` ... ``s6``) with metadata, exported on first use.

    Returns:
        ``<cache_folder>/fp32.onnx``; a second call for the same weights returns at once.
    """
    path = cache_folder(loaded) / "fp32.onnx"
    if path.is_file():
        return path

    def write(tmp: Path) -> None:
        export_onnx(loaded.model, tmp, all_stages=True, example_size=_trace_size(loaded))
        write_metadata(
            tmp, model_metadata(loaded, precision="fp32", fingerprint=fingerprint(loaded))
        )

    return atomic_write(path, write, by_path=True)


@dataclass(frozen=True)
class Calibration:
    """Which images an int8 graph was calibrated on, and how (stored beside it in the cache; a
    change recalibrates).

    Attributes:
        root: the folder, resolved (kept in the local cache only; the graph's metadata records
            what identifies the data instead, see ``CalibrationInputs.identity``).
        images: how many were asked for (fewer are used when the folder has fewer).
        method: the activation range method.
        scheme: the integer format (``INT8_SCHEMES``).
        varied: whether photometric copies (``CALIBRATION_VARIANTS``) were cycled through.
    """

    root: str
    images: int
    method: str = "minmax"
    scheme: str = INT8_SCHEME
    varied: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "images": self.images,
            "method": self.method,
            "scheme": self.scheme,
            "varied": self.varied,
        }


def calibration_images(root: str | Path, loaded: LoadedModel, count: int) -> list[Path]:
    """Up to ``count`` training images, evenly spaced over the list (deterministic).

    ``root`` is a folder of images, or a dataset root of the model's dataset kind (its
    ``train_split``, e.g. CamVid's ``train/``).

    Raises:
        LrnetError: ``root`` does not exist or holds no image.
    """
    from lrnet.data._io import IMAGE_SUFFIXES

    root = Path(root).expanduser()
    if not root.is_dir():
        raise LrnetError(f"--calibrate {root} is not a folder (give training images or a dataset)")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        from lrnet.data import build_dataset

        data = loaded.config.data
        try:
            dataset = build_dataset(data.dataset, root, data.train_split, **dict(data.options))
        except LrnetError as exc:
            raise LrnetError(
                f"--calibrate {root} holds no image files and is not a {data.dataset} dataset "
                f"root ({exc}); give a folder of training images"
            ) from None
        files = [image for image, _ in dataset.samples]
    if count < 1:
        raise LrnetError(f"--calibration-images must be at least 1, got {count}")
    if len(files) > count:
        step = len(files) / count
        files = [files[int(i * step)] for i in range(count)]
    return files


class CalibrationInputs:
    """The calibration images of an int8 graph, preprocessed as ``Predictor`` does.

    With ``varied``, image ``i`` gets the ``i % 5``-th photometric copy of
    ``CALIBRATION_VARIANTS`` (as it is, brighter, darker, washed out, deepened), so activation
    ranges also cover lighting the training images lack.

    Args:
        loaded: the model (its run size and dataset kind).
        root: training images or a dataset root (``calibration_images``).
        count: how many images.
        varied: cycle through the photometric copies.
    """

    def __init__(self, loaded: LoadedModel, root: str | Path, count: int, varied: bool = True):
        self.files = calibration_images(root, loaded, count)
        self.root = Path(root).expanduser().resolve()
        self.loaded, self.varied = loaded, varied

    def __len__(self) -> int:
        return len(self.files)

    def image(self, index: int) -> np.ndarray:
        """The ``index``-th as a ``(1, 3, h, w)`` float32 array at the model's run size."""
        from lrnet.inference.image import letterbox, photometric
        from lrnet.predict import load_image

        pixels = load_image(self.files[index])
        if self.varied:
            gain, gamma = CALIBRATION_VARIANTS[index % len(CALIBRATION_VARIANTS)]
            pixels = photometric(pixels, gain, gamma)
        return letterbox(pixels, self.loaded.config.data.eval_size)[0][None].numpy()

    def identity(self) -> dict[str, Any]:
        """What identifies the data without this machine's paths: the dataset kind and split
        (or ``folder``), the count and a SHA-256 of the file names relative to the root."""
        names = sorted(p.resolve().relative_to(self.root).as_posix() for p in self.files)
        data = self.loaded.config.data
        from_dataset = any(p.parent != self.root for p in (f.resolve() for f in self.files))
        return {
            "dataset": data.dataset if from_dataset else "folder",
            "split": data.train_split if from_dataset else None,
            "images": len(self.files),
            "files_sha256": hashlib.sha256("\n".join(names).encode()).hexdigest(),
            "variants": [list(v) for v in CALIBRATION_VARIANTS] if self.varied else [],
        }


# The counter tests read to see that a cached int8 graph is reused, not recalibrated.
calibration_runs = 0


def quantize_int8(
    source: str | Path,
    target: str | Path,
    count: int,
    image: Callable[[int], np.ndarray],
    method: str = "minmax",
    scheme: str = INT8_SCHEME,
) -> Path:
    """Static post-training quantisation with ONNX Runtime: QDQ, int8 weights per channel, uint8
    activations with ranges calibrated on ``count`` images.

    Args:
        source: an fp32 ``.onnx`` file.
        target: the int8 file to write (atomically).
        count: how many calibration images.
        image: ``image(i)`` is the i-th as a ``(1, 3, H, W)`` float32 array, preprocessed as
            ``Predictor`` does; they are made one at a time and the ranges folded after each,
            so memory stays at one image's activations.
        method: ``"minmax"`` or ``"percentile"`` (99.999th, histogram) activation ranges.
        scheme: the integer format, a key of ``INT8_SCHEMES``.

    Returns:
        ``target``.
    """
    global calibration_runs
    try:
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise LrnetError("int8 quantisation needs onnxruntime: pip install onnxruntime") from None

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise LrnetError(f"calibration method {method!r}: choose one of {', '.join(methods)}")
    if scheme not in INT8_SCHEMES:
        raise LrnetError(f"int8 scheme {scheme!r}: choose one of {', '.join(INT8_SCHEMES)}")
    activations, weights, seven_bit, keep_float = INT8_SCHEMES[scheme]
    target = Path(target)
    calibration_runs += 1
    with tempfile.TemporaryDirectory(prefix="lrnet-int8-") as work:
        prepared = Path(work) / "prepared.onnx"
        # ONNX shape inference and constant folding first, as ORT recommends; the symbolic pass
        # cannot resolve the dynamic height and width and is not needed for convolutions.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)

        def write(tmp: Path) -> None:
            quantize_static(
                str(prepared),
                str(tmp),
                _calibration_reader(count, image),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=seven_bit,
                activation_type=getattr(QuantType, activations),
                weight_type=getattr(QuantType, weights),
                calibrate_method=methods[method],
                # ranges folded after every image: memory does not grow with the image count
                extra_options={"CalibStridedMinMax": 1},
                nodes_to_exclude=float_convs(prepared, keep_float),
            )

        atomic_write(target, write, by_path=True)
    return target


def _calibration_reader(count: int, image: Callable[[int], np.ndarray]) -> Any:
    """ONNX Runtime's calibration data reader over ``image(0) .. image(count - 1)``."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        """The images of ``[start, end)``, as ORT's strided calibration asks for them."""

        def __init__(self) -> None:
            self.next, self.end = 0, count

        def __len__(self) -> int:
            return count

        def set_range(self, start_index: int, end_index: int) -> None:
            self.next, self.end = start_index, min(end_index, count)

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.next >= self.end:
                return None
            self.next += 1
            return {INPUT_NAME: image(self.next - 1)}

    return Reader()


def float_convs(path: str | Path, kinds: Sequence[str]) -> list[str]:
    """The convolutions of an fp32 graph to keep in float: ``"heads"`` write a graph output (a
    stage's logits), ``"first"`` is the first one (it reads the image)."""
    graph = read_graph(path).graph
    outputs = {o.name for o in graph.output}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    names = [n.name for n in convs if "heads" in kinds and n.output[0] in outputs]
    if "first" in kinds and convs:
        names.append(convs[0].name)
    return names


INT16_MAX = 32767  # VPMADDUBSW's saturating pair sum


def saturating_convs(path: str | Path) -> list[tuple[str, int]]:
    """The int8 convolutions of a QDQ graph in which two u8 x s8 products can leave int16.

    x86 CPUs without VNNI add each pair of neighbouring u8 x s8 products into a saturating int16
    (VPMADDUBSW); which two weights are neighbours is the kernel's choice, so a convolution is
    safe only when, for every output channel, 255 times its two largest weight magnitudes fits.
    This is a property of the file, the same whatever CPU reads it. Quantised weights that are
    not int8 (u8) are listed too, with ``-1``: they are outside what this check can vouch for;
    float convolutions are safe.

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


def packaged_int8(loaded: LoadedModel) -> Path | None:
    """The int8 graph shipped inside the package for these weights, if there is one.

    Zoo models may ship ``lrnet/weights/<name>.int8.onnx`` (made by ``lrnet export NAME --int8
    --calibrate ROOT``), so that their int8 path needs no calibration images; a file is used only
    when the fingerprint in its metadata is that of the weights loaded, so re-shipped weights
    never run with a stale graph.
    """
    from lrnet import zoo

    wanted = fingerprint(loaded)
    for path in sorted(zoo.weights_dir().glob("*.int8.onnx")):
        if read_metadata(path).get("fingerprint") == wanted:
            return path
    return None


def int8_agreement(fp32: Path, int8: Path, inputs: list[np.ndarray]) -> float:
    """The share of final-stage labels the int8 graph gives as the fp32 one does, over ``inputs``
    (``(1, 3, H, W)`` float32, preprocessed): what ``auto`` reads to run int8 for a model that
    has no val measurement (``AUTO_AGREEMENT`` in ``lrnet.predict``)."""
    import torch

    from lrnet.inference.backends import OnnxRuntimeBackend

    exact, quantised = OnnxRuntimeBackend(fp32, "fp32"), OnnxRuntimeBackend(int8, "int8")
    same = total = 0
    for array in inputs:
        batch = torch.from_numpy(array)
        a, b = exact.run(batch)[-1].argmax(1), quantised.run(batch)[-1].argmax(1)
        same += int((a == b).sum())
        total += a.numel()
    return same / total if total else 0.0


def int8_record(loaded: LoadedModel) -> dict[str, Any] | None:
    """What ``int8.json`` says of this model's cached int8 graph (calibration, agreement), or
    ``None`` when there is none."""
    record = cache_folder(loaded) / "int8.json"
    if not (record.is_file() and (record.parent / "int8.onnx").is_file()):
        return None
    try:
        stored = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    return stored if isinstance(stored, dict) else None


def cached_int8(
    loaded: LoadedModel,
    calibrate: str | Path | None = None,
    *,
    images: int = CALIBRATION_IMAGES,
    method: str = "minmax",
    progress: Callable[[str], None] | None = None,
) -> Path:
    """The model's int8 all-stages graph, quantised on first use and cached.

    Args:
        loaded: the model.
        calibrate: training images or a dataset root to calibrate on; ``None``: use the cached
            graph whatever it was calibrated on.
        images: how many images to calibrate on.
        method: activation range method (see ``quantize_int8``).
        progress: called with a one-line message before a (slow) calibration.

    Returns:
        ``<cache_folder>/int8.onnx``; reused at once while the calibration asked for is the one it
        was made with (``int8.json`` beside it records that). Without ``calibrate`` and nothing
        cached, the graph shipped in the package for these weights (``packaged_int8``).

    Raises:
        LrnetError: there is no cached int8 graph and ``calibrate`` is ``None``.
    """
    folder = cache_folder(loaded)
    path, record = folder / "int8.onnx", folder / "int8.json"
    wanted = None
    if calibrate is not None:
        wanted = Calibration(str(Path(calibrate).expanduser().resolve()), images, method)
    if path.is_file() and record.is_file():
        stored = json.loads(record.read_text())
        if wanted is None or all(stored.get(k) == v for k, v in wanted.to_dict().items()):
            return path
    if wanted is None:
        shipped = packaged_int8(loaded)
        if shipped is not None:
            return shipped
        raise LrnetError(
            "no int8 version of this model yet: make it once with `lrnet export MODEL --int8 "
            "--calibrate ROOT` (ROOT: its training images), or use --precision fp32"
        )
    inputs = CalibrationInputs(loaded, wanted.root, images, varied=wanted.varied)
    if progress is not None:
        progress(f"calibrating int8 on {len(inputs)} images from {wanted.root} (once; cached)")
    fp32 = cached_onnx(loaded)
    quantize_int8(fp32, path, len(inputs), inputs.image, method=method, scheme=wanted.scheme)
    check = [inputs.image(i) for i in range(min(8, len(inputs)))]
    used = {**wanted.to_dict(), "used": len(inputs), "agreement": int8_agreement(fp32, path, check)}
    identity = {**inputs.identity(), "method": method, "scheme": wanted.scheme}
    write_metadata(
        path,
        model_metadata(
            loaded, precision="int8", fingerprint=fingerprint(loaded), calibration=identity
        ),
    )
    atomic_write(record, lambda f: f.write(json.dumps(used).encode()))
    return path


def _check_sizes(height: int, width: int) -> list[tuple[int, int, int]]:
    """``(N, H, W)`` inputs to verify on: the export size and an odd, different one in batch 2."""
    other = (max(MIN_SIZE, height // 2 + 17), max(MIN_SIZE, width // 2 + 9))
    return [(1, height, width), (2, *other)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "The ONNX graph takes raw RGB images in [0, 1] (normalisation is inside) of shape "
        "(batch, 3, height, width), all dynamic with height, width >= 32, and returns the final "
        "logits (batch, C, height, width), or with --all-stages s1 .. s6 coarse to fine. Its "
        "metadata holds the class names, palette, run size and this input contract "
        "(docs/deploy.md). --int8 makes the statically quantised graph (all stages) that "
        "`--precision int8` runs, cached under $LRNET_HOME (default ~/.cache/lrnet): a second "
        "run with the same calibration returns at once."
    )
    parser.add_argument(
        "checkpoint",
        metavar="MODEL",
        help="a zoo name (lrnet models), a .pt checkpoint, a save_pretrained folder or a Hub repo id",
    )
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
        help="--int8: training images to calibrate on, a folder of images or a dataset root of "
        "the model's dataset (its training split)",
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
        help="example input height for tracing (default: the config's eval size, else crop size)",
    )
    parser.add_argument("--width", type=int, help="example input width (see --height)")
    parser.add_argument("--opset", type=int, help="ONNX opset version (default: the exporter's)")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="compare onnxruntime with PyTorch at the example size and another size; exit 2 "
        f"unless the logits agree within {VERIFY_TOLERANCE:g} (SegNet: at all but "
        f"{100 * MAX_OUTLIER_FRACTION:g}%% of pixels); with --int8, print how many labels "
        "agree with fp32 PyTorch on the calibration images",
    )


def _example_size(args: argparse.Namespace, default: Sequence[int]) -> tuple[int, int]:
    height = args.height if args.height is not None else int(default[0])
    width = args.width if args.width is not None else int(default[1])
    if min(height, width) < MIN_SIZE:
        raise LrnetError(f"--height and --width must be at least {MIN_SIZE}, got {height}x{width}")
    return height, width


def _export_int8(args: argparse.Namespace, loaded: LoadedModel) -> Path:
    """``--int8``: the cached quantised graph (made first if needed), copied to ``--onnx``."""
    import time

    if args.calibrate is None:
        raise LrnetError("--int8 needs --calibrate ROOT: the training images to calibrate on")
    start = time.perf_counter()
    path = cached_int8(
        loaded, args.calibrate, images=args.calibration_images, progress=lambda m: print(m)
    )
    seconds = time.perf_counter() - start
    print(f"int8 graph {path} ({path.stat().st_size / 2**20:.1f} MiB, {seconds:.1f} s)")
    if args.verify:
        from lrnet.inference.backends import OnnxRuntimeBackend
        from lrnet.predict import Predictor, load_image

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
            total += expected.numel()
        print(
            f"int8 labels equal to fp32 PyTorch on {len(files)} images: {100 * same / total:.2f}%"
        )
    if args.onnx is None:
        return path
    target = Path(args.onnx)
    atomic_write(target, lambda f: f.write(path.read_bytes()))
    return target


def _check_opset(opset: int | None) -> None:
    """``--opset`` between ``MIN_OPSET`` and the newest opset the installed onnx knows."""
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if opset is not None and not MIN_OPSET <= opset <= newest:
        raise LrnetError(
            f"--opset {opset} is not one the exporter writes: give {MIN_OPSET} .. {newest}, or "
            "leave it out for the default"
        )


def _written_opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return max(i.version for i in model.opset_import if i.domain in ("", "ai.onnx"))


def main(args: argparse.Namespace) -> int:
    import torch

    from lrnet.checkpoint import load_model

    _check_opset(args.opset)
    if args.onnx is not None:  # before any work: the model's own files are never replaced
        given = [args.checkpoint] + ([args.calibrate] if args.calibrate else [])
        inputs = [Path(p) for p in given if Path(p).exists()]
        check_replaceable(args.onnx, overwrite=args.overwrite, inputs=inputs)
    loaded = load_model(args.checkpoint)
    if args.int8:
        target = _export_int8(args, loaded)
        if args.onnx is not None:
            print(f"wrote {target}")
        return 0
    if args.calibrate is not None:
        raise LrnetError("--calibrate applies to --int8")
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
            if args.opset is not None and _written_opset(tmp) != args.opset:
                raise LrnetError(
                    f"the exporter wrote opset {_written_opset(tmp)}, not the --opset "
                    f"{args.opset} asked for; nothing was written: leave --opset out"
                )
            meta = model_metadata(loaded, precision="fp32", fingerprint=fingerprint(loaded))
            write_metadata(tmp, meta)

        path = atomic_write(Path(args.onnx), write, by_path=True)
        size_mb = path.stat().st_size / 2**20
        name = loaded.config.model.name
        print(f"wrote {path} ({size_mb:.1f} MiB, {name}, example {height}x{width})")
    if args.verify:
        generator = torch.Generator().manual_seed(0)
        for n, h, w in _check_sizes(height, width):
            images = torch.rand(n, 3, h, w, generator=generator)
            parity = verify_onnx(path, loaded.model, images, all_stages=all_stages)
            print(
                f"onnxruntime vs PyTorch at {n}x3x{h}x{w}: max abs diff {parity.max_abs_diff:.3g}, "
                f"pixels over {VERIFY_TOLERANCE:g}: {100 * parity.outlier_fraction:.3f}%, "
                f"same labels: {100 * parity.label_agreement:.3f}%"
            )
            if not parity.ok:
                raise LrnetError(f"{path} does not reproduce PyTorch at {n}x3x{h}x{w} (see above)")
    return 0
