"""``Predictor``: an image in, ``Prediction`` out, through preprocess -> backend -> postprocess.

All numpy: torch is loaded only when a PyTorch model or the torch backend runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from lrnet._checks import class_names, device_name, palette_colors, size_pair, whole_number
from lrnet._errors import ArgumentError, LrnetError
from lrnet.inference import auto
from lrnet.inference.backends import Backend, TorchBackend
from lrnet.inference.image import (
    MIN_SIZE,
    crop_stage,
    labels_at,
    letterbox,
    load_image,
    resize,
    run_size,
    softmax,
)
from lrnet.inference.outputs import check_output, image_output_paths, write_png
from lrnet.visualize import as_mask, colorize, default_palette, overlay, stage_panel

if TYPE_CHECKING:
    import torch
    from torch import nn

    from lrnet.inference.image import ImageInput
    from lrnet.sources import LoadedModel

BATCH_SIZE = 8  # images per backend call when a list is predicted


@dataclass
class Prediction:
    """What the model says about one image, as numpy arrays.

    Attributes:
        image: ``(3, H, W)`` float32 input in [0, 1] as read (EXIF rotation applied).
        labels: ``(H, W)`` int64 final-stage class indices at the input's own size.
        stage_labels: one ``(h_k, w_k)`` int64 label map per stage, coarse to fine, each at the
            resolution that stage produced for the image's part of the network input (for a
            360 x 480 image run at 360 x 480: 12 x 15 ... 360 x 480).
        probabilities: ``(C, H, W)`` float32 softmax of the final stage at the input's size, or
            ``None`` unless asked for.
    """

    image: np.ndarray
    labels: np.ndarray
    stage_labels: list[np.ndarray]
    probabilities: np.ndarray | None = None


class Predictor:
    """Runs a segmentation model on images of any size, through one backend.

    Every backend sees the same pixels: ``lrnet.inference.image.letterbox`` fits the image
    inside the run size, unsquashed, and ``labels`` comes back at the input's size
    (docs/deploy.md, "The aspect ratio").

    Args:
        model: a PyTorch model returning a tuple of stage logits ``(N, C, h_k, w_k)`` for
            ``(N, 3, h, w)`` images in [0, 1] (run by ``TorchBackend`` fp32, leaving the model
            passed in unmodified), or a ``lrnet.inference.backends`` backend.
        classes: class names (default ``"class 0"`` ...).
        palette: RGB colour per class (default: the PASCAL VOC colour map).
        eval_size: ``(h, w)`` to run at (the config's ``data.eval_size``; each at least 32).
        device: where a PyTorch model runs (``lrnet._checks.device_name``).
        label_map: raw ground-truth value -> class index, for masks stored in a dataset's own
            encoding (``lrnet.data.LABEL_MAPS``); ``None``: masks hold class indices.
        num_classes: C, when neither the model nor ``classes`` tells it.
        batch_size: images per backend call when a list is predicted.

    Raises:
        ValueError, TypeError: an argument of the wrong type or out of range, named.

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
        device = device_name("device", device)
        names, colors = class_names("classes", classes), palette_colors("palette", palette)
        self.eval_size = None if eval_size is None else size_pair("eval_size", eval_size, MIN_SIZE)
        self.batch_size = whole_number("batch_size", batch_size, 1)
        if num_classes is not None:
            whole_number("num_classes", num_classes, 1)
        if _is_backend(model):
            self.backend: Backend = model  # type: ignore[assignment]
        else:
            num_classes = num_classes or getattr(model, "num_classes", None)
            self.backend = TorchBackend(model, "fp32", device)  # type: ignore[arg-type]
        self.device = device if self.backend.name == "torch" else "cpu"
        self._label_map = label_map
        self._masks_of: str | None = None  # a dataset whose mask encoding is read on first use
        self.num_classes = int(num_classes or len(names))
        if self.num_classes < 1:
            raise ArgumentError("the predictor needs the number of classes: num_classes or classes")
        self.classes = names or [f"class {i}" for i in range(self.num_classes)]
        self.palette = colors + default_palette(self.num_classes)[len(colors) :]
        self.notes: list[str] = []

    @property
    def label_map(self) -> np.ndarray | None:
        """Raw ground-truth value -> class index, or ``None``; a built-in dataset's is looked up
        on first use (``lrnet.data`` imports torch)."""
        if self._masks_of is not None:
            from lrnet.data import LABEL_MAPS

            self._label_map, self._masks_of = LABEL_MAPS.get(self._masks_of), None
        return self._label_map

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
            precision: ``"auto"``, ``"fp32"``, ``"bf16"`` (PyTorch autocast) or ``"int8"``.
                ``auto`` takes the fastest pair measured to stay within 0.3 mIoU of fp32 PyTorch
                and runnable here, each choice explained in ``notes`` (docs/deploy.md).
            device: ``"cpu"``, or ``"cuda"``, ``"cuda:N"``, ``"mps"`` (PyTorch only).
            threads: intra-op threads of ONNX Runtime / OpenVINO, 1 .. ``auto.MAX_THREADS``
                (default: PyTorch's).
            calibrate: training images or a dataset root to make the int8 graph from on first
                use (cached under ``$LRNET_HOME``).

        Raises:
            ValueError, TypeError: ``device`` or ``threads`` is not one lrnet runs on here.
            LrnetError: the model is unknown, missing or damaged; the settings do not exist; or
                an explicitly asked backend or precision cannot run here.
        """
        from lrnet.sources import open_model  # the weights stay unbuilt unless torch runs them

        auto.check_threads(threads)
        device = device_name("device", device)
        auto.check_settings(backend, precision)  # bad settings before any loading
        loaded = open_model(source)
        name = auto.zoo_name(source)
        chosen, notes = auto.choose(loaded, name, backend, precision, device, threads, calibrate)
        predictor = cls.from_loaded(loaded, chosen, device=device)
        predictor.notes = notes
        return predictor

    @classmethod
    def from_loaded(
        cls, loaded: LoadedModel, model: nn.Module | Backend | None = None, **options: Any
    ) -> Predictor:
        """A predictor with the classes, palette, run size and mask encoding of ``loaded``,
        running ``model`` (default: ``loaded.model``); ``options`` go to ``Predictor``."""
        predictor = cls(
            loaded.model if model is None else model,
            classes=loaded.classes,
            palette=loaded.palette,
            eval_size=loaded.config.data.eval_size,
            num_classes=loaded.config.model.num_classes,
            **options,
        )
        predictor._masks_of = loaded.config.data.dataset
        return predictor

    def preprocess(self, pixels: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
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
            image: what ``lrnet.inference.image.load_image`` takes (a path, a PIL image, an
                ``(H, W, 3)`` **RGB** array, a ``(3, H, W)`` tensor; uint8, or float in [0, 1];
                an OpenCV BGR frame needs ``frame[..., ::-1]``), or a list of them of any sizes
                (``list(batch)`` for an ``(N, 3, H, W)`` tensor).
            probabilities: also return the final stage's softmax at the input's size.

        Returns:
            One ``Prediction``, or a list for a list.

        Raises:
            LrnetError: an input that is none of the above; float values outside [0, 1] or NaN.
        """
        if isinstance(image, (list, tuple)):
            return self._predict_many(list(image), probabilities)
        return self._predict_many([image], probabilities)[0]

    def _predict_many(self, images: list[ImageInput], probabilities: bool) -> list[Prediction]:
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
                stages = self.backend.run(np.stack([batch_input for batch_input, _ in inputs]))
                for row, (index, (_, valid)) in enumerate(zip(chunk, inputs, strict=True)):
                    results[index] = self._postprocess(
                        pixels[index], [s[row] for s in stages], valid, canvas, probabilities
                    )
                del inputs, stages
        return [r for r in results if r is not None]

    def _postprocess(
        self,
        pixels: np.ndarray,
        stages: list[np.ndarray],
        valid: tuple[int, int],
        canvas: tuple[int, int],
        probabilities: bool,
    ) -> Prediction:
        """Cut the padding off every ``(C, h_k, w_k)`` stage; the final one to the image's size."""
        size = (int(pixels.shape[-2]), int(pixels.shape[-1]))
        cropped = [crop_stage(np.asarray(s, dtype=np.float32), valid, canvas) for s in stages]
        probs = softmax(resize(cropped[-1], size)) if probabilities else None
        return Prediction(
            image=pixels,
            labels=probs.argmax(0) if probs is not None else labels_at(cropped[-1], size),
            stage_labels=[s.argmax(0) for s in cropped],
            probabilities=probs,
        )

    def save(
        self,
        prediction: Prediction,
        out_dir: str | Path,
        stem: str,
        ground_truth: np.ndarray | None = None,
        *,
        overwrite: bool = False,
    ) -> list[Path]:
        """Write ``<stem>_label.png`` (class indices), ``_color.png`` (the palette's colours),
        ``_overlay.png`` and ``_stages.png`` (coarse-to-fine panel, ``ground_truth`` last) into
        ``out_dir``, each atomically; returns the four paths.

        Raises:
            LrnetError: ``stem`` is not a plain file name, or a file in the way was not written
                by lrnet predict (replaced only with ``overwrite``), or writing failed.
        """
        if self.num_classes > 256:
            raise LrnetError(f"{self.num_classes} classes do not fit in an 8-bit label PNG")
        paths = image_output_paths(out_dir, stem)
        for path in paths:
            check_output(path, overwrite)
        image, labels, palette = prediction.image, prediction.labels, self.palette
        panel = stage_panel(
            image, prediction.stage_labels, palette, ground_truth=ground_truth, classes=self.classes
        )
        images = (
            as_mask(labels),
            colorize(labels, palette),
            overlay(image, labels, palette),
            panel,
        )
        for picture, path in zip(images, paths, strict=True):
            write_png(picture, path)
        return paths


def _is_backend(model: Any) -> bool:
    """A ``Backend`` (``name``, ``precision``, ``run``) rather than a PyTorch model."""
    return all(hasattr(model, a) for a in ("name", "precision", "run")) and not callable(
        getattr(model, "parameters", None)
    )
