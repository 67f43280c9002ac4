"""``Predictor``: an image in, ``Prediction`` out, through preprocess -> backend -> postprocess.

Pre- and post-processing live here only (``lrnet.inference.image``), so every backend sees the
same pixels and gives comparable labels; which backend runs is ``lrnet.inference.auto``'s choice
(``Predictor.from_pretrained``) or the caller's. torch is imported where a tensor is made, so that
importing this module (``lrnet predict --help``) stays quick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from lrnet._errors import LrnetError
from lrnet.inference import auto
from lrnet.inference.backends import Backend, TorchBackend
from lrnet.inference.image import crop_stage, letterbox, load_image, resize_logits, run_size
from lrnet.inference.outputs import check_output, image_output_paths, write_png

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from lrnet.inference.image import ImageInput

BATCH_SIZE = 8  # images per backend call when a list is predicted

BAND_ELEMENTS = 1 << 24  # final logits larger than this are upsampled in bands of rows


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


class Predictor:
    """Runs a segmentation model on images of any size, through one backend.

    Pre- and post-processing live here only, so every backend sees the same pixels: the image is
    resized (``lrnet.inference.image.letterbox``: antialiased bilinear) to fit inside the
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

        from lrnet.visualize import default_palette  # visualize imports torch

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
        """A predictor for any model ``lrnet.pretrained.load_model`` takes, on a fast backend.

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
            threads: intra-op threads of ONNX Runtime / OpenVINO, 1 .. ``auto.MAX_THREADS``
                (default: PyTorch's).
            calibrate: training images or a dataset root to make the int8 graph from on first
                use (cached under ``$LRNET_HOME``).

        Raises:
            LrnetError: the model is unknown, missing or damaged; the settings do not exist; or
                an explicitly asked backend or precision cannot run here.
        """
        import torch

        from lrnet.data import LABEL_MAPS  # lrnet.data and pretrained import torch
        from lrnet.pretrained import load_model

        auto.check_threads(threads)
        auto.check_settings(backend, precision)  # bad settings before any loading
        device = torch.device(device)
        loaded = load_model(source)
        name = auto.zoo_name(source)
        chosen, notes = auto.choose(loaded, name, backend, precision, device, threads, calibrate)
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
        from lrnet.visualize import as_mask, colorize, overlay, stage_panel  # torch

        if self.num_classes > 256:
            raise LrnetError(f"{self.num_classes} classes do not fit in an 8-bit label PNG")
        paths = image_output_paths(out_dir, stem)
        for path in paths:
            check_output(path, overwrite)
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
            write_png(picture, path)
        return paths
