"""``App``: the page's work as plain methods (check an input, label it, draw a stage, label a
clip), over ``lrnet.inference.predictor.Predictor`` and ``lrnet.visualize``; no Gradio here."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lrnet._errors import ArgumentError, ArgumentTypeError, LrnetError
from lrnet.inference import video
from lrnet.inference.backends import describe
from lrnet.inference.image import resize, run_size
from lrnet.visualize import as_mask, colorize, overlay, stage_panel

if TYPE_CHECKING:
    from lrnet.inference.predictor import Predictor

# Limits on what a user may send; each refusal says which limit and what to do.
MAX_IMAGE_PIXELS = 40_000_000  # a decoded image (8-bit RGB: 120 MB)
MAX_RUN_PIXELS = 2_100_000  # what the network may run at (1920 x 1080 fits)
MAX_VIDEO_SECONDS = 20.0
MAX_VIDEO_FRAMES = 600
DISPLAY_SIDE = 1024  # pictures on the page are scaled down to this longer side


@dataclass
class Labelled:
    """One labelled image, as the page keeps it between redraws.

    Attributes:
        name: the file name as uploaded.
        pixels: ``(h, w, 3)`` uint8 image at display size (longer side at most ``DISPLAY_SIDE``).
        labels: ``(H, W)`` uint8 final labels at the input's size (the label PNG).
        stage_labels: one ``(h_k, w_k)`` uint8 map per stage, coarse to fine, each at its own size.
        run_size: ``(h, w)`` the network ran at.
        seconds: wall time of ``Predictor.predict``.
    """

    name: str
    pixels: np.ndarray
    labels: np.ndarray
    stage_labels: list[np.ndarray]
    run_size: tuple[int, int]
    seconds: float


@dataclass
class View:
    """What the page shows for one stage: overlay, colour mask and class shares.

    Attributes:
        overlay: the stage's label map blended over the image, at display size.
        mask: the stage's colour mask at display size (nearest: s_1 stays blocky).
        shares: ``(class name, fraction of the stage map's pixels)``, largest first, zeros left out.
        stage: 0-based stage index.
    """

    overlay: Image.Image
    mask: Image.Image
    shares: list[tuple[str, float]]
    stage: int


def runtime_text(predictor: Predictor) -> str:
    """What runs the network: ``"onnxruntime 1.32.0 fp32 on cpu"`` (backend, version, precision)."""
    return f"{describe(predictor.backend)} on {predictor.device}"


def _nearest(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``labels`` scaled to ``size`` ``(h, w)`` with nearest neighbour (each cell a block)."""
    if labels.shape == size:
        return labels
    picture = as_mask(labels).resize((size[1], size[0]), Image.Resampling.NEAREST)
    return np.asarray(picture).astype(np.int64)


class App:
    """The page's work as plain methods: check an input, label it, draw a stage, label a clip.

    Args:
        predictor: the model.
        workdir: the app's temporary folder; label PNGs and videos are written under it.
        model_name: how the page names the model.
        max_image_pixels: largest decoded image.
        max_run_pixels: largest size the network may run at (``lrnet.inference.image.run_size``).
        max_video_seconds: longest clip, in seconds.
        max_video_frames: longest clip, in frames.
    """

    def __init__(
        self,
        predictor: Predictor,
        workdir: str | Path,
        *,
        model_name: str = "",
        max_image_pixels: int = MAX_IMAGE_PIXELS,
        max_run_pixels: int = MAX_RUN_PIXELS,
        max_video_seconds: float = MAX_VIDEO_SECONDS,
        max_video_frames: int = MAX_VIDEO_FRAMES,
    ):
        if predictor.num_classes > 255:
            raise LrnetError(
                f"the model has {predictor.num_classes} classes; the app's label PNGs hold 255"
            )
        self.predictor = predictor
        self.workdir = Path(workdir)
        self.model_name = model_name
        self.max_image_pixels = max_image_pixels
        self.max_run_pixels = max_run_pixels
        self.max_video_seconds = max_video_seconds
        self.max_video_frames = max_video_frames
        self.runtime = runtime_text(predictor)

    @property
    def classes(self) -> list[str]:
        return list(self.predictor.classes)

    @property
    def palette(self) -> list[tuple[int, int, int]]:
        return [(int(c[0]), int(c[1]), int(c[2])) for c in self.predictor.palette]

    def _check_run_size(self, height: int, width: int, name: str) -> tuple[int, int]:
        size = run_size(height, width, self.predictor.eval_size)
        if size[0] * size[1] > self.max_run_pixels:
            raise LrnetError(
                f"{name} is {width}x{height} (W x H) and this model runs at the image's own size; "
                f"the app runs at most {self.max_run_pixels / 1e6:.1f} MP: scale it down "
                "(for example to 1080 pixels high)"
            )
        return size

    def open_image(self, path: str | Path, name: str | None = None) -> Image.Image:
        """The decoded image of an upload; ``LrnetError`` says what is wrong with one."""
        name = name or Path(path).name
        try:
            with Image.open(path) as file:
                width, height = file.size
                if width * height > self.max_image_pixels:
                    raise LrnetError(
                        f"{name} is {width}x{height} (W x H), {width * height / 1e6:.0f} MP; the "
                        f"app takes images up to {self.max_image_pixels / 1e6:.0f} MP: scale it "
                        "down first"
                    )
                self._check_run_size(height, width, name)
                file.load()
                image = ImageOps.exif_transpose(file)
        except UnidentifiedImageError:
            raise LrnetError(
                f"{name} is not an image Pillow can read; upload a PNG, JPEG, BMP, TIFF or WebP"
            ) from None
        except Image.DecompressionBombError:
            raise LrnetError(f"{name} is far too large to decode; scale it down first") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise LrnetError(
                f"{name} is truncated or corrupt ({exc}); save it again or try another file"
            ) from None
        return image

    def label_image(self, path: str | Path, name: str | None = None) -> Labelled:
        """Check an image file (``open_image``) and label it."""
        name = name or Path(path).name
        image = self.open_image(path, name)
        start = time.perf_counter()
        prediction = self.predictor.predict(image)
        seconds = time.perf_counter() - start
        height, width = prediction.labels.shape
        scale = min(1.0, DISPLAY_SIDE / max(height, width))
        shown = (max(1, round(height * scale)), max(1, round(width * scale)))
        pixels = resize(prediction.image, shown)
        return Labelled(
            name=name,
            pixels=(np.clip(pixels, 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0),
            # uint8 (at most 255 classes, checked in __init__): a session keeps these for redraws.
            labels=prediction.labels.astype(np.uint8),
            stage_labels=[s.astype(np.uint8) for s in prediction.stage_labels],
            run_size=run_size(height, width, self.predictor.eval_size),
            seconds=seconds,
        )

    def view(self, labelled: Labelled, stage: int, alpha: float = 0.5) -> View:
        """Draw stage ``stage`` (0-based; negative counts from the finest) of a labelled image."""
        stage = _stage_number(stage, len(labelled.stage_labels))
        alpha = check_opacity(alpha)
        labels = labelled.stage_labels[stage]
        shown = _nearest(labels, labelled.pixels.shape[:2])
        counts = np.bincount(labels.ravel(), minlength=len(self.classes))[: len(self.classes)]
        total = max(int(labels.size), 1)
        shares = sorted(
            ((self.classes[c], int(n) / total) for c, n in enumerate(counts) if n),
            key=lambda item: -item[1],
        )
        return View(
            overlay=overlay(labelled.pixels, shown, self.palette, alpha),
            mask=colorize(shown, self.palette),
            shares=shares,
            stage=stage,
        )

    def class_at(self, labelled: Labelled, stage: int, x: int, y: int) -> str:
        """The class stage ``stage`` shows at pixel ``(x, y)`` of the display-size picture:
        ``"Road at (120, 300) in s_6"``; ``LrnetError`` outside the picture."""
        height, width = labelled.pixels.shape[:2]
        if not (0 <= x < width and 0 <= y < height):
            raise LrnetError(f"({x}, {y}) is outside the {width}x{height} (W x H) picture")
        stage = _stage_number(stage, len(labelled.stage_labels))
        index = int(_nearest(labelled.stage_labels[stage], (height, width))[y, x])
        name = self.classes[index] if index < len(self.classes) else "void"
        return f"{name} at ({x}, {y}) in s_{stage + 1}"

    def stage_strip(self, labelled: Labelled) -> Image.Image:
        """The input and every stage's map side by side (``lrnet.visualize.stage_panel``, the
        ``_stages.png`` of ``lrnet predict``), titled with sizes as W x H."""
        titles = [
            "input",
            *(f"s_{k + 1} {s.shape[1]}x{s.shape[0]}" for k, s in enumerate(labelled.stage_labels)),
        ]
        return stage_panel(
            labelled.pixels, labelled.stage_labels, self.palette, titles=titles, max_tile_side=240
        )

    def save_labels(self, labelled: Labelled, folder: str | Path) -> Path:
        """Write ``<stem>_label.png``: the final class indices at the input's size (mode "L")."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{Path(labelled.name).stem or 'image'}_label.png"
        as_mask(labelled.labels).save(path)
        return path

    def _limited(self, source: video.VideoSource) -> Iterator[Any]:
        """The frames of ``source``, refused once past the app's length or size limits."""
        for frame in source:
            if frame.index == 0:
                height, width = frame.pixels.shape[:2]
                self._check_run_size(height, width, Path(source.name).name)
            seconds = float(frame.pts * source.time_base)
            if frame.index >= self.max_video_frames or seconds > self.max_video_seconds:
                raise LrnetError(self._too_long(Path(source.name).name))
            yield frame

    def _too_long(self, name: str) -> str:
        return (
            f"{name} is longer than the app's limit of {self.max_video_seconds:g} s or "
            f"{self.max_video_frames} frames; trim it, or run lrnet predict on the whole clip"
        )

    def label_video(
        self, path: str | Path, out_dir: str | Path, *, alpha: float = 0.5, progress: bool = True
    ) -> Path:
        """Label a short clip with ``lrnet.inference.video.predict_video``; returns the overlay.

        ``alpha`` is the mask colour's weight. ``LrnetError``: PyAV is missing, the file is not a
        video, or the clip is past the limits.
        """
        source = video.open_video(path)
        frames = source.num_frames
        if frames is not None and (
            frames > self.max_video_frames or frames / float(source.rate) > self.max_video_seconds
        ):
            raise LrnetError(self._too_long(Path(source.name).name))
        limited = video.VideoSource(
            source.name,
            source.stem,
            lambda: self._limited(source),
            rate=source.rate,
            time_base=source.time_base,
            num_frames=source.num_frames,
            audio=source.audio,
        )
        outputs = video.predict_video(
            self.predictor, limited, out_dir, progress=progress, alpha=alpha
        )
        return outputs.overlay


def shares_markdown(view: View, labelled: Labelled) -> str:
    """The class shares of a view as a Markdown table."""
    h, w = labelled.stage_labels[view.stage].shape
    rows = "\n".join(
        f"| {name} | {share * 100:.1f} % |" if share >= 0.001 else f"| {name} | < 0.1 % |"
        for name, share in view.shares
    )
    return f"Pixel shares at s_{view.stage + 1} ({w}x{h}):\n\n| class | share |\n|---|---:|\n{rows}"


def info_markdown(app: App, labelled: Labelled) -> str:
    """One line on the run: sizes (W x H), time, backend and precision, every stage's size."""
    height, width = labelled.labels.shape
    stages = ", ".join(
        f"s_{k + 1} {s.shape[1]}x{s.shape[0]}" for k, s in enumerate(labelled.stage_labels)
    )
    return (
        f"**{labelled.name}** ({width}x{height}, W x H): labelled in "
        f"**{labelled.seconds:.3f} s** with {app.runtime}, the network ran at "
        f"{labelled.run_size[1]}x{labelled.run_size[0]}. Stages: {stages}."
    )


def _stage_number(stage: Any, num_stages: int) -> int:
    """A 0-based stage index of the Python API (negative counts from the finest) as 0..n-1."""
    span = f"{-num_stages} to {num_stages - 1} (0 is s_1, -1 the finest)"
    if isinstance(stage, bool) or not isinstance(stage, int):
        got = f"{type(stage).__name__} {stage!r}"
        raise ArgumentTypeError(f"stage must be a whole number from {span}, got {got}")
    if not -num_stages <= stage < num_stages:
        raise ArgumentError(f"stage {stage} does not exist; give {span}")
    return stage % num_stages


def stage_index(choice: Any, num_stages: int) -> int:
    """``"s_3"`` -> 2; nothing chosen -> the finest stage; ``ArgumentError`` for other names."""
    if choice is None or choice == "":
        return num_stages - 1
    names = [f"s_{k + 1}" for k in range(num_stages)]
    if choice not in names:
        raise ArgumentError(f"stage {choice!r} does not exist; give one of {', '.join(names)}")
    return names.index(choice)


def check_opacity(value: Any) -> float:
    """The mask opacity as a float; ``ArgumentError`` unless a number from 0 to 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ArgumentError(
            f"opacity must be a number from 0 (image only) to 1 (mask only), got {value!r}"
        )
    return float(value)
