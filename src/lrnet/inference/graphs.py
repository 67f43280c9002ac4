"""The graphs the fast backends run, cached per weights: the weights' fingerprint, the fp32
all-stages graph, and the int8 graph with its calibration (static QDQ quantisation).

Graphs live in ``$LRNET_HOME/onnx/<fingerprint>/`` (``fp32.onnx``, ``int8.onnx``, ``int8.json``)
or ship in the package (``packaged``); docs/deploy.md says how int8 is made.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lrnet import zoo
from lrnet._errors import LrnetError
from lrnet._files import atomic_write
from lrnet.data._io import IMAGE_SUFFIXES, to_numpy
from lrnet.inference import cache
from lrnet.inference.backends import OnnxRuntimeBackend
from lrnet.inference.export import (
    INPUT_NAME,
    export_onnx,
    model_metadata,
    read_graph,
    read_metadata,
    write_metadata,
)
from lrnet.inference.image import MIN_SIZE, letterbox, load_image, photometric

if TYPE_CHECKING:
    from lrnet.pretrained import LoadedModel

# Bumped whenever what a cached graph contains changes, so old cache entries are not reused.
CACHE_FORMAT = 2  # 2: 7-bit int8 weights, calibration identity in the metadata

CALIBRATION_IMAGES = 300  # default number of training images int8 is calibrated on (NNCF's)

# Photometric copies (gain, gamma) that calibration cycles through, one per image: as it is,
# brighter, darker, washed out, deepened (``lrnet.inference.image.photometric``).
CALIBRATION_VARIANTS = ((1.0, 1.0), (1.6, 1.0), (0.6, 1.0), (1.0, 0.6), (1.0, 1.6))

# Integer formats of the int8 graph: activation type, weight type, weights in 7 bits, and the
# convolutions kept in float ("heads": those writing a stage's logits; "first": the one reading
# the image). 7-bit weights cannot saturate VPMADDUBSW's int16 on x86 CPUs without VNNI, so they
# give the same labels on every x86 CPU; 8-bit ones turn bright sky into building on AVX2
# (docs/deploy.md, docs/benchmarks.md).
INT8_SCHEMES: dict[str, tuple[str, str, bool, tuple[str, ...]]] = {
    "u8s7": ("QUInt8", "QInt8", True, ()),
    "u8s7-heads": ("QUInt8", "QInt8", True, ("heads",)),
    "u8s7-first": ("QUInt8", "QInt8", True, ("first",)),
    "u8s8": ("QUInt8", "QInt8", False, ()),
    "u8u8": ("QUInt8", "QUInt8", False, ()),
    "s8s8": ("QInt8", "QInt8", False, ()),
}

INT8_SCHEME = "u8s7-heads"


def weights_fingerprint(loaded: LoadedModel) -> str:
    """SHA-256 of what an exported graph depends on: the weights (floating point ones as float32,
    what the model holds), the model config, the classes, palette and run size (they are in its
    metadata) and ``CACHE_FORMAT``. Read from the weights as loaded: no network is built."""
    digest = hashlib.sha256()
    header = {
        "format": CACHE_FORMAT,
        "model": loaded.config.to_dict()["model"],
        "eval_size": loaded.config.data.eval_size,
        "classes": list(loaded.classes),
        "palette": [list(c) for c in loaded.palette],
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    for name, value in sorted(loaded.state().items()):
        array = _as_array(value)
        digest.update(f"{name} torch.{array.dtype.name} {tuple(array.shape)}".encode())
        digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8).tobytes())
    return digest.hexdigest()


def _as_array(value: Any) -> np.ndarray:
    """A weight as numpy, floating point ones as float32 (tensors of any dtype, e.g. bf16)."""
    array = to_numpy(value)
    return (
        array.astype(np.float32, copy=False) if np.issubdtype(array.dtype, np.floating) else array
    )


def cache_folder(loaded: LoadedModel) -> Path:
    """This model's folder in the cache (by ``weights_fingerprint``), or its stand-in this run."""
    return cache.current(zoo.cache_dir() / "onnx" / weights_fingerprint(loaded)[:24])


