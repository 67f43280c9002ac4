"""The ``lrnet app`` command: a local Gradio page that shows a model's coarse-to-fine label maps.

A thin layer over ``lrnet.inference.predictor.Predictor`` and ``lrnet.visualize``: ``App`` checks the input,
asks the predictor and draws what it says (no model logic here); ``build_page`` wraps those plain
methods in Gradio components; ``main`` loads the model, serves the page on the loopback address and
removes every uploaded or generated file when it stops. Gradio is an optional extra
(``pip install 'lrnet[app]'``) and is imported only when the command runs.
"""

import argparse
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lrnet._checks import port_number
from lrnet._errors import ArgumentError, ArgumentTypeError, LrnetError

if TYPE_CHECKING:
    from PIL import Image

    from lrnet.inference.predictor import Predictor
    from lrnet.inference.video import VideoSource

DEFAULT_MODEL = "camvid-lite"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860

# Limits on what a user may send; each refusal says which limit and what to do.
MAX_UPLOAD = "64mb"  # any file, checked by Gradio before it is stored
MAX_IMAGE_PIXELS = 40_000_000  # a decoded image (8-bit RGB: 120 MB)
MAX_RUN_PIXELS = 2_100_000  # what the network may run at (1920 x 1080 fits)
MAX_VIDEO_SECONDS = 20.0
MAX_VIDEO_FRAMES = 600
DISPLAY_SIDE = 1024  # pictures on the page are scaled down to this longer side
QUEUE_SIZE = 16  # waiting requests; more are told the app is busy
EXAMPLE_SIZE = (240, 320)  # (H, W) of the bundled synthetic scenes
EXAMPLE_SEEDS = (3, 11, 20)
# The CamVid training frames that ship in lrnet/samples (daylight, dusk, daylight): the examples
# for CamVid models.
SAMPLES = ("camvid_0006R0_f02640.jpg", "camvid_0001TP_008460.jpg", "camvid_0016E5_04410.jpg")


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

    overlay: "Image.Image"
    mask: "Image.Image"
    shares: list[tuple[str, float]]
    stage: int


def runtime_text(predictor: "Predictor") -> str:
    """What runs the network: ``"onnxruntime 1.32.0 fp32 on cpu"`` (backend, version, precision)."""
    from lrnet.inference.backends import describe

    return f"{describe(predictor.backend)} on {predictor.device}"


