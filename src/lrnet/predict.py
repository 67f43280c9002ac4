"""Inference on single images of any size (``Predictor``) and the ``lrnet predict`` command."""

from __future__ import annotations

import argparse
import glob
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np
from PIL import Image, ImageOps

from lrnet._errors import LrnetError
from lrnet.inference.image import crop_stage, letterbox, resize_logits, run_size
from lrnet.inference.outputs import (
    add_overwrite_argument,
    atomic_write,
    check_replaceable,
    same_file,
    written_by_lrnet,
)

if TYPE_CHECKING:  # torch is imported where it is used, so `lrnet predict --help` stays quick
    import torch
    from torch import Tensor, nn

    from lrnet.checkpoint import LoadedModel
    from lrnet.inference.backends import Backend
    from lrnet.inference.verify import Verdict

    ImageInput = str | Path | Image.Image | np.ndarray | Tensor

BATCH_SIZE = 8  # images per backend call when a list is predicted
BAND_ELEMENTS = 1 << 24  # final logits larger than this are upsampled in bands of rows

# Zoo models carry their own fast paths, per kind of CPU (``ZooEntry.fast_paths``); models not
# in the zoo (any checkpoint) get DEFAULT_FAST_PATHS: the fastest backend that is exact in fp32.
DEFAULT_FAST_PATHS: tuple[tuple[str, str], ...] = (("onnxruntime", "fp32"), ("torch", "fp32"))
AUTO_TOLERANCE = 0.3  # mIoU points
# A model without a val measurement (any checkpoint) runs int8 under `auto` once an int8 graph
# has been made for it (`lrnet export MODEL --int8 --calibrate ROOT`) whose final labels agree
# with fp32 on at least this share of the pixels of its first 8 calibration images. For scale:
# camvid-lite's int8 graph agrees on 99.42% of CamVid val pixels and scores 0.1 mIoU higher.
AUTO_AGREEMENT = 0.99
INT8_PATHS: tuple[tuple[str, str], ...] = (("openvino", "int8"), ("onnxruntime", "int8"))

# The most intra-op threads a backend is given: ONNX Runtime died with SIGSEGV at 100000.
MAX_THREADS = 256

# Files written per image, after the image's stem.
OUTPUT_SUFFIXES = ("_label.png", "_color.png", "_overlay.png", "_stages.png")
# PNG text chunk (key, value) marking the files lrnet predict wrote, so only those are replaced.
OUTPUT_MARK = ("lrnet", "predict")


@dataclass
class Prediction:
    """What the model says about one image.

    Attributes:
        image: ``(3, H, W)`` float32 input in [0, 1] as read (EXIF rotation applied), on the CPU.
        labels: ``(H, W)`` int64 final-stage class indices at the input's own size.
        stage_labels: one ``(h_k, w_k)`` int64 label map per stage, coarse to fine, each at the
            resolution that stage produced for the image's part of the network input (for a
            360 x 480 image run at 360 x 480: 12 x 15 ... 360 x 480).
        probabilities: ``(C, H, W)`` float32 softmax of the final stage at the input's size, or
            ``None`` unless asked for.
    """

    image: Tensor
    labels: Tensor
    stage_labels: list[Tensor]
    probabilities: Tensor | None = None


def _pil_to_tensor(image: Image.Image) -> Tensor:
    """``(3, H, W)`` float32 in [0, 1] from a PIL image, converted as the datasets read files
    (``lrnet.data._io``: EXIF rotation, 16-bit, alpha, palettes)."""
    import torch

    from lrnet.data._io import _to_rgb_array

    filename = getattr(image, "filename", "")  # set on images opened from a file
    name = f"image {filename}" if filename else "the image"
    array = _to_rgb_array(ImageOps.exif_transpose(image), name)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _checked_float(image: Tensor, what: str) -> Tensor:
    """A float image whose values must already be in [0, 1]: NaN or a value outside is an error."""
    import torch

    image = image.detach().float().cpu()
    if image.numel() == 0:
        raise LrnetError(f"{what} is empty ({tuple(image.shape)})")
    if not bool(torch.isfinite(image).all()):
        raise LrnetError(f"{what} holds NaN or infinite values; give RGB values in [0, 1]")
    low, high = (float(v) for v in image.aminmax())
    if low < 0.0 or high > 1.0:
        hint = " (divide 0..255 pixels by 255, or pass them as uint8)" if high > 1.0 else ""
        raise LrnetError(
            f"{what} has values from {low:.4g} to {high:.4g}; float images must be in [0, 1]{hint}"
        )
    return image


def load_image(image: ImageInput) -> Tensor:
    """``(3, H, W)`` float32 in [0, 1] from any single image ``Predictor.predict`` takes.

    Args:
        image: a file path; a PIL image; a numpy ``(H, W, 3)`` RGB array (uint8 0..255, or float
            in [0, 1]; OpenCV's BGR frames need ``frame[..., ::-1]`` first) or ``(H, W)`` gray;
            a ``(3, H, W)`` tensor, uint8 or float in [0, 1].

    Raises:
        LrnetError: the file cannot be read; a shape, dtype or value range that is not one of
            the above (float values outside [0, 1] or NaN are refused, not clipped); an image
            with no pixels; a tensor on the meta device (it has no values).
    """
    if getattr(image, "is_meta", False):
        raise LrnetError("the image tensor is on the meta device and has no values to label")
    pixels = _read_pixels(image)
    if pixels.shape[-2] == 0 or pixels.shape[-1] == 0:
        raise LrnetError(f"the image has no pixels ({pixels.shape[-2]}x{pixels.shape[-1]})")
    return pixels


