"""Video in, video out: frames from ``lrnet.inference.video_io``, labelled by a ``Predictor``,
drawn and encoded as each one arrives, so memory stays constant (README.md "Video")."""

from __future__ import annotations

import os
import queue
import shutil
import sys
import threading
from collections.abc import Generator, Iterable, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from tqdm import tqdm

from lrnet._errors import LrnetError
from lrnet._files import (
    OVERWRITE_ADVICE,
    check_replaceable,
    save_marked_png,
    temporary_path,
    written_by_lrnet,
)
from lrnet.inference.outputs import video_output_paths
from lrnet.visualize import as_mask, colorize, overlay

if TYPE_CHECKING:
    from lrnet.inference.predictor import Prediction, Predictor
from lrnet.inference.video_io import (
    VIDEO_SUFFIXES,
    Frame,
    VideoSource,
    VideoWriter,
    is_video,
    open_frames,
    open_video,
    open_webcam,
    video_codec,
)

_QUEUE_SIZE = 4  # frames in flight between two stages: bounds memory, enough to absorb jitter

T = TypeVar("T")


def label_frames(
    predictor: Predictor, frames: Iterable[Frame]
) -> Generator[tuple[Frame, Prediction], None, None]:
    """Each frame with the predictor's labels for it (``predict`` on its uint8 RGB pixels)."""
    for frame in frames:
        yield frame, predictor.predict(frame.pixels)


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


_DONE = object()