def cached_onnx(loaded: LoadedModel) -> Path:
    """The model's fp32 all-stages graph (``s1`` ... ``s6``) with metadata: cached, else the one
    shipped for these weights (``packaged``), else exported (with torch) into the cache. A cached
    file cut short or overwritten is made again (``cache.whole``)."""
    path = cache_folder(loaded) / "fp32.onnx"
    if cache.whole(path):
        return path
    shipped = packaged(loaded, "fp32")
    if shipped is not None:
        return shipped
    path = cache.writable(path.parent) / path.name
    size = loaded.config.data.eval_size or loaded.config.data.crop_size
    example = (max(MIN_SIZE, int(size[0])), max(MIN_SIZE, int(size[1])))
    meta = model_metadata(loaded, precision="fp32", fingerprint=weights_fingerprint(loaded))

    def write(tmp: Path) -> None:
        export_onnx(loaded.model, tmp, all_stages=True, example_size=example)
        write_metadata(tmp, meta)

    return atomic_write(path, write, by_path=True)


def packaged(loaded: LoadedModel, precision: str) -> Path | None:
    """The graph of ``precision`` shipped for these weights (``lrnet/weights/<name>.fp32.onnx``
    or ``.int8.onnx``: no export, torch or calibration needed), if there is one; used only when
    the fingerprint in its metadata is that of the weights, so a stale graph never runs."""
    wanted = weights_fingerprint(loaded)
    for path in sorted(zoo.weights_dir().glob(f"*.{precision}.onnx")):
        if read_metadata(path).get("fingerprint") == wanted:
            return path
    return None