def _read_pixels(image: ImageInput) -> Tensor:
    """``load_image`` before its size check."""
    import torch

    if isinstance(image, (str, Path)):
        from lrnet.data import read_image

        return read_image(image)
    if isinstance(image, Image.Image):
        return _pil_to_tensor(image)
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] != 3:
            raise LrnetError(
                f"expected a numpy (H, W, 3) RGB image (or (H, W) gray), got shape {image.shape}"
            )
        if not image.flags.writeable:  # torch.from_numpy warns on read-only memory
            image = image.copy()
        if image.dtype == np.uint8:
            array = np.ascontiguousarray(image)
            return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)
        if not np.issubdtype(image.dtype, np.floating):
            raise LrnetError(
                f"expected a uint8 or float numpy image, got {image.dtype}; convert to uint8 RGB"
            )
        pixels = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
        return _checked_float(pixels.permute(2, 0, 1).contiguous(), "the numpy image")
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise LrnetError(
                f"expected a (3, H, W) image tensor (uint8, or float in [0, 1]), got shape "
                f"{tuple(image.shape)}; a batch goes in as a list (list(images) for an "
                "(N, 3, H, W) tensor)"
            )
        if image.dtype == torch.uint8:
            return image.detach().cpu().float().div_(255.0)
        if not image.is_floating_point():
            raise LrnetError(f"expected a uint8 or float image tensor, got {image.dtype}")
        return _checked_float(image, "the image tensor")
    raise LrnetError(
        f"cannot predict on a {type(image).__name__}; give a path, a PIL image, a numpy (H, W, 3) "
        "RGB array, a (3, H, W) tensor or a list of them"
    )


def _zoo_name(source: Any) -> str | None:
    """The zoo name ``source`` stands for, or ``None`` (a local path wins, as in load_model)."""
    from lrnet import zoo

    if isinstance(source, zoo.ZooEntry):
        return source.name
    if isinstance(source, str) and source in zoo.ZOO and not Path(source).exists():
        return source
    return None


def _candidates(
    fast_paths: Sequence[tuple[str, str]], backend: str, precision: str
) -> list[tuple[str, str]]:
    """The (backend, precision) pairs to try in order, for the settings asked for."""
    from lrnet.inference.backends import BACKENDS, PRECISIONS, SUPPORTED

    if backend != "auto" and backend not in BACKENDS:
        raise LrnetError(f"backend {backend!r}: choose auto or one of {', '.join(BACKENDS)}")
    if precision != "auto" and precision not in PRECISIONS:
        raise LrnetError(f"precision {precision!r}: choose auto or one of {', '.join(PRECISIONS)}")
    if backend != "auto" and precision != "auto" and precision not in SUPPORTED[backend]:
        raise LrnetError(
            f"the {backend} backend runs {' or '.join(SUPPORTED[backend])}, not {precision}; "
            f"{precision} runs on {', '.join(b for b in BACKENDS if precision in SUPPORTED[b])}"
        )
    # the measured table first, then every pair that fits what was asked, fp32 PyTorch last
    pool = [*fast_paths, *DEFAULT_FAST_PATHS]
    pool += [(b, p) for p in PRECISIONS for b in BACKENDS if p in SUPPORTED[b]]
    chosen = [
        (b, p)
        for b, p in dict.fromkeys(pool)
        if backend in ("auto", b) and precision in ("auto", p)
    ]
    if precision == "auto":  # auto never picks a precision the table did not measure as good
        chosen = [c for c in chosen if c in fast_paths or c[1] == "fp32"]
    return chosen


def _argmax(logits: Tensor) -> Tensor:
    """``logits.argmax(0)`` of ``(C, H, W)`` logits as ``(H, W)`` int64: the first class wins a tie.

    ``max(0).indices`` gives the same labels, but ``argmax`` over the outermost dimension is
    slow on CPU: 43 ms against 8.5 ms for 11 x 360 x 480 on 2 cores (measured beside a training).
    """
    return logits.max(0).indices


def _full_size(
    logits: Tensor, size: tuple[int, int], probabilities: bool
) -> tuple[Tensor, Tensor | None]:
    """Labels (and softmax) of ``(C, h, w)`` logits resized to ``size`` (``resize_logits``).

    Large upsamplings without probabilities go through ``_banded_labels``, so memory stays at
    the logits' rows times the output width instead of the whole ``(C, H, W)``.
    """
    channels, height, width = logits.shape
    if (height, width) != size:
        upsampling = size[0] >= height and size[1] >= width
        if not probabilities and upsampling and channels * size[0] * size[1] > BAND_ELEMENTS:
            return _banded_labels(logits, size), None
        logits = resize_logits(logits[None], size)[0]
    return _argmax(logits), logits.softmax(0) if probabilities else None