def _in_thread(items: Iterable[T], maxsize: int = _QUEUE_SIZE) -> Generator[T, None, None]:
    """Iterate ``items`` in a background thread, at most ``maxsize`` items ahead of the caller;
    an exception there is raised here, and closing this generator early stops the thread (and
    closes ``items``) before it returns."""
    handoff: queue.Queue[Any] = queue.Queue(maxsize)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            with suppress(queue.Full):
                handoff.put(item, timeout=0.05)
                return True
        return False

    def run() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # re-raised in the caller's thread, Ctrl-C included
            put(_Failure(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=run, name="lrnet-video", daemon=True)
    thread.start()
    try:
        while (item := handoff.get()) is not _DONE:
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


def _not_label_frames(path: Path) -> str | None:
    """The first entry of ``path`` that is not a label frame lrnet wrote (``000000.png`` ...
    with lrnet's mark), if any: only a folder of earlier frames may be replaced."""
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_symlink() or not path.is_dir():
        return path.name
    for entry in sorted(path.iterdir()):
        if not (entry.suffix == ".png" and entry.stem.isdigit() and written_by_lrnet(entry)):
            return entry.name
    return None


def check_outputs(
    out_dir: str | Path,
    source: VideoSource,
    *,
    label_pngs: bool = False,
    mask_video: bool = False,
    overwrite: bool = False,
) -> None:
    """Refuse, before anything is decoded or written, outputs that would replace an input or
    (without ``overwrite``) a file or a label folder that lrnet did not write.

    Raises:
        LrnetError: naming the output in the way.
    """
    overlay_path, mask_path, labels_path = video_output_paths(out_dir, source.stem)
    inputs = () if source.live else (Path(source.name),)
    for path in (overlay_path, mask_path) if mask_video else (overlay_path,):
        check_replaceable(path, overwrite=overwrite, inputs=inputs, advice=OVERWRITE_ADVICE)
    if not label_pngs:
        return
    check_replaceable(labels_path / "000000.png", inputs=inputs, overwrite=True)
    foreign = _not_label_frames(labels_path)
    if foreign and not (overwrite and labels_path.is_dir() and not labels_path.is_symlink()):
        raise LrnetError(
            f"{labels_path} exists and holds files lrnet did not write there (e.g. {foreign}); "
            f"refusing to replace it: {OVERWRITE_ADVICE}"
        )


class _FrameFolder:
    """Label PNGs written into a hidden folder, renamed to their final name by ``close``."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._temp = temporary_path(path)
        self._temp.mkdir()

    def write(self, labels: Any, index: int) -> None:
        save_marked_png(as_mask(labels), self._temp / f"{index:06d}.png", "video")

    def close(self) -> Path:
        if self.path.exists():  # an earlier run's frames: replaced, never mixed with these
            shutil.rmtree(self.path)
        os.replace(self._temp, self.path)
        return self.path

    def abort(self) -> None:
        shutil.rmtree(self._temp, ignore_errors=True)


@dataclass
class VideoOutputs:
    """What ``predict_video`` wrote.

    Attributes:
        overlay: the overlay video.
        mask: the colour-mask video, if asked for.
        labels: the folder of label PNGs (``000000.png`` ... class indices), if asked for.
        frames: frames labelled.
        stated_frames: the frame count the container states, or ``None``; more than ``frames``
            when the file is truncated at a frame boundary (the outputs hold what decoded).
        interrupted: a live source was stopped by Ctrl-C (the outputs are complete up to there).
        audio: the input's sound in the overlay video: ``"copied (aac)"``, ``"dropped: <why>"``,
            or ``None`` when the input has none.
    """

    overlay: Path
    mask: Path | None
    labels: Path | None
    frames: int
    stated_frames: int | None = None
    interrupted: bool = False
    audio: str | None = None

    @property
    def truncated(self) -> bool:
        """Fewer frames decoded than the container states."""
        return self.stated_frames is not None and self.frames < self.stated_frames


def predict_video(
    predictor: Predictor,
    source: VideoSource,
    out_dir: str | Path,
    *,
    label_pngs: bool = False,
    mask_video: bool = False,
    overlap: bool | None = None,
    progress: bool = True,
    alpha: float = 0.5,
    overwrite: bool = False,
) -> VideoOutputs:
    """Label every frame of ``source`` and write ``out_dir/<stem>_overlay.mp4``, frame by frame.

    Args:
        label_pngs: also write the class indices as ``<stem>_labels/000000.png`` ...
        mask_video: also write the colour masks as ``<stem>_mask.mp4``.
        overlap: decode, inference and encode in three threads; ``None``: unless PyTorch runs.
        progress: a tqdm bar on stderr counting frames, with frames/s.
        alpha: weight of the mask colour in the overlay.
        overwrite: replace outputs in ``out_dir`` that lrnet did not write (``check_outputs``).

    Raises:
        LrnetError: no frames, one that cannot be decoded, or an output that may not be replaced
            (earlier files are kept). A file cut at a frame boundary: ``VideoOutputs.truncated``.
    """
    check_outputs(
        out_dir, source, label_pngs=label_pngs, mask_video=mask_video, overwrite=overwrite
    )
    overlay_path, mask_path, labels_path = video_output_paths(out_dir, source.stem)
    results = _labelled(predictor, source, overlap)
    rate, time_base = source.rate, source.time_base
    outputs: list[VideoWriter | _FrameFolder] = []
    try:  # each output is listed as it opens, so a failure aborts those already open
        overlay_video = VideoWriter(overlay_path, rate, time_base, audio_from=source.audio)
        outputs.append(overlay_video)
        if mask_video:
            outputs.append(VideoWriter(mask_path, rate, time_base))
        if label_pngs:
            outputs.append(_FrameFolder(labels_path))
        interrupted = _drain(results, outputs, predictor.palette, alpha, source, progress)
        if overlay_video.frames == 0:
            raise LrnetError(f"{source.name} has no video frames to label")
        written = [output.close() for output in outputs]
    except BaseException:
        for output in outputs:
            output.abort()
        raise
    audio = overlay_video.audio
    if audio is not None and audio.startswith("dropped"):
        print(f"lrnet: {source.name}: the overlay video has no sound ({audio})", file=sys.stderr)
    return VideoOutputs(
        overlay=written[0],
        mask=mask_path if mask_video else None,
        labels=labels_path if label_pngs else None,
        frames=overlay_video.frames,
        stated_frames=source.num_frames,
        interrupted=interrupted,
        audio=audio,
    )


def _labelled(
    predictor: Predictor, source: VideoSource, overlap: bool | None
) -> Generator[tuple[Frame, Prediction], None, None]:
    """The frames of ``source`` with their predictions: decode and inference each in a thread of
    their own when ``overlap``, else one after the other here."""
    if overlap is None:
        # Threads, except for PyTorch, whose intra-op threads the decode and encode threads slow
        # down (camvid-lite fp32: 19.7 frames/s threaded, 24.0 serial; docs/benchmarks.md).
        overlap = getattr(getattr(predictor, "backend", None), "name", None) != "torch"
    frames: Iterable[Frame] = _in_thread(source) if overlap else source
    results = label_frames(predictor, frames)
    return _in_thread(results) if overlap else results


def _drain(
    results: Generator[tuple[Frame, Prediction], None, None],
    outputs: Sequence[VideoWriter | _FrameFolder],
    palette: Sequence[Sequence[int]],
    alpha: float,
    source: VideoSource,
    progress: bool,
) -> bool:
    """Draw and encode every labelled frame into ``outputs`` (the overlay video first, then the
    mask video and the label folder where asked for), a tqdm bar counting them; ``True`` when a
    live source was stopped by Ctrl-C (the only way to end it: what it recorded is kept)."""
    bar = tqdm(total=source.num_frames, unit="frame", desc=source.stem, disable=not progress)
    with bar, closing(results):  # closing the generator stops and joins the threads
        try:
            for frame, prediction in results:
                labels = prediction.labels
                for output in outputs:
                    if isinstance(output, _FrameFolder):
                        output.write(labels, frame.index)
                    elif output is outputs[0]:
                        drawn = overlay(frame.pixels, labels, palette, alpha)
                        output.write(np.asarray(drawn), frame.pts)
                    else:
                        output.write(np.asarray(colorize(labels, palette)), frame.pts)
                bar.update()
        except KeyboardInterrupt:
            if not source.live:
                raise
            return True
    return False


__all__ = [
    "VIDEO_SUFFIXES",
    "Frame",
    "VideoOutputs",
    "VideoSource",
    "VideoWriter",
    "check_outputs",
    "is_video",
    "label_frames",
    "open_frames",
    "open_video",
    "open_webcam",
    "predict_video",
    "video_codec",
]
