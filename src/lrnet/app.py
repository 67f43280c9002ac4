"""The ``lrnet app`` command: a local Gradio page that shows a model's coarse-to-fine label maps.

A thin layer over ``lrnet.predict.Predictor`` and ``lrnet.visualize``: ``App`` checks the input,
asks the predictor and draws what it says (no model logic here); ``build_page`` wraps those plain
methods in Gradio components; ``main`` loads the model, serves the page on the loopback address and
removes every uploaded or generated file when it stops. Gradio is an optional extra
(``pip install 'lrnet[app]'``) and is imported only when the command runs.
"""

import argparse
import os
import shutil
import signal
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

from lrnet._errors import LrnetError

if TYPE_CHECKING:
    from PIL import Image

    from lrnet.predict import Predictor
    from lrnet.video import VideoSource

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
    from lrnet.backends import describe

    return f"{describe(predictor.backend)} on {predictor.device}"


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
        max_run_pixels: largest size the network may run at (``lrnet.predict.run_size``).
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
        from lrnet.predict import run_size

        size = run_size(height, width, self.predictor.eval_size)
        if size[0] * size[1] > self.max_run_pixels:
            raise LrnetError(
                f"{name} is {height}x{width} (H x W) and this model runs at the image's own size; "
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
                        f"{name} is {height}x{width} (H x W), {width * height / 1e6:.0f} MP; the "
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
        from lrnet.data.transforms import resize_image
        from lrnet.predict import run_size

        name = name or Path(path).name
        image = self.open_image(path, name)
        start = time.perf_counter()
        prediction = self.predictor.predict(image)
        seconds = time.perf_counter() - start
        height, width = prediction.labels.shape
        scale = min(1.0, DISPLAY_SIDE / max(height, width))
        shown = (max(1, round(height * scale)), max(1, round(width * scale)))
        pixels = resize_image(prediction.image[None], shown)[0]
        return Labelled(
            name=name,
            pixels=(pixels.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy(),
            # uint8 (at most 255 classes, checked in __init__): a session keeps these for redraws.
            labels=prediction.labels.numpy().astype(np.uint8),
            stage_labels=[s.numpy().astype(np.uint8) for s in prediction.stage_labels],
            run_size=run_size(height, width, self.predictor.eval_size),
            seconds=seconds,
        )

    def view(self, labelled: Labelled, stage: int, alpha: float = 0.5) -> View:
        """Draw stage ``stage`` (0-based; negative counts from the finest) of a labelled image."""
        from lrnet.visualize import colorize, overlay

        stage = range(len(labelled.stage_labels))[stage]
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

    def label_video(self, path: str | Path, out_dir: str | Path, *, progress: bool = True) -> Path:
        """Label a short clip through ``lrnet.video.predict_video``; returns the overlay video.

        Raises:
            LrnetError: the video module or PyAV is missing, the file is not a video, or the clip
                is longer or larger than the limits.
        """
        try:
            from lrnet import video
        except ImportError:
            raise LrnetError("this lrnet has no video support (lrnet.video is missing)") from None
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
        )
        outputs = video.predict_video(self.predictor, limited, out_dir, progress=progress)
        return outputs.overlay


def shares_markdown(view: View, labelled: Labelled) -> str:
    """The class shares of a view as a Markdown table."""
    h, w = labelled.stage_labels[view.stage].shape
    rows = "\n".join(
        f"| {name} | {share * 100:.1f} % |" if share >= 0.001 else f"| {name} | < 0.1 % |"
        for name, share in view.shares
    )
    return f"Pixel shares at s_{view.stage + 1} ({h}x{w}):\n\n| class | share |\n|---|---:|\n{rows}"


def info_markdown(app: App, labelled: Labelled) -> str:
    """One line on the run: sizes, time, backend and precision, and every stage's size."""
    height, width = labelled.labels.shape
    stages = ", ".join(
        f"s_{k + 1} {s.shape[0]}x{s.shape[1]}" for k, s in enumerate(labelled.stage_labels)
    )
    return (
        f"**{labelled.name}** ({height}x{width}): labelled in **{labelled.seconds:.3f} s** with "
        f"{app.runtime}, the network ran at {labelled.run_size[0]}x{labelled.run_size[1]}. "
        f"Stages: {stages}."
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


def _stage_index(choice: str | None) -> int:
    """``"s_3"`` -> 2; nothing chosen -> the finest stage (-1)."""
    if not choice:
        return -1
    return int(str(choice).rsplit("_", 1)[-1]) - 1


def _error_text(name: str, exc: BaseException | str) -> str:
    return f"**Cannot label {name}:** {exc}"


def build_page(
    app: App, examples: Sequence[Path], num_stages: int, examples_label: str = "Examples"
) -> Any:
    """The Gradio page around ``app``: image tab (stages, opacity, shares, download), video tab.

    Returns:
        A ``gradio.Blocks``; queue and launch it.
    """
    import gradio as gr

    on_image, on_view, on_video = _handlers(app)
    choices = [f"s_{k + 1}" for k in range(num_stages)]
    title = "lrnet: coarse-to-fine segmentation"
    with gr.Blocks(title=title, analytics_enabled=False) as page:
        gr.Markdown(
            f"## Label Refinement Network: {app.model_name}\n"
            f"{len(app.classes)} classes, {app.runtime}. The network predicts a coarse label map "
            f"s_1 at stride 32 and refines it stage by stage up to s_{num_stages}; pick a stage "
            "to see its map at its own resolution."
        )
        labelled_state = gr.State(None)
        image = _image_tab(app, examples, examples_label, choices)
        video = _video_tab(app)
        view_inputs = [labelled_state, image.stage, image.opacity]
        view_outputs = [image.overlay, image.mask, image.shares]
        image.input.change(
            on_image,
            inputs=[image.input, image.stage, image.opacity],
            outputs=[labelled_state, *view_outputs, image.status, image.download],
            preprocess=False,  # the upload is checked by App, which says what is wrong with it
            concurrency_limit=1,
            concurrency_id="model",
        )
        image.stage.change(on_view, view_inputs, view_outputs, show_progress="hidden")
        image.opacity.change(
            on_view, view_inputs, view_outputs, show_progress="hidden", trigger_mode="always_last"
        )
        video.run.click(
            on_video,
            inputs=[video.input],
            outputs=[video.output, video.download, video.status],
            concurrency_limit=1,
            concurrency_id="model",
        )
    return page


def _handlers(app: App) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    """The page's event handlers: an image upload, a stage or opacity change, a video run."""
    import gradio as gr

    sessions = app.workdir / "sessions"

    def session_folder(request: gr.Request | None, what: str) -> Path:
        # One folder per browser session, emptied on each request: a long-running app keeps
        # only each session's latest outputs.
        session = (getattr(request, "session_hash", None) or "anonymous").replace("/", "_")
        folder = sessions / session / what
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    def no_download() -> Any:
        return gr.DownloadButton(value=None, interactive=False)

    def on_image(payload: Any, stage: str, alpha: float, request: gr.Request) -> tuple[Any, ...]:
        if payload is None:
            return None, None, None, "", "", no_download()
        name = "the upload"
        try:
            path, name = _upload_path(payload, app.workdir)
            labelled = app.label_image(path, name)
            view = app.view(labelled, _stage_index(stage), alpha)
            label_png = app.save_labels(labelled, session_folder(request, "image"))
        except LrnetError as exc:
            return None, None, None, "", _error_text(name, exc), no_download()
        except Exception as exc:  # a bug or an out-of-memory: say so, keep serving
            traceback.print_exc()
            return None, None, None, "", _error_text(name, f"internal error: {exc}"), no_download()
        return (
            labelled,
            view.overlay,
            view.mask,
            shares_markdown(view, labelled),
            info_markdown(app, labelled),
            gr.DownloadButton(value=str(label_png), interactive=True),
        )

    def on_view(labelled: Labelled | None, stage: str, alpha: float) -> tuple[Any, ...]:
        if labelled is None:
            return gr.skip(), gr.skip(), gr.skip()
        view = app.view(labelled, _stage_index(stage), alpha)
        return view.overlay, view.mask, shares_markdown(view, labelled)

    tqdm_progress = gr.Progress(track_tqdm=True)  # shows predict_video's frame counter

    def on_video(
        path: str | None, request: gr.Request, progress: Any = tqdm_progress
    ) -> tuple[Any, ...]:
        if not path:
            return None, no_download(), "Upload a clip first."
        name = Path(path).name
        try:
            if not Path(path).resolve().is_relative_to(app.workdir.resolve()):
                raise LrnetError("the upload is not in the app's upload folder; upload it again")
            start = time.perf_counter()
            video_path = app.label_video(path, session_folder(request, "video"))
            seconds = time.perf_counter() - start
        except LrnetError as exc:
            return None, no_download(), _error_text(name, exc)
        except Exception as exc:
            traceback.print_exc()
            return None, no_download(), _error_text(name, f"internal error: {exc}")
        text = f"**{name}**: labelled in {seconds:.1f} s with {app.runtime}."
        return str(video_path), gr.DownloadButton(value=str(video_path), interactive=True), text

    return on_image, on_view, on_video


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


@dataclass
class _VideoTab:
    input: Any
    output: Any
    run: Any
    status: Any
    download: Any


def _image_tab(
    app: App, examples: Sequence[Path], examples_label: str, choices: list[str]
) -> _ImageTab:
    """The image tab's components (inside the page's ``gr.Blocks``)."""
    import gradio as gr

    from lrnet.visualize import legend

    with gr.Tab("Image"), gr.Row():
        with gr.Column(scale=2):
            image_in = gr.Image(
                label="Image",
                type="filepath",
                image_mode=None,
                sources=["upload", "clipboard"],
                elem_id="lrnet-input",
            )
            if examples:
                gr.Examples([[str(p)] for p in examples], inputs=[image_in], label=examples_label)
            stage = gr.Radio(
                choices,
                value=choices[-1],
                label="Stage",
                info="s_1 is the coarsest map (stride 32), the last one the prediction",
                elem_id="lrnet-stage",
            )
            opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Mask opacity")
            status = gr.Markdown(elem_id="lrnet-status")
            download = gr.DownloadButton(
                "Download label PNG", interactive=False, elem_id="lrnet-download"
            )
        with gr.Column(scale=3):
            with gr.Row():
                overlay_out = gr.Image(
                    label="Overlay", format="png", interactive=False, elem_id="lrnet-overlay"
                )
                mask_out = gr.Image(
                    label="Colour mask", format="png", interactive=False, elem_id="lrnet-mask"
                )
            gr.Image(
                legend(app.classes, app.palette, width=640),
                label="Classes",
                format="png",
                interactive=False,
                show_label=False,
                buttons=[],
                height="auto",
            )
            shares = gr.Markdown(elem_id="lrnet-shares")
    return _ImageTab(image_in, stage, opacity, status, download, overlay_out, mask_out, shares)


def _video_tab(app: App) -> _VideoTab:
    """The video tab's components (inside the page's ``gr.Blocks``)."""
    import gradio as gr

    with gr.Tab("Video"):
        gr.Markdown(
            f"A clip of up to {app.max_video_seconds:g} s ({app.max_video_frames} frames), "
            "labelled frame by frame as `lrnet predict` does; the overlay video comes back."
        )
        with gr.Row():
            video_in = gr.Video(
                label="Clip", sources=["upload"], include_audio=True, elem_id="lrnet-video-in"
            )
            video_out = gr.Video(label="Overlay video", interactive=False)
        run_video = gr.Button("Label the clip", variant="primary")
        video_status = gr.Markdown(elem_id="lrnet-video-status")
        video_download = gr.DownloadButton("Download overlay video", interactive=False)
    return _VideoTab(video_in, video_out, run_video, video_status, video_download)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Needs the app extra: pip install 'lrnet[app]'. Uploads and results live in a temporary "
        "folder that is removed when the app stops (Ctrl-C)."
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
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})"
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


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(args: argparse.Namespace) -> int:
    # Gradio reads these when it is imported and when the page is built: no telemetry, no
    # version check, and every upload inside this app's own temporary folder.
    workdir = Path(tempfile.mkdtemp(prefix="lrnet-app-"))
    os.environ["GRADIO_TEMP_DIR"] = str(workdir / "gradio")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    page = None
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` cleans up too
    try:
        from lrnet._distributed import resolve_device
        from lrnet.checkpoint import read_config
        from lrnet.predict import predictor_for

        predictor = predictor_for(args, args.model, resolve_device(args.device))
        try:
            import gradio  # noqa: F401
        except ImportError:
            raise LrnetError("lrnet app needs Gradio: pip install 'lrnet[app]'") from None
        app = App(predictor, workdir, model_name=str(args.model))
        dataset = read_config(args.model).data.dataset
        examples, examples_label = examples_for(dataset, workdir / "examples")
        warm_up = examples[0] if examples else write_examples(workdir / "warm_up")[0]
        num_stages = len(app.label_image(warm_up).stage_labels)  # also warms the model up
        page = build_page(app, examples, num_stages, examples_label)
        page.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
        try:
            page.launch(
                server_name=args.host,
                server_port=args.port,
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
    "runtime_text",
    "write_examples",
    "write_street_frames",
]