def _banded_labels(logits: Tensor, size: tuple[int, int]) -> Tensor:
    """Argmax of ``(C, h, w)`` logits upsampled bilinearly to ``size``, a band of rows at a time.

    The same interpolation as ``resize_logits`` when enlarging (half-pixel centres, edges clamped): widths first
    with it, then each output row mixes its two source rows.
    """
    import torch

    channels, height, _ = logits.shape
    out_h, out_w = size
    wide = resize_logits(logits[None], (height, out_w))[0]  # (C, h, W)
    labels = torch.empty(out_h, out_w, dtype=torch.int64)
    step = max(1, BAND_ELEMENTS // (channels * out_w))
    for top in range(0, out_h, step):
        rows = torch.arange(top, min(out_h, top + step), dtype=torch.float64)
        source = ((rows + 0.5) * (height / out_h) - 0.5).clamp(min=0.0)
        first = source.floor().long().clamp(max=height - 1)
        second = (first + 1).clamp(max=height - 1)
        weight = (source - first).clamp(0.0, 1.0).float()[None, :, None]
        band = wide[:, first] * (1.0 - weight) + wide[:, second] * weight
        labels[top : top + len(rows)] = _argmax(band)
    return labels


def _open_backend(
    loaded: LoadedModel,
    candidates: Sequence[tuple[str, str]],
    device: torch.device,
    asked: tuple[str, str],
    calibrate: str | Path | None,
    threads: int | None,
    notes: list[str],
) -> Backend:
    """The first of ``candidates`` that runs here; each one skipped adds a line to ``notes``.

    Under ``precision="auto"`` an inexact path (int8, bf16) must also pass the check on this
    machine (``lrnet.inference.verify``) before it is chosen.

    Args:
        asked: the ``(backend, precision)`` settings given (``"auto"`` or a name).

    Raises:
        LrnetError: none can run; the message says why the first could not.
    """
    from lrnet.inference.backends import INSTALL_HINT, has_native_bf16, is_available

    failures: list[str] = []
    for back, prec in candidates:
        if not is_available(back):
            skip = f"{back} is not installed ({INSTALL_HINT[back]})"
        elif back != "torch" and device.type != "cpu":
            skip = f"{back} runs on the CPU here, not {device}"
        elif prec == "bf16" and asked[1] == "auto" and not has_native_bf16(device):
            skip = (
                f"bf16 skipped: {device} has no native bf16 (AVX512-BF16 or AMX), and "
                "emulated bf16 is slower than fp32"
            )
        else:
            try:
                backend, identity = _build(loaded, back, prec, device, calibrate, threads, notes)
                if prec == "fp32" or asked[1] != "auto":
                    return backend
                verdict = _verify(loaded, backend, identity, device)
                if verdict.ok:
                    notes.append(f"verified: {verdict.describe()}")
                    return backend
                skip = f"{back} {prec} skipped: {verdict.describe()}"
            except LrnetError as exc:
                skip = f"{back} {prec} skipped: {exc}"
        failures.append(skip)
        notes.append(skip)
    raise LrnetError(f"cannot run {asked[0]} {asked[1]}: {failures[0]}")


def _build(
    loaded: LoadedModel,
    back: str,
    prec: str,
    device: torch.device,
    calibrate: str | Path | None,
    threads: int | None,
    notes: list[str],
) -> tuple[Backend, str]:
    """The backend for one ``(back, prec)`` pair, and what it runs (a graph file's SHA-256 or,
    for PyTorch, the weights' fingerprint) for the check's cache."""
    from lrnet.export import cached_int8, cached_onnx, fingerprint
    from lrnet.inference.backends import OnnxRuntimeBackend, OpenVinoBackend, TorchBackend
    from lrnet.inference.verify import file_identity

    if back == "torch":
        return TorchBackend(loaded.model, prec, device), fingerprint(loaded)
    path = cached_int8(loaded, calibrate, progress=notes.append) if prec == "int8" else None
    path = path or cached_onnx(loaded)
    runner = OnnxRuntimeBackend if back == "onnxruntime" else OpenVinoBackend
    return runner(path, prec, threads), file_identity(path)


def _verify(loaded: LoadedModel, backend: Backend, identity: str, device: torch.device) -> Verdict:
    """``lrnet.inference.verify.verify`` of ``backend`` against fp32 PyTorch on this model."""
    from lrnet.inference.backends import TorchBackend
    from lrnet.inference.verify import verify

    return verify(
        backend,
        TorchBackend(loaded.model, "fp32", device),
        identity=identity,
        classes=loaded.classes,
        eval_size=loaded.config.data.eval_size,
    )


def _fast_paths(name: str | None, loaded: LoadedModel) -> tuple[tuple[tuple[str, str], ...], str]:
    """The ``(backend, precision)`` pairs ``auto`` may run for this model, fastest first, and
    why the inexact ones among them qualify (each is still checked on this machine)."""
    from lrnet import zoo
    from lrnet.inference.backends import cpu_class

    if name in zoo.ZOO:
        paths, measured_on = zoo.ZOO[name].fast_paths_for(cpu_class())
        if paths:
            return paths, f"within {AUTO_TOLERANCE} mIoU of fp32 PyTorch on {measured_on} CPUs"
    from lrnet.export import int8_record

    record = int8_record(loaded) or {}
    agreement = record.get("agreement")
    if isinstance(agreement, (int, float)) and agreement >= AUTO_AGREEMENT:
        why = f"whose int8 labels agree with fp32 on {100 * agreement:.2f}% of calibration pixels"
        return (*INT8_PATHS, *DEFAULT_FAST_PATHS), why
    return DEFAULT_FAST_PATHS, "exact"


def _auto_note(chosen: Backend, why: str, backend: str, precision: str) -> str:
    """What ``auto`` chose, and why, for ``Predictor.notes``."""
    if backend == "auto" and precision == "auto":
        return f"auto chose {chosen.name} {chosen.precision}: the fastest {why}"
    if backend == "auto":
        return f"auto chose {chosen.name} for {chosen.precision}"
    return f"auto chose {chosen.precision} on {chosen.name}: {why}"


class Predictor:
    """Runs a segmentation model on images of any size, through one backend.

    Pre- and post-processing live here only, so every backend sees the same pixels: the image is
    resized (``lrnet.data.transforms.resize_image``, antialiased bilinear) to fit inside the
    model's run size keeping its aspect ratio, never squashed, and padded right and bottom with 0
    (black) to the run size; the padding is cut off every stage's output and the final logits are
    resized back (same resize), so ``labels`` has the input's size. Models without a run size run
    at the image's own size (scaled when a side is under 32 or over 1024 pixels).

    Args:
        model: a PyTorch model returning a tuple of stage logits ``(N, C, h_k, w_k)`` for
            ``(N, 3, h, w)`` images in [0, 1] (run by ``TorchBackend`` fp32: BatchNorm folded,
            channels-last; the model passed in is not modified), or a ``lrnet.inference.backends`` backend.
        classes: class names (default ``"class 0"`` ...).
        palette: RGB colour per class (default: the PASCAL VOC colour map).
        eval_size: ``(h, w)`` to run at (the config's ``data.eval_size``), or ``None``.
        device: where a PyTorch model runs.
        label_map: raw ground-truth value -> class index, for masks stored in a dataset's own
            encoding (``lrnet.data.LABEL_MAPS``); ``None``: masks hold class indices.
        num_classes: C, when neither the model nor ``classes`` tells it.
        batch_size: images per backend call when a list is predicted.

    Attributes:
        backend: what runs the network; ``runtime`` names it and its precision
            (``"onnxruntime fp32"``) and ``notes`` says why it was chosen (``from_pretrained``).
    """

    def __init__(
        self,
        model: nn.Module | Backend,
        *,
        classes: Sequence[str] = (),
        palette: Sequence[Sequence[int]] = (),
        eval_size: Sequence[int] | None = None,
        device: torch.device | str = "cpu",
        label_map: np.ndarray | None = None,
        num_classes: int | None = None,
        batch_size: int = BATCH_SIZE,
    ):
        import torch

        from lrnet.inference.backends import TorchBackend
        from lrnet.visualize import default_palette

        if isinstance(model, torch.nn.Module):
            num_classes = num_classes or getattr(model, "num_classes", None)
            self.backend: Backend = TorchBackend(model, "fp32", device)
        else:
            self.backend = model
        self.device = torch.device(device) if self.backend.name == "torch" else torch.device("cpu")
        self.label_map = label_map
        self.num_classes = int(num_classes or len(classes))
        if self.num_classes < 1:
            raise LrnetError("the predictor needs the number of classes (num_classes or classes)")
        self.classes = list(classes) or [f"class {i}" for i in range(self.num_classes)]
        fallback = default_palette(self.num_classes)
        self.palette = [tuple(int(v) for v in c)[:3] for c in palette]
        self.palette += fallback[len(self.palette) :]
        self.eval_size = tuple(int(v) for v in eval_size) if eval_size is not None else None
        self.batch_size = max(1, int(batch_size))
        self.notes: list[str] = []

    @property
    def runtime(self) -> str:
        """The backend and precision that run the network, e.g. ``"onnxruntime int8"``."""
        return f"{self.backend.name} {self.backend.precision}"

    @classmethod
    def from_pretrained(
        cls,
        source: Any,
        *,
        backend: str = "auto",
        precision: str = "auto",
        device: torch.device | str = "cpu",
        threads: int | None = None,
        calibrate: str | Path | None = None,
    ) -> Predictor:
        """A predictor for any model ``lrnet.checkpoint.load_model`` takes, on a fast backend.

        Args:
            source: a zoo name (``"camvid-lite"``, see ``lrnet models``), a ``.pt`` checkpoint, a
                ``save_pretrained`` folder or a Hub repo id.
            backend: ``"auto"``, ``"torch"``, ``"onnxruntime"`` or ``"openvino"``.
            precision: ``"auto"``, ``"fp32"``, ``"bf16"`` (PyTorch autocast) or ``"int8"``
                (static quantisation, ``lrnet export MODEL --int8 --calibrate ROOT``).
                ``auto`` takes the fastest pair measured to stay within 0.3 mIoU of fp32
                PyTorch on this model on this kind of CPU (``ZooEntry.fast_paths``; for other
                models ONNX Runtime fp32, which is exact), runs an inexact one only once it has
                passed the check on this machine (``lrnet.inference.verify``), and skips what
                this machine cannot run (no native bf16, runtime not installed, no int8 graph
                made yet), each with a note in ``notes``.
            device: ``"cpu"`` or a CUDA device (PyTorch only).
            threads: intra-op threads of ONNX Runtime / OpenVINO, 1 .. ``MAX_THREADS``
                (default: PyTorch's).
            calibrate: training images or a dataset root to make the int8 graph from on first
                use (cached under ``$LRNET_HOME``).

        Raises:
            LrnetError: the model is unknown, missing or damaged; the settings do not exist; or
                an explicitly asked backend or precision cannot run here.
        """
        import torch

        from lrnet.checkpoint import load_model
        from lrnet.data import LABEL_MAPS

        check_threads(threads)
        device = torch.device(device)
        name = _zoo_name(source)
        _candidates(DEFAULT_FAST_PATHS, backend, precision)  # bad settings before any loading
        loaded = load_model(source)
        fast_paths, why = _fast_paths(name, loaded)
        candidates = _candidates(fast_paths, backend, precision)
        notes: list[str] = []
        chosen = _open_backend(
            loaded, candidates, device, (backend, precision), calibrate, threads, notes
        )
        if backend == "auto" or precision == "auto":
            measured = (chosen.name, chosen.precision) in fast_paths and chosen.precision != "fp32"
            notes.append(_auto_note(chosen, why if measured else "exact", backend, precision))
        predictor = cls(
            chosen,
            classes=loaded.classes,
            palette=loaded.palette,
            eval_size=loaded.config.data.eval_size,
            device=device,
            label_map=LABEL_MAPS.get(loaded.config.data.dataset),
            num_classes=loaded.config.model.num_classes,
        )
        predictor.notes = notes
        return predictor

    def preprocess(self, pixels: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """The network input for one ``(3, H, W)`` image and the part of it that holds the image
        (``lrnet.inference.image.letterbox`` at this predictor's run size)."""
        return letterbox(pixels, self.eval_size)

    @overload
    def predict(self, image: ImageInput, *, probabilities: bool = False) -> Prediction: ...

    @overload
    def predict(
        self, image: list[ImageInput] | tuple[ImageInput, ...], *, probabilities: bool = False
    ) -> list[Prediction]: ...

    def predict(
        self,
        image: ImageInput | list[ImageInput] | tuple[ImageInput, ...],
        *,
        probabilities: bool = False,
    ) -> Prediction | list[Prediction]:
        """Label one image, or a list of images (run in batches where their sizes allow).

        Args:
            image: a file path; a PIL image; a numpy ``(H, W, 3)`` **RGB** array, uint8 or float
                in [0, 1] (the layout video decoders hand over; OpenCV's BGR needs
                ``frame[..., ::-1]``); a ``(3, H, W)`` tensor, uint8 or float in [0, 1]; or a
                list of any of these, of any sizes (``list(batch)`` for an ``(N, 3, H, W)``
                tensor).
            probabilities: also return the final stage's softmax at the input's size.

        Returns:
            One ``Prediction`` (a list for a list): the final label map at the input's size and
            every stage's label map. An image whose aspect differs from the run size is scaled
            to fit inside it and padded, not squashed (see the class docstring).

        Raises:
            LrnetError: an input that is none of the above; float values outside [0, 1] or NaN.
        """
        import torch

        with torch.inference_mode():
            if isinstance(image, (list, tuple)):
                return self._predict_many(list(image), probabilities)
            return self._predict_many([image], probabilities)[0]

    def _predict_many(self, images: list[ImageInput], probabilities: bool) -> list[Prediction]:
        import torch

        pixels = [load_image(i) for i in images]
        by_canvas: dict[tuple[int, int], list[int]] = {}
        for index, p in enumerate(pixels):
            canvas = run_size(int(p.shape[-2]), int(p.shape[-1]), self.eval_size)
            by_canvas.setdefault(canvas, []).append(index)
        results: list[Prediction | None] = [None] * len(images)
        for canvas, indices in by_canvas.items():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                inputs = [self.preprocess(pixels[i]) for i in chunk]
                stages = self.backend.run(torch.stack([batch_input for batch_input, _ in inputs]))
                for row, (index, (_, valid)) in enumerate(zip(chunk, inputs, strict=True)):
                    results[index] = self._postprocess(
                        pixels[index], [s[row] for s in stages], valid, canvas, probabilities
                    )
                del inputs, stages
        return [r for r in results if r is not None]

    def _postprocess(
        self,
        pixels: Tensor,
        stages: list[Tensor],
        valid: tuple[int, int],
        canvas: tuple[int, int],
        probabilities: bool,
    ) -> Prediction:
        """Cut the padding off every ``(C, h_k, w_k)`` stage and bring the final one to the
        image's size."""
        height, width = (int(v) for v in pixels.shape[-2:])
        cropped = [crop_stage(s, valid, canvas) for s in stages]
        final = cropped[-1].float()
        labels, probs = _full_size(final, (height, width), probabilities)
        return Prediction(
            image=pixels,
            labels=labels,
            stage_labels=[_argmax(s) for s in cropped],
            probabilities=probs,
        )

    def save(
        self,
        prediction: Prediction,
        out_dir: str | Path,
        stem: str,
        ground_truth: Tensor | np.ndarray | None = None,
        *,
        overwrite: bool = False,
    ) -> list[Path]:
        """Write ``<stem>_label.png`` (class indices, mode "L"), ``_color.png`` (the colour mask in
        the palette, i.e. the training dataset's own colours), ``_overlay.png`` and
        ``_stages.png`` (coarse-to-fine panel, with ``ground_truth`` as its last tile) into
        ``out_dir``, each atomically. A file there that lrnet did not write is replaced only
        with ``overwrite``.

        Returns:
            The four paths, in that order.

        Raises:
            LrnetError: ``stem`` is not a plain file name, or a file in the way was not written
                by lrnet predict (it is never replaced), or writing failed.
        """
        from lrnet.visualize import as_mask, colorize, overlay, stage_panel

        if self.num_classes > 256:
            raise LrnetError(f"{self.num_classes} classes do not fit in an 8-bit label PNG")
        paths = output_paths(out_dir, stem)
        for path in paths:
            _check_replaceable(path, overwrite)
        images = (
            as_mask(prediction.labels),
            colorize(prediction.labels, self.palette),
            overlay(prediction.image, prediction.labels, self.palette),
            stage_panel(
                prediction.image,
                prediction.stage_labels,
                self.palette,
                ground_truth=ground_truth,
                classes=self.classes,
            ),
        )
        for picture, path in zip(images, paths, strict=True):
            _write_png(picture, path)
        return paths


def output_paths(out_dir: str | Path, stem: str) -> list[Path]:
    """The four files predict writes for ``stem``: ``out_dir/<stem>_label.png`` ... ``_stages.png``.

    Raises:
        LrnetError: ``stem`` is not a plain file name (a separator, ``..``, empty), so the files
            would land outside ``out_dir``.
    """
    if (
        not isinstance(stem, str)
        or stem in ("", ".", "..")
        or any(c in stem for c in "/\\\0")
        or Path(stem).name != stem
    ):
        raise LrnetError(
            f"output stem {stem!r} is not a plain file name; outputs are written inside the "
            "output folder only"
        )
    return [Path(out_dir) / f"{stem}{suffix}" for suffix in OUTPUT_SUFFIXES]


def _check_replaceable(path: Path, overwrite: bool = False) -> None:
    """An output may replace only an earlier output of lrnet, never a user's file (``outputs``)."""
    check_replaceable(
        path,
        overwrite=overwrite,
        advice="choose another --out folder, move the file, or give --overwrite",
    )


def _write_png(picture: Image.Image, path: Path) -> None:
    """Write ``picture`` atomically (temporary file + rename) with ``OUTPUT_MARK``."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(*OUTPUT_MARK)
    atomic_write(path, lambda f: picture.save(f, format="PNG", pnginfo=info))


def plan_outputs(
    images: Sequence[Path],
    out_dir: Path,
    ground_truth: dict[Path, Path] | None = None,
    overwrite: bool = False,
) -> dict[Path, list[Path]]:
    """The output files of every image, checked before anything is written.

    Raises:
        LrnetError: ``out_dir`` is a file; an output would replace an input image or a
            ground-truth mask, or a file that lrnet did not write (unless ``overwrite``); or two outputs of
            this run would be the same file (also on a case-insensitive file system).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LrnetError(f"--out {out_dir} is a file; give a folder (it is created if missing)")
    protected: dict[Path, str] = {}
    for image in images:
        protected[Path(image).resolve()] = f"the input {image}"
    for image, mask in (ground_truth or {}).items():
        protected[Path(mask).resolve()] = f"the ground truth {mask} of {image}"
    plan: dict[Path, list[Path]] = {}
    seen: dict[str, Path] = {}
    for image in images:
        paths = output_paths(out_dir, Path(image).stem)
        for path in paths:
            resolved = path.resolve()
            hit = protected.get(resolved) or next(
                (what for p, what in protected.items() if path.exists() and same_file(path, p)),
                None,
            )
            if hit is not None:
                raise LrnetError(
                    f"the output {path} of {image} would replace {hit}; nothing was written: "
                    "choose another --out folder, or rename the file"
                )
            key = str(resolved).casefold()
            if key in seen:
                raise LrnetError(
                    f"{seen[key]} and {image} would both write {path}; nothing was written: "
                    "predict them into different --out folders"
                )
            seen[key] = Path(image)
            _check_replaceable(path, overwrite)
        plan[Path(image)] = paths
    return plan


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def collect_inputs(inputs: Sequence[str], exclude: Path | None = None) -> list[Path]:
    """Image files from files, folders (their images, not recursive) and glob patterns.

    Files named explicitly are kept whatever their suffix; folders and globs contribute files with
    an image suffix, except earlier outputs (``*_label.png`` ... inside ``exclude``, the output
    folder, that carry lrnet's mark), so that re-running with ``--out`` on the input folder does
    not label them. A file of the user's with such a name is an input like any other.

    Raises:
        LrnetError: an input does not exist, or a folder or pattern holds no image.
    """
    from lrnet.data._io import IMAGE_SUFFIXES

    def is_image(p: Path) -> bool:
        return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES

    excluded = exclude.resolve() if exclude is not None else None
    found: list[Path] = []
    for text in inputs:
        path = Path(text).expanduser()
        if path.is_file():
            found.append(path)
            continue
        if path.is_dir():
            matches = sorted(p for p in path.iterdir() if is_image(p))
            what = f"folder {path}"
        elif _is_glob(text):
            matches = sorted(
                p for p in map(Path, glob.glob(str(path), recursive=True)) if is_image(p)
            )
            what = f"pattern {text!r}"
        elif path.exists():  # a named pipe or a device: reading it could block for ever
            raise LrnetError(f"input {path} is not a regular file; give image files or folders")
        else:
            raise LrnetError(f"input {path} does not exist")
        matches = [
            p
            for p in matches
            if not (
                p.resolve().parent == excluded
                and p.name.endswith(OUTPUT_SUFFIXES)
                and written_by_lrnet(p)
            )
        ]
        if not matches:
            raise LrnetError(f"{what} holds no image ({', '.join(IMAGE_SUFFIXES)})")
        found += matches
    unique = list(dict.fromkeys(p.resolve() for p in found))
    stems: dict[str, Path] = {}
    for p in unique:
        if p.stem in stems:
            raise LrnetError(
                f"{stems[p.stem]} and {p} have the same name and would overwrite each other's "
                "outputs; predict them into different --out folders"
            )
        stems[p.stem] = p
    return unique


def ground_truth_paths(gt: Path | None, images: Sequence[Path]) -> dict[Path, Path]:
    """The ground-truth mask of each image: ``gt`` itself for one image, or a folder's mask of
    the same stem. Images without a mask in the folder are left out (with a warning).

    Raises:
        LrnetError: ``gt`` does not exist, or is a file while there are several images.
    """
    if gt is None:
        return {}
    if gt.is_file():
        if len(images) != 1:
            raise LrnetError(
                f"--gt {gt} is a single mask but there are {len(images)} input images; give a "
                "folder of masks named like the images"
            )
        return {images[0]: gt}
    if not gt.is_dir():
        raise LrnetError(f"--gt {gt} does not exist")
    from lrnet.data._io import MASK_SUFFIXES

    masks = {p.stem: p for p in sorted(gt.iterdir()) if p.suffix.lower() in MASK_SUFFIXES}
    found = {}
    for image in images:
        if image.stem in masks:
            found[image] = masks[image.stem]
        else:
            _warn(
                f"no ground truth for {image} in {gt} (no mask named {image.stem}.*); "
                "its panel has no ground-truth column"
            )
    return found


def read_ground_truth(
    path: Path,
    size: tuple[int, int],
    label_map: np.ndarray | None = None,
    palette: Sequence[Sequence[int]] | None = None,
) -> np.ndarray:
    """A mask of class indices, checked to be ``size`` (H, W); values >= C are drawn as void.

    ``label_map`` translates a dataset's raw values first (SUN RGB-D's 1..37 -> 0..36, say);
    values it does not list become void (255). A colour (RGB) mask is read through ``palette``
    (the model's class colours, which for a model trained on colour masks are the masks' own):
    each colour in it is its class, any other colour void.

    Raises:
        LrnetError: the file cannot be read, holds colours and no palette is given, or has
            another size.
    """
    from lrnet.data import IGNORE_INDEX
    from lrnet.data._io import pack_colors, read_label_image

    stored = read_label_image(path)
    if stored.shape[:2] != size:
        raise LrnetError(
            f"ground truth {path} is {stored.shape[0]}x{stored.shape[1]} (H x W) but its image "
            f"is {size[0]}x{size[1]}; is it the mask of another image?"
        )
    if stored.ndim == 3:
        if not palette:
            raise LrnetError(
                f"ground truth {path} is a colour (RGB) image and this model has no class colours "
                "to read it with; give an index mask (pixel values are class ids)"
            )
        keys = pack_colors(np.array([tuple(c)[:3] for c in palette], dtype=np.int64))
        packed = pack_colors(stored)
        mask = np.full(size, IGNORE_INDEX, dtype=np.int64)
        for index, key in enumerate(keys):  # the first class wins a colour given twice
            mask[(packed == key) & (mask == IGNORE_INDEX)] = index
        return mask
    mask = stored.astype(np.int64)
    if label_map is not None:
        known = mask < len(label_map)
        mask = np.where(known, label_map[np.where(known, mask, 0)], IGNORE_INDEX)
        mask[mask < 0] = IGNORE_INDEX
    return mask


def _warn(message: str) -> None:
    print(f"lrnet predict: warning: {message}", file=sys.stderr)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Writes <stem>_label.png (class indices), <stem>_color.png, <stem>_overlay.png and "
        "<stem>_stages.png (input, s_1 .. s_6, ground truth) per image. Unreadable images are "
        "skipped with a warning; the command then exits with status 2 after the others are done."
    )
    parser.add_argument(
        "checkpoint",
        nargs="?",
        help="a .pt checkpoint, a save_pretrained folder, a zoo name (lrnet models) or a Hub "
        "repo id (user/repo); leave it out when --model is given",
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="image files, folders or glob patterns, or one video (.mp4 .avi .mov .mkv .webm)",
    )
    parser.add_argument(
        "--model",
        metavar="MODEL",
        help="the model to run instead of the positional checkpoint: a zoo name such as "
        "camvid-lite (lrnet models), a checkpoint, a save_pretrained folder or a Hub repo id",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    add_overwrite_argument(parser, "files in the output folder")
    parser.add_argument(
        "--gt",
        type=Path,
        metavar="MASK_OR_DIR",
        help="ground-truth mask (one input) or a folder of masks named like the images, in the "
        "encoding of the checkpoint's dataset (CamVid, VOC, SUN RGB-D files as shipped), as "
        "class indices, or as colours (RGB) in the model's palette; other values and colours "
        "are void",
    )
    parser.add_argument(
        "--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)"
    )
    add_backend_arguments(parser)
    video = parser.add_argument_group(
        "video",
        "A video input writes <stem>_overlay.mp4 (H.264) with each frame's time kept, streaming "
        "with constant memory; a folder with --fps or a webcam with --source go the same way.",
    )
    video.add_argument(
        "--source",
        type=int,
        metavar="N",
        help="label webcam /dev/videoN live (Linux, v4l2); Ctrl-C ends it and keeps the video",
    )
    video.add_argument(
        "--fps", type=float, help="treat the input folder as the frames of a video at this rate"
    )
    video.add_argument(
        "--frames",
        action="store_true",
        help="also write each frame's class indices as <stem>_labels/000000.png ...",
    )
    video.add_argument(
        "--mask-video", action="store_true", help="also write the colour-mask video <stem>_mask.mp4"
    )


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """``--backend``, ``--precision`` and ``--threads``, shared by predict and evaluate."""
    from lrnet.inference.backends import BACKENDS, PRECISIONS

    group = parser.add_argument_group(
        "backend",
        "auto runs the fastest backend and precision measured to keep the model's CamVid val "
        f"mIoU within {AUTO_TOLERANCE} of fp32 PyTorch on this kind of CPU (other models: their "
        "int8 graph where `lrnet export --int8` measured it to agree with fp32, else ONNX "
        "Runtime fp32, exact); an int8 or bf16 path runs only after it agreed with fp32 on the "
        "shipped check images on this machine (once; cached), and what this machine cannot run "
        "is skipped; the choice is printed.",
    )
    group.add_argument("--backend", default="auto", choices=["auto", *BACKENDS])
    group.add_argument(
        "--precision",
        default="auto",
        choices=["auto", *PRECISIONS],
        help="bf16: PyTorch autocast (fast where the CPU has AVX512-BF16 or AMX); int8: the "
        "graph `lrnet export MODEL --int8 --calibrate ROOT` makes (default: auto)",
    )
    group.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="threads of ONNX Runtime / OpenVINO (default: PyTorch's, the physical cores)",
    )


def check_threads(threads: Any, name: str = "threads") -> None:
    """``None`` (the default) or a whole number of threads from 1 to ``MAX_THREADS``.

    Raises:
        LrnetError: naming ``name``, the value and the range.
    """
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise LrnetError(
            f"{name} must be a whole number from 1 to {MAX_THREADS} (this machine has "
            f"{os.cpu_count()} CPUs), got {str(threads)[:80]}"
        )


def predictor_for(args: argparse.Namespace, model: Any, device: torch.device) -> Predictor:
    """``Predictor.from_pretrained`` with the command's backend flags; says what it runs."""
    from lrnet.inference.backends import describe

    check_threads(args.threads, "--threads")
    predictor = Predictor.from_pretrained(
        model, backend=args.backend, precision=args.precision, device=device, threads=args.threads
    )
    notes = "; ".join(predictor.notes)
    print(
        f"lrnet: running {describe(predictor.backend)}" + (f" ({notes})" if notes else ""),
        file=sys.stderr,
    )
    return predictor


def _predict_video(
    args: argparse.Namespace, model: str, inputs: list[str], device: torch.device
) -> int:
    """The video branch of ``main``: one clip, frame folder or webcam -> overlay video."""
    from lrnet.inference.video import (
        check_outputs,
        open_frames,
        open_video,
        open_webcam,
        predict_video,
    )

    if args.gt is not None:
        raise LrnetError("--gt applies to images; a video has no ground truth here")
    if args.source is not None:
        if inputs:
            raise LrnetError(f"--source {args.source} reads a webcam; drop the input {inputs[0]}")
        source = open_webcam(args.source)
    elif len(inputs) != 1:
        raise LrnetError(f"one video at a time, got {len(inputs)} inputs: {' '.join(inputs)}")
    elif args.fps is not None:
        source = open_frames(inputs[0], args.fps)
    else:
        source = open_video(inputs[0])
    extras = {"label_pngs": args.frames, "mask_video": args.mask_video}
    check_outputs(args.out, source, **extras, overwrite=args.overwrite)  # before the model loads
    predictor = predictor_for(args, model, device)
    outputs = predict_video(predictor, source, args.out, **extras, overwrite=args.overwrite)
    written = [p for p in (outputs.overlay, outputs.mask, outputs.labels) if p is not None]
    if outputs.truncated:
        _warn(
            f"{source.name} states {outputs.stated_frames} frames but only {outputs.frames} "
            "decoded: the file looks truncated; the outputs hold the frames it has"
        )
    stopped = " (stopped by Ctrl-C)" if outputs.interrupted else ""
    print(f"{source.name} -> {', '.join(map(str, written))}: {outputs.frames} frames{stopped}")
    return 0


def main(args: argparse.Namespace) -> int:
    from lrnet._distributed import resolve_device

    try:
        device = resolve_device(args.device)
    except RuntimeError as exc:
        raise LrnetError(f"--device {args.device!r} is not a device: {exc}") from None
    from lrnet.inference.video import is_video

    inputs = list(args.inputs)
    if args.model is not None:
        inputs = [args.checkpoint, *inputs] if args.checkpoint is not None else inputs
        model = args.model
    elif args.checkpoint is None:
        raise LrnetError("give the model (a checkpoint, or --model) and then the inputs")
    else:
        model = args.checkpoint
    if args.source is not None or args.fps is not None or any(map(is_video, inputs)):
        return _predict_video(args, model, inputs, device)
    if args.frames or args.mask_video:
        raise LrnetError("--frames and --mask-video apply to a video input")
    if not inputs:
        raise LrnetError("no input: give image files, folders, glob patterns or a video")
    images = collect_inputs(inputs, exclude=args.out)
    ground_truth = ground_truth_paths(args.gt, images)
    plan_outputs(images, args.out, ground_truth, args.overwrite)  # every refusal before any write
    predictor = predictor_for(args, model, device)
    failures: list[str] = []
    for path in images:
        try:
            prediction = predictor.predict(path)
            pixels_h, pixels_w = prediction.labels.shape
            gt_path = ground_truth.get(path)
            gt = (
                None
                if gt_path is None
                else read_ground_truth(
                    gt_path, (pixels_h, pixels_w), predictor.label_map, predictor.palette
                )
            )
        except LrnetError as exc:
            _warn(f"skipped: {exc}")
            failures.append(str(path))
            continue
        predictor.save(prediction, args.out, path.stem, gt, overwrite=args.overwrite)
        print(f"{path} -> {args.out / path.stem}_{{label,color,overlay,stages}}.png")
    if failures:
        raise LrnetError(
            f"{len(failures)} of {len(images)} images were skipped: {', '.join(failures)}"
        )
    return 0