def free_port(host: str) -> int:
    """A port nobody listens on at ``host`` now (``--port 0``: Gradio itself needs a number)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def model_notes(source: Any) -> str:
    """What a zoo model was trained on and where it is known to fail, for the page's header
    (``lrnet.zoo``: ``training_data``, ``limits``); ``""`` for other models."""
    from lrnet import zoo

    entry = zoo.ZOO.get(str(source))
    if entry is None or Path(str(source)).exists():  # a local path wins over a zoo name
        return ""
    notes = f"**{entry.name}** was trained on the {entry.training_data}."
    return notes + (f" It was {entry.limits}." if entry.limits else "")


def write_street_frames(folder: Path) -> list[Path]:
    """The CamVid street frames that ship in ``lrnet/samples``, copied into ``folder``."""
    samples = Path(str(resources.files("lrnet") / "samples"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SAMPLES:
        path = folder / name
        shutil.copyfile(samples / name, path)
        paths.append(path)
    return paths


def examples_for(dataset: str, folder: Path) -> tuple[list[Path], str]:
    """The page's example images for a model trained on ``dataset``, and their caption.

    Real street frames for CamVid models, the synthetic scenes for models trained on them, and
    none for other data (no image that ships with lrnet is of the kind they were trained on).
    """
    if dataset == "camvid":
        return write_street_frames(folder), (
            "Examples: CamVid street frames (lrnet/samples; research and personal use only, "
            "CC BY-NC 4.0)"
        )
    if dataset == "synthetic":
        return write_examples(folder), "Examples: synthetic street scenes made by lrnet"
    return [], ""


def write_examples(folder: Path) -> list[Path]:
    """Synthetic street scenes (``lrnet.data.synthetic``) as small PNGs, made here, free to share."""
    from PIL import Image

    from lrnet.data.synthetic import synthetic_scene

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in EXAMPLE_SEEDS:
        pixels, _ = synthetic_scene(np.random.default_rng(seed), *EXAMPLE_SIZE)
        path = folder / f"synthetic_scene_{seed}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def _nearest(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``labels`` scaled to ``size`` ``(h, w)`` with nearest neighbour (each cell a block)."""
    from PIL import Image

    from lrnet.visualize import as_mask

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
        max_image_pixels: largest decoded image accepted.
        max_run_pixels: largest size the network may run at (``lrnet.inference.image.run_size``).
        max_video_seconds: longest clip accepted.
        max_video_frames: most frames accepted in a clip.
    """

    def __init__(
        self,
        predictor: "Predictor",
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
        from lrnet.inference.image import run_size

        size = run_size(height, width, self.predictor.eval_size)
        if size[0] * size[1] > self.max_run_pixels:
            raise LrnetError(
                f"{name} is {width}x{height} (W x H) and this model runs at the image's own size; "
                f"the app runs at most {self.max_run_pixels / 1e6:.1f} MP: scale it down "
                "(for example to 1080 pixels high)"
            )
        return size

    def open_image(self, path: str | Path, name: str | None = None) -> "Image.Image":
        """The decoded image of an upload, or an error that says what is wrong with it.

        Raises:
            LrnetError: not an image, larger than the limits, truncated or corrupt.
        """
        from PIL import Image, ImageOps, UnidentifiedImageError

        path = Path(path)
        name = name or path.name
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
        """Check an image file and label it.

        Raises:
            LrnetError: the file is not an image the app accepts (see ``open_image``).
        """
        from lrnet.inference.image import resize, run_size

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
        from lrnet.visualize import colorize, overlay

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
        """What the view of stage ``stage`` shows at pixel ``(x, y)`` of the display-size picture:
        ``"Road at (120, 300) in s_6"``.

        Raises:
            LrnetError: the pixel is outside the picture.
        """
        height, width = labelled.pixels.shape[:2]
        if not (0 <= x < width and 0 <= y < height):
            raise LrnetError(f"({x}, {y}) is outside the {width}x{height} (W x H) picture")
        stage = _stage_number(stage, len(labelled.stage_labels))
        index = int(_nearest(labelled.stage_labels[stage], (height, width))[y, x])
        name = self.classes[index] if index < len(self.classes) else "void"
        return f"{name} at ({x}, {y}) in s_{stage + 1}"

    def stage_strip(self, labelled: Labelled) -> "Image.Image":
        """The input and every stage's map side by side (``lrnet.visualize.stage_panel``, the
        ``_stages.png`` of ``lrnet predict``), titled with sizes as W x H."""
        from lrnet.visualize import stage_panel

        titles = [
            "input",
            *(f"s_{k + 1} {s.shape[1]}x{s.shape[0]}" for k, s in enumerate(labelled.stage_labels)),
        ]
        return stage_panel(
            labelled.pixels, labelled.stage_labels, self.palette, titles=titles, max_tile_side=240
        )

    def save_labels(self, labelled: Labelled, folder: str | Path) -> Path:
        """Write ``<stem>_label.png``: the final class indices at the input's size (mode "L")."""
        from lrnet.visualize import as_mask

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{Path(labelled.name).stem or 'image'}_label.png"
        as_mask(labelled.labels).save(path)
        return path

    def _limited(self, source: "VideoSource") -> Iterator[Any]:
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
        """Label a short clip through ``lrnet.inference.video.predict_video``; returns the overlay video.

        ``alpha`` is the weight of the mask colour in the overlay.

        Raises:
            LrnetError: the video module or PyAV is missing, the file is not a video, or the clip
                is longer or larger than the limits.
        """
        try:
            from lrnet.inference import video
        except ImportError:
            raise LrnetError(
                "this lrnet has no video support (lrnet.inference.video is missing)"
            ) from None
        source = video.open_video(path)
        if source.num_frames is not None and (
            source.num_frames > self.max_video_frames
            or source.num_frames / float(source.rate) > self.max_video_seconds
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


def _upload_path(payload: Any, workdir: Path) -> tuple[Path, str]:
    """The stored file and original name of an upload, checked to lie inside ``workdir``."""
    if isinstance(payload, dict):
        path, name = payload.get("path"), payload.get("orig_name")
    else:
        path, name = getattr(payload, "path", None), getattr(payload, "orig_name", None)
    if not path:
        raise LrnetError("the upload holds no file; upload it again")
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(workdir.resolve()):
        raise LrnetError("the upload is not in the app's upload folder; upload the file again")
    return resolved, str(name or resolved.name)


def _stage_number(stage: Any, num_stages: int) -> int:
    """A 0-based stage index of the Python API (negative counts from the finest) as 0..n-1.

    Raises:
        ArgumentError: not a whole number in ``-num_stages .. num_stages - 1``.
    """
    if isinstance(stage, bool) or not isinstance(stage, int):
        raise ArgumentTypeError(
            f"stage must be a whole number from {-num_stages} to {num_stages - 1} (0 is s_1, -1 "
            f"the finest), got {type(stage).__name__} {stage!r}"
        )
    if not -num_stages <= stage < num_stages:
        raise ArgumentError(
            f"stage {stage} does not exist; give {-num_stages} to {num_stages - 1} (0 is s_1, "
            "-1 the finest)"
        )
    return stage % num_stages


def stage_index(choice: Any, num_stages: int) -> int:
    """``"s_3"`` -> 2; nothing chosen -> the finest stage (``num_stages - 1``).

    Raises:
        LrnetError: ``choice`` is not one of ``s_1`` .. ``s_<num_stages>``.
    """
    if choice is None or choice == "":
        return num_stages - 1
    names = [f"s_{k + 1}" for k in range(num_stages)]
    if choice not in names:
        raise ArgumentError(f"stage {choice!r} does not exist; give one of {', '.join(names)}")
    return names.index(choice)


def check_opacity(value: Any) -> float:
    """The mask opacity as a float in [0, 1].

    Raises:
        LrnetError: ``value`` is not a number from 0 (image only) to 1 (mask only).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ArgumentError(
            f"opacity must be a number from 0 (image only) to 1 (mask only), got {value!r}"
        )
    return float(value)


def _error_text(name: str, exc: BaseException | str) -> str:
    return f"**Cannot label {name}:** {exc}"


# The page's HTTP API (gradio_client): endpoint names, and the labels its outputs go by.
API_PREDICT, API_VIEW, API_VIDEO = "predict", "view_stage", "label_video"


def build_page(
    app: App,
    examples: Sequence[Path],
    num_stages: int,
    examples_label: str = "Examples",
    about: str = "",
) -> Any:
    """The Gradio page around ``app``: image tab (overlay, mask, all stages, stage control,
    opacity, class under the cursor, shares, download) and video tab (opacity, legend).

    Its API: ``/predict`` (image, stage, opacity), ``/view_stage`` (stage, opacity; after a
    ``/predict`` in the same session) and ``/label_video`` (clip, opacity).

    Args:
        about: Markdown under the title: what the model was trained on and where it fails.

    Returns:
        A ``gradio.Blocks``; queue and launch it.
    """
    import gradio as gr

    choices = [f"s_{k + 1}" for k in range(num_stages)]
    with gr.Blocks(title="lrnet: coarse-to-fine segmentation", analytics_enabled=False) as page:
        gr.Markdown(
            f"## Label Refinement Network: {app.model_name}\n"
            f"{len(app.classes)} classes, {app.runtime}. The network predicts a coarse label map "
            f"s_1 at stride 32 and refines it stage by stage up to s_{num_stages}; pick a stage "
            "to see its map at its own resolution, click the overlay to name a pixel's class."
            + (f"\n\n{about}" if about else "")
        )
        labelled_state = gr.State(None)
        image = _image_tab(app, examples, examples_label, choices)
        video = _video_tab(app)
        _wire(app, num_stages, labelled_state, image, video)
    return page


def _wire(app: App, num_stages: int, state: Any, image: "_ImageTab", video: "_VideoTab") -> None:
    """Connect the components to the handlers (inside the page's ``gr.Blocks``)."""
    on_image, on_view = _image_handlers(app, num_stages)
    view_outputs = [image.overlay, image.mask, image.shares]
    image.input.change(
        on_image,
        inputs=[image.input, image.stage, image.opacity],
        outputs=[state, *view_outputs, image.strip, image.status, image.download, image.pointed],
        preprocess=False,  # the upload is checked by App, which says what is wrong with it
        concurrency_limit=1,
        concurrency_id="model",
        api_name=API_PREDICT,
    )
    view = {"fn": on_view, "inputs": [state, image.stage, image.opacity], "outputs": view_outputs}
    image.stage.change(**view, show_progress="hidden", api_name=API_VIEW)
    image.opacity.change(
        **view, show_progress="hidden", trigger_mode="always_last", api_visibility="private"
    )
    image.overlay.select(
        _point_handler(app, num_stages), [state, image.stage], [image.pointed],
        show_progress="hidden",
        api_visibility="private",
    )  # fmt: skip
    video.run.click(
        _video_handler(app),
        inputs=[video.input, video.opacity],
        outputs=[video.output, video.download, video.status],
        concurrency_limit=1,
        concurrency_id="model",
        api_name=API_VIDEO,
    )


def _session_folder(workdir: Path, request: Any, what: str) -> Path:
    """One folder per browser session, emptied on each request: a long-running app keeps only
    each session's latest outputs."""
    session = (getattr(request, "session_hash", None) or "anonymous").replace("/", "_")
    folder = workdir / "sessions" / session / what
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _image_handlers(app: App, num_stages: int) -> tuple[Callable[..., Any], ...]:
    """The image tab's handlers: an upload (``/predict``), a stage or opacity change
    (``/view_stage``)."""
    import gradio as gr

    def cleared(status: str = "") -> tuple[Any, ...]:
        download = gr.DownloadButton(value=None, interactive=False)
        return None, None, None, "", None, status, download, ""

    def failed(name: str, text: str) -> tuple[Any, ...]:
        return cleared(_error_text(name, text))

    # The parameter names are the API's (gradio_client): image, stage, opacity.
    def on_image(image: Any, stage: Any, opacity: Any, request: gr.Request) -> tuple[Any, ...]:
        if image is None:  # the image was cleared
            return cleared()
        name = "the upload"
        try:
            path, name = _upload_path(image, app.workdir)
            index, alpha = stage_index(stage, num_stages), check_opacity(opacity)
            labelled = app.label_image(path, name)
            view = app.view(labelled, index, alpha)
            label_png = app.save_labels(labelled, _session_folder(app.workdir, request, "image"))
        except LrnetError as exc:
            return failed(name, str(exc))
        except Exception as exc:  # a bug or an out-of-memory: say so, keep serving
            traceback.print_exc()
            return failed(name, f"internal error: {exc}")
        return (
            labelled,
            view.overlay,
            view.mask,
            shares_markdown(view, labelled),
            app.stage_strip(labelled),
            info_markdown(app, labelled),
            gr.DownloadButton(value=str(label_png), interactive=True),
            "",
        )

    def on_view(labelled: Labelled | None, stage: Any, opacity: Any) -> tuple[Any, ...]:
        if labelled is None:
            raise gr.Error(
                "nothing is labelled in this session yet: upload an image (or call /predict "
                "with one) first, then pick a stage"
            )
        try:
            view = app.view(labelled, stage_index(stage, num_stages), check_opacity(opacity))
        except LrnetError as exc:
            raise gr.Error(str(exc)) from None
        return view.overlay, view.mask, shares_markdown(view, labelled)

    return on_image, on_view


def _point_handler(app: App, num_stages: int) -> Callable[..., Any]:
    """A click on the overlay: the class the shown stage gives that pixel."""
    import gradio as gr

    def on_point(labelled: Labelled | None, stage: Any, event: gr.SelectData) -> str:
        if labelled is None or not isinstance(event.index, (list, tuple)):
            return ""
        try:
            x, y = (int(v) for v in event.index[:2])
            return app.class_at(labelled, stage_index(stage, num_stages), x, y)
        except (LrnetError, TypeError, ValueError) as exc:
            return str(exc)

    return on_point


def _video_handler(app: App) -> Callable[..., Any]:
    """The video tab's handler (``/label_video``): a clip and an opacity in, the overlay out."""
    import gradio as gr

    def no_download() -> Any:
        return gr.DownloadButton(value=None, interactive=False)

    tqdm_progress = gr.Progress(track_tqdm=True)  # shows predict_video's frame counter

    def on_video(
        clip: str | None, opacity: Any, request: gr.Request, progress: Any = tqdm_progress
    ) -> tuple[Any, ...]:
        if not clip:
            return None, no_download(), "Upload a clip first."
        name = Path(clip).name
        try:
            if not Path(clip).resolve().is_relative_to(app.workdir.resolve()):
                raise LrnetError("the upload is not in the app's upload folder; upload it again")
            alpha = check_opacity(opacity)
            start = time.perf_counter()
            folder = _session_folder(app.workdir, request, "video")
            video_path = app.label_video(clip, folder, alpha=alpha)
            seconds = time.perf_counter() - start
        except LrnetError as exc:
            return None, no_download(), _error_text(name, exc)
        except Exception as exc:
            traceback.print_exc()
            return None, no_download(), _error_text(name, f"internal error: {exc}")
        text = f"**{name}**: labelled in {seconds:.1f} s with {app.runtime}."
        return str(video_path), gr.DownloadButton(value=str(video_path), interactive=True), text

    return on_video


@dataclass
class _ImageTab:
    input: Any
    stage: Any
    opacity: Any
    status: Any
    download: Any
    overlay: Any
    mask: Any
    shares: Any
    strip: Any
    pointed: Any


@dataclass
class _VideoTab:
    input: Any
    opacity: Any
    output: Any
    run: Any
    status: Any
    download: Any


def _legend(app: App, elem_id: str) -> Any:
    """The class colours as a picture (inside the page's ``gr.Blocks``)."""
    import gradio as gr

    from lrnet.visualize import legend

    return gr.Image(
        legend(app.classes, app.palette, width=900),
        label="Classes",
        format="png",
        interactive=False,
        show_label=False,
        buttons=[],
        height="auto",
        elem_id=elem_id,
    )


def _opacity(elem_id: str) -> Any:
    import gradio as gr

    return gr.Slider(0, 1, value=0.5, step=0.05, label="Mask opacity", elem_id=elem_id)


def _image_tab(
    app: App, examples: Sequence[Path], examples_label: str, choices: list[str]
) -> _ImageTab:
    """The image tab's components (inside the page's ``gr.Blocks``)."""
    import gradio as gr

    with gr.Tab("Image"):
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                image_in = gr.Image(
                    label="Image",
                    type="filepath",
                    image_mode=None,
                    sources=["upload", "clipboard"],
                    elem_id="lrnet-input",
                )
                if examples:
                    gr.Examples(
                        [[str(p)] for p in examples], inputs=[image_in], label=examples_label
                    )
                stage = gr.Radio(
                    choices,
                    value=choices[-1],
                    label="Stage",
                    info="s_1 is the coarsest map (stride 32), the last one the prediction",
                    elem_id="lrnet-stage",
                )
                opacity = _opacity("lrnet-opacity")
                status = gr.Markdown(label="Run", elem_id="lrnet-status")
                download = gr.DownloadButton(
                    "Download label PNG", interactive=False,
                    elem_id="lrnet-download",
                )  # fmt: skip
            with gr.Column(scale=3):
                overlay_out = gr.Image(
                    label="Overlay", format="png", interactive=False, height=560,
                    elem_id="lrnet-overlay",
                )  # fmt: skip
                pointed = gr.Markdown(label="Class under the cursor", elem_id="lrnet-pointed")
                _legend(app, "lrnet-legend")
                mask_out = gr.Image(
                    label="Colour mask", format="png", interactive=False, height=560,
                    elem_id="lrnet-mask",
                )  # fmt: skip
        strip = gr.Image(
            label="All stages, coarse to fine", format="png", interactive=False,
            elem_id="lrnet-strip",
        )  # fmt: skip
        shares = gr.Markdown(label="Pixel shares", elem_id="lrnet-shares")
    return _ImageTab(
        image_in, stage, opacity, status, download, overlay_out, mask_out, shares, strip, pointed
    )


def _video_tab(app: App) -> _VideoTab:
    """The video tab's components (inside the page's ``gr.Blocks``)."""
    import gradio as gr

    with gr.Tab("Video"):
        gr.Markdown(
            f"A clip of up to {app.max_video_seconds:g} s ({app.max_video_frames} frames), "
            "labelled frame by frame as `lrnet predict` does; the overlay video comes back."
        )
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                video_in = gr.Video(
                    label="Clip", sources=["upload"], include_audio=True, elem_id="lrnet-video-in"
                )
                opacity = _opacity("lrnet-video-opacity")
                run_video = gr.Button("Label the clip", variant="primary")
                video_status = gr.Markdown(label="Run", elem_id="lrnet-video-status")
                video_download = gr.DownloadButton("Download overlay video", interactive=False)
            with gr.Column(scale=3):
                video_out = gr.Video(label="Overlay video", interactive=False, height=560)
                _legend(app, "lrnet-video-legend")
    return _VideoTab(video_in, opacity, video_out, run_video, video_status, video_download)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Needs the app extra: pip install 'lrnet[app]'. Uploads and results live in a temporary "
        "folder that is removed when the app stops (Ctrl-C); the folders of apps that were "
        "killed are removed when the next app starts."
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"a zoo name, a .pt checkpoint or a save_pretrained folder (default: {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to bind (default: {DEFAULT_HOST}, this machine only; 0.0.0.0 opens it to "
        "the network)",
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=DEFAULT_PORT,
        help=f"port, 0 (any free one) to 65535 (default: {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)"
    )
    # The backend flags of lrnet predict, checked by Predictor.from_pretrained; declared here
    # without choices so that --help needs no torch.
    parser.add_argument(
        "--backend",
        default="auto",
        help="auto, torch, onnxruntime or openvino, as for lrnet predict (default: auto)",
    )
    parser.add_argument(
        "--precision", default="auto", help="auto, fp32, bf16 or int8, as for lrnet predict"
    )
    parser.add_argument(
        "--threads", type=int, metavar="N", help="threads of ONNX Runtime / OpenVINO"
    )


WORKDIR_PREFIX = "lrnet-app-"  # then the pid of the app that owns it: lrnet-app-<pid>-<random>
WORKDIR_MARK = ".lrnet-app"  # written into each upload folder: only marked folders are removed


def remove_stale_workdirs(folder: str | Path | None = None) -> list[Path]:
    """Remove the upload folders of apps that are gone (killed with -9, or a crashed machine):
    ``lrnet-app-<pid>-*`` folders in the temporary folder, holding the app's mark, whose process
    no longer runs, owned by this user. Returns the folders removed."""
    removed = []
    for path in Path(folder or tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*-*"):
        pid = path.name.removeprefix(WORKDIR_PREFIX).split("-", 1)[0]
        try:
            if not pid.isdigit() or path.is_symlink() or path.stat().st_uid != os.getuid():
                continue
            if not path.is_dir() or not (path / WORKDIR_MARK).is_file():
                continue  # not a folder lrnet made: leave it be
        except OSError:
            continue
        if int(pid) != os.getpid() and not _running(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or a number no process has: leave it be
    return True


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(args: argparse.Namespace) -> int:
    # Gradio reads these when it is imported and when the page is built: no telemetry, no
    # version check, and every upload inside this app's own temporary folder.
    remove_stale_workdirs()
    workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-"))
    (workdir / WORKDIR_MARK).touch()
    os.environ["GRADIO_TEMP_DIR"] = str(workdir / "gradio")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    page = None
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` cleans up too
    try:
        from lrnet.commands.common import device_of, predictor_for
        from lrnet.sources import read_config

        predictor = predictor_for(args, args.model, device_of(args))
        try:
            import gradio  # noqa: F401
        except ImportError:
            raise LrnetError("lrnet app needs Gradio: pip install 'lrnet[app]'") from None
        app = App(predictor, workdir, model_name=str(args.model))
        dataset = read_config(args.model).data.dataset
        examples, examples_label = examples_for(dataset, workdir / "examples")
        warm_up = examples[0] if examples else write_examples(workdir / "warm_up")[0]
        num_stages = len(app.label_image(warm_up).stage_labels)  # also warms the model up
        page = build_page(app, examples, num_stages, examples_label, model_notes(args.model))
        page.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
        try:
            page.launch(
                server_name=args.host,
                server_port=args.port or free_port(args.host),
                prevent_thread_lock=True,
                quiet=True,
                share=False,
                inbrowser=False,
                ssr_mode=False,
                max_file_size=MAX_UPLOAD,
                footer_links=[],
                allowed_paths=[str(workdir / "examples")],
            )
        except OSError:
            raise LrnetError(
                f"cannot serve on {args.host}:{args.port}: the port is taken (another app?) or "
                "the address is not this machine's; pass another --port or --host"
            ) from None
        host = "localhost" if args.host in ("0.0.0.0", "::") else args.host
        print(
            f"lrnet app: serving {args.model} at http://{host}:{page.server_port}/ "
            f"(bound to {args.host}; Ctrl-C stops it)",
            flush=True,
        )
        while page.is_running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("lrnet app: stopped", file=sys.stderr)
    finally:
        if page is not None:
            page.close()
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


__all__ = [
    "App",
    "Labelled",
    "View",
    "build_page",
    "examples_for",
    "model_notes",
    "runtime_text",
    "write_examples",
    "write_street_frames",
]