def int8_record(loaded: LoadedModel) -> dict[str, Any] | None:
    """What ``int8.json`` says of this model's cached int8 graph (calibration, agreement), or
    ``None`` when there is none."""
    record = cache_folder(loaded) / "int8.json"
    return cache.read_record(record) if (record.parent / "int8.onnx").is_file() else None


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
        calibrate: training images or a dataset root to calibrate on; ``None``: the cached graph
            whatever it was calibrated on, else the one shipped (``packaged``).
        images: how many images to calibrate on.
        method: activation range method (see ``quantize_int8``).
        progress: called with a one-line message before a (slow) calibration.

    Returns:
        ``<cache_folder>/int8.onnx``, reused while it was made with the calibration asked for
        (``int8.json`` records it); a damaged one is removed and made again.

    Raises:
        LrnetError: there is no int8 graph and ``calibrate`` is ``None``.
    """
    folder = cache_folder(loaded)
    path, record = folder / "int8.onnx", folder / "int8.json"
    root = None if calibrate is None else str(Path(calibrate).expanduser().resolve())
    wanted = None if root is None else Calibration(root, images, method)
    if cache.whole(path, record):
        stored = cache.read_record(record) or {}
        if wanted is None or all(stored.get(k) == v for k, v in asdict(wanted).items()):
            return path
    if wanted is None:
        shipped = packaged(loaded, "int8")
        if shipped is not None:
            return shipped
        raise LrnetError(
            "no int8 version of this model yet: make it once with `lrnet export MODEL --int8 "
            "--calibrate ROOT` (ROOT: its training images), or use --precision fp32"
        )
    inputs = CalibrationInputs(loaded, wanted.root, images, varied=wanted.varied)
    if progress is not None:
        progress(f"calibrating int8 on {len(inputs)} images from {wanted.root} (once; cached)")
    return _make_int8(loaded, cache.writable(folder), wanted, inputs)


def _make_int8(
    loaded: LoadedModel, folder: Path, wanted: Calibration, inputs: CalibrationInputs
) -> Path:
    """``folder/int8.onnx`` made from ``inputs``, and ``int8.json``: how, and its agreement."""
    path, fp32 = folder / "int8.onnx", cached_onnx(loaded)
    quantize_int8(fp32, path, len(inputs), inputs.image, wanted.method, wanted.scheme)
    check = [inputs.image(i) for i in range(min(8, len(inputs)))]
    used = {**asdict(wanted), "used": len(inputs), "agreement": int8_agreement(fp32, path, check)}
    identity = {**inputs.identity(), "method": wanted.method, "scheme": wanted.scheme}
    fingerprint = weights_fingerprint(loaded)
    meta = model_metadata(loaded, precision="int8", fingerprint=fingerprint, calibration=identity)
    write_metadata(path, meta)
    atomic_write(folder / "int8.json", lambda f: f.write(json.dumps(used).encode()))
    return path


def int8_agreement(fp32: Path, int8: Path, inputs: list[np.ndarray]) -> float:
    """The share of final-stage labels the int8 graph gives as the fp32 one does, over ``inputs``
    (``(1, 3, H, W)`` float32, preprocessed): what ``auto`` reads to run int8 for a model that
    has no val measurement (``lrnet.inference.auto.AUTO_AGREEMENT``)."""
    exact, quantised = OnnxRuntimeBackend(fp32, "fp32"), OnnxRuntimeBackend(int8, "int8")
    same = total = 0
    for batch in inputs:
        a, b = exact.run(batch)[-1].argmax(1), quantised.run(batch)[-1].argmax(1)
        same += int((a == b).sum())
        total += a.size
    return same / total if total else 0.0


@dataclass(frozen=True)
class Calibration:
    """Which images an int8 graph was calibrated on, and how (``int8.json``; a change
    recalibrates). ``root`` is resolved and stays in the local cache: the graph's metadata holds
    ``CalibrationInputs.identity`` instead. ``images`` is the count asked for."""

    root: str
    images: int
    method: str = "minmax"
    scheme: str = INT8_SCHEME
    varied: bool = True


def calibration_images(root: str | Path, loaded: LoadedModel, count: int) -> list[Path]:
    """Up to ``count`` training images, evenly spaced, from a folder of images or a dataset root
    of the model's dataset kind (its ``train_split``); an error when there is none."""
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
    """``count`` calibration images from ``root`` (``calibration_images``), preprocessed as
    ``Predictor`` does; with ``varied``, image ``i`` is the ``i % 5``-th copy of
    ``CALIBRATION_VARIANTS``, so activation ranges cover lighting the training images lack."""

    def __init__(self, loaded: LoadedModel, root: str | Path, count: int, varied: bool = True):
        self.files = calibration_images(root, loaded, count)
        self.root = Path(root).expanduser().resolve()
        self.loaded, self.varied = loaded, varied

    def __len__(self) -> int:
        return len(self.files)

    def image(self, index: int) -> np.ndarray:
        """The ``index``-th as a ``(1, 3, h, w)`` float32 array at the model's run size."""
        pixels = load_image(self.files[index])
        if self.varied:
            gain, gamma = CALIBRATION_VARIANTS[index % len(CALIBRATION_VARIANTS)]
            pixels = photometric(pixels, gain, gamma)
        return letterbox(pixels, self.loaded.config.data.eval_size)[0][None]

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
        target: the int8 file to write (atomically), and return.
        image: ``image(i)`` is the i-th as a ``(1, 3, H, W)`` float32 array, preprocessed as
            ``Predictor`` does; made one at a time, the ranges folded after each.
        method: ``"minmax"`` or ``"percentile"`` (99.999th, histogram) activation ranges.
        scheme: the integer format, a key of ``INT8_SCHEMES``.
    """
    global calibration_runs
    try:
        from onnxruntime import quantization
        from onnxruntime.quantization import shape_inference
    except ImportError:
        raise LrnetError("int8 quantisation needs onnxruntime: pip install onnxruntime") from None
    methods = {"minmax": "MinMax", "percentile": "Percentile"}
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
        shape_inference.quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)

        def write(tmp: Path) -> None:
            quantization.quantize_static(
                str(prepared),
                str(tmp),
                _calibration_reader(count, image),
                quant_format=quantization.QuantFormat.QDQ,
                per_channel=True,
                reduce_range=seven_bit,
                activation_type=getattr(quantization.QuantType, activations),
                weight_type=getattr(quantization.QuantType, weights),
                calibrate_method=getattr(quantization.CalibrationMethod, methods[method]),
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
