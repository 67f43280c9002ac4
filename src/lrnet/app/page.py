"""``build_page``: the Gradio page around an ``App``, its two tabs and its HTTP API's handlers.

No ``from __future__ import annotations``: Gradio reads the handlers' annotations as objects."""

import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrnet._errors import LrnetError
from lrnet.app.core import App, Labelled, check_opacity, info_markdown, shares_markdown, stage_index
from lrnet.visualize import legend


def _upload_path(payload: Any, workdir: Path) -> tuple[Path, str]:
    """The stored file and original name of an upload, checked to lie inside ``workdir``."""
    if isinstance(payload, dict):
        path, name = payload.get("path"), payload.get("orig_name")
    elif isinstance(payload, str):  # a video upload
        path, name = payload, None
    else:
        path, name = getattr(payload, "path", None), getattr(payload, "orig_name", None)
    if not path:
        raise LrnetError("the upload holds no file; upload it again")
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(workdir.resolve()):
        raise LrnetError("the upload is not in the app's upload folder; upload the file again")
    return resolved, str(name or resolved.name)


def _error_text(name: str, exc: BaseException | str) -> str:
    return f"**Cannot label {name}:** {exc}"


# The names of the page's HTTP API endpoints (gradio_client).
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
        _video_tab(app)
        _wire_image(app, num_stages, labelled_state, image)
    return page


def _wire_image(app: App, num_stages: int, state: Any, image: "_ImageTab") -> None:
    """Connect the image tab to its handlers (inside the page's ``gr.Blocks``)."""
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
            return cleared(_error_text(name, exc))
        except Exception as exc:  # a bug or an out-of-memory: say so, keep serving
            traceback.print_exc()
            return cleared(_error_text(name, f"internal error: {exc}"))
        shares, strip = shares_markdown(view, labelled), app.stage_strip(labelled)
        download = gr.DownloadButton(value=str(label_png), interactive=True)
        info = info_markdown(app, labelled)
        return labelled, view.overlay, view.mask, shares, strip, info, download, ""

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
            path, name = _upload_path(clip, app.workdir)
            alpha = check_opacity(opacity)
            start = time.perf_counter()
            folder = _session_folder(app.workdir, request, "video")
            video_path = app.label_video(path, folder, alpha=alpha)
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


def _legend(app: App, elem_id: str) -> Any:
    """The class colours as a picture (inside the page's ``gr.Blocks``)."""
    import gradio as gr

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


def _video_tab(app: App) -> None:
    """The video tab, wired to its handler (inside the page's ``gr.Blocks``)."""
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
    run_video.click(
        _video_handler(app),
        inputs=[video_in, opacity],
        outputs=[video_out, video_download, video_status],
        concurrency_limit=1,
        concurrency_id="model",
        api_name=API_VIDEO,
    )
