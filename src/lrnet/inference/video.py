"""Video in, video out: frames decoded with PyAV, labelled by a ``Predictor``, overlays encoded.

A video is a stream: ``open_video`` / ``open_frames`` / ``open_webcam`` give a ``VideoSource``
that yields ``Frame`` objects one at a time, ``label_frames`` turns them into predictions, and
``predict_video`` draws and encodes each one as it arrives, so memory stays constant whatever
the clip's length. Decode, inference and encode run in three threads joined by bounded queues
(``overlap=True``; the default for ONNX Runtime and OpenVINO), or one after the other in the
calling thread (``overlap=False``; the default when the predictor runs PyTorch).

Timing: every output frame keeps its input frame's presentation time (its pts in the input's
time base, counted from the first frame), so variable-frame-rate clips keep their timing; the
output's nominal rate is the input's average rate.
"""

from __future__ import annotations

import heapq
import math
import os
import queue
import secrets
import shutil
import sys
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from PIL.PngImagePlugin import PngInfo
from tqdm import tqdm

from lrnet._checks import frames_per_second
from lrnet._errors import LrnetError
from lrnet._files import (
    MARK,
    check_replaceable,
    remove_stale_temporaries,
    temporary_prefix,
    written_by_lrnet,
)
from lrnet.inference.image import load_image
from lrnet.inference.outputs import video_output_paths

if TYPE_CHECKING:
    from lrnet.inference.predictor import Prediction, Predictor

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
DEFAULT_RATE = Fraction(30)  # frames/s when a source states none
_QUEUE_SIZE = 4  # frames in flight between two stages: bounds memory, enough to absorb jitter
_MPEG4_MAX_TIME_BASE = 65535  # MPEG-4 part 2 stores the time base denominator in 16 bits

T = TypeVar("T")


def _av() -> Any:
    """The ``av`` module, or an error that says how to install it."""
    try:
        import av
    except ImportError:
        raise LrnetError(
            "video needs PyAV: pip install 'lrnet[video]' (or pip install av)"
        ) from None
    return av


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        index: position in the stream, from 0.
        pixels: ``(H, W, 3)`` uint8 RGB.
        pts: presentation time in the source's ``time_base``, counted from the first frame.
    """

    index: int
    pixels: np.ndarray
    pts: int


class VideoSource:
    """Frames from a file, a folder of images or a webcam; iterate it to decode them one by one.

    Attributes:
        name: what the messages call it (the file, folder or device).
        stem: output files are named ``<stem>_overlay.mp4`` ...
        rate: average frames/s.
        time_base: unit of ``Frame.pts``, in seconds.
        num_frames: frame count the container states, or ``None`` (unknown, or live).
        live: a webcam: it never ends by itself; Ctrl-C ends it and keeps the output.
        audio: the file whose first audio stream the overlay video carries, or ``None``.
    """

    def __init__(
        self,
        name: str,
        stem: str,
        frames: Callable[[], Iterator[Frame]],
        *,
        rate: Fraction,
        time_base: Fraction,
        num_frames: int | None = None,
        live: bool = False,
        audio: str | None = None,
    ):
        self.name = name
        self.stem = stem
        self.rate = rate
        self.time_base = time_base
        self.num_frames = num_frames
        self.live = live
        self.audio = audio
        self._frames = frames

    def __iter__(self) -> Iterator[Frame]:
        return self._frames()


def is_video(path: str | Path) -> bool:
    """Whether ``path`` names a video file by its suffix (``VIDEO_SUFFIXES``)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _stream_frames(container: Any, name: str) -> Iterator[Frame]:
    """Decode the first video stream of an open container as RGB frames, closing it at the end.

    Every frame is converted to the first frame's size (a stream that changes size mid-way
    still gives one output size).
    """
    av = _av()
    # FFmpeg's default (slice) threading: frame threading would be faster on big frames but
    # drops a damaged frame silently where this raises.
    stream = container.streams.video[0]
    first_pts: int | None = None
    size: tuple[int, int] | None = None
    index = 0
    try:
        for packet in container.demux(stream):
            try:
                decoded = packet.decode()
            except av.error.FFmpegError as exc:
                raise LrnetError(
                    f"{name}: cannot decode the frame after frame {index} ({exc}); the file is "
                    "truncated or damaged; re-download or re-encode it"
                ) from None
            for frame in decoded:
                if size is None:
                    size = (frame.height, frame.width)
                pixels = frame.to_ndarray(format="rgb24", width=size[1], height=size[0])
                if frame.pts is None:  # some raw streams carry no times: assume the rate
                    pts = round(index / (stream.average_rate or DEFAULT_RATE) / stream.time_base)
                else:
                    first_pts = frame.pts if first_pts is None else first_pts
                    pts = frame.pts - first_pts
                yield Frame(index, pixels, pts)
                index += 1
    except av.error.FFmpegError as exc:  # demuxing a damaged container
        raise LrnetError(
            f"{name}: cannot read past frame {index} ({exc}); the file is truncated or damaged"
        ) from None
    finally:
        container.close()


def _open_container(target: str, name: str, **kwargs: Any) -> Any:
    av = _av()
    try:
        container = av.open(target, **kwargs)
    except av.error.FFmpegError as exc:
        raise LrnetError(
            f"{name} is not a video FFmpeg can read ({exc}); is it truncated, or another kind "
            "of file?"
        ) from None
    if not container.streams.video:
        container.close()
        raise LrnetError(f"{name} has no video stream (no frames to label)")
    return container


def _rate_of(stream: Any) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else DEFAULT_RATE


def open_video(path: str | Path) -> VideoSource:
    """A video file as a ``VideoSource``.

    Raises:
        LrnetError: the file is missing, not a video or has no video stream. Decoding errors
            (a truncated file) are raised while iterating, naming the frame.
    """
    path = Path(path)
    if not path.is_file():
        raise LrnetError(f"video {path} does not exist")
    container = _open_container(str(path), str(path))
    stream = container.streams.video[0]
    rate, time_base, frames = _rate_of(stream), stream.time_base, stream.frames or None
    audio = str(path) if container.streams.audio else None
    container.close()  # reopened by each iteration, so a source can be iterated twice

    def frames_of() -> Iterator[Frame]:
        return _stream_frames(_open_container(str(path), str(path)), str(path))

    return VideoSource(
        str(path),
        path.stem,
        frames_of,
        rate=rate,
        time_base=time_base,
        num_frames=frames,
        audio=audio,
    )


def open_frames(folder: str | Path, rate: float | Fraction = DEFAULT_RATE) -> VideoSource:
    """The images of a folder, in name order, as the frames of a video at ``rate`` frames/s
    (``MIN_FPS`` to ``MAX_FPS`` of ``lrnet._checks``, as ``--fps``).

    Raises:
        ValueError, TypeError: ``rate`` is out of range or not a number.
        LrnetError: the folder holds no image; while iterating, an image cannot be read or
            differs in size from the first.
    """
    from lrnet.data._io import IMAGE_SUFFIXES  # lrnet.data imports torch

    frames_per_second("rate", rate)
    rate = Fraction(rate).limit_denominator(1001)  # a small time base: 29.97 -> 2997/100
    folder = Path(folder)
    if not folder.is_dir():
        raise LrnetError(f"frame folder {folder} does not exist")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise LrnetError(f"folder {folder} holds no image ({', '.join(IMAGE_SUFFIXES)})")

    def frames_of() -> Iterator[Frame]:
        size: tuple[int, int] | None = None
        for index, path in enumerate(paths):
            pixels = (load_image(path).transpose(1, 2, 0) * 255).round().astype(np.uint8)
            if size is None:
                size = pixels.shape[:2]
            elif pixels.shape[:2] != size:
                raise LrnetError(
                    f"frame {path} is {pixels.shape[0]}x{pixels.shape[1]} (H x W) but the "
                    f"first frame is {size[0]}x{size[1]}; a video has one size"
                )
            yield Frame(index, pixels, index)

    return VideoSource(
        str(folder), folder.name, frames_of, rate=rate, time_base=1 / rate, num_frames=len(paths)
    )


def open_webcam(index: int) -> VideoSource:
    """The webcam ``/dev/video<index>`` through FFmpeg's v4l2 input (Linux).

    Raises:
        LrnetError: the machine has no such device, or this FFmpeg cannot capture from it.
    """
    av = _av()
    device = f"/dev/video{index}"
    name = f"webcam {device} (--source {index})"
    if sys.platform != "linux" or "video4linux2,v4l2" not in av.formats_available:
        raise LrnetError(f"{name}: capture needs Linux and FFmpeg's v4l2 input, absent here")
    if not Path(device).exists():
        raise LrnetError(f"{name}: this machine has no such video device")
    container = _open_container(device, name, format="v4l2")
    stream = container.streams.video[0]
    first: list[Any] = [container]  # the open device, used by the first iteration

    def frames_of() -> Iterator[Frame]:
        opened = first.pop() if first else _open_container(device, name, format="v4l2")
        return _stream_frames(opened, name)

    return VideoSource(
        name,
        f"webcam{index}",
        frames_of,
        rate=_rate_of(stream),
        time_base=stream.time_base,
        live=True,
    )


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
    """Iterate ``items`` in a background thread, at most ``maxsize`` items ahead of the caller.

    An exception in the thread is raised in the caller; closing this generator early stops the
    thread (and closes ``items``) before it returns.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
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
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


def video_codec() -> str:
    """``libx264`` (H.264) when PyAV's FFmpeg has it, else ``mpeg4`` (MPEG-4 part 2)."""
    av = _av()
    try:
        av.codec.Codec("libx264", "w")
    except Exception:  # UnknownCodecError; its module moved between PyAV versions
        return "mpeg4"
    return "libx264"


def _temp_name(path: Path) -> Path:
    """A hidden, unused name beside ``path``: a rename away from it, never mistaken for it.

    Named as ``atomic_write``'s temporaries (``.<name>.lrnet-<host>-<pid>-<random>.tmp``), so
    that those of a killed run are removed by the next write into the folder; the first call
    for a folder removes them (``remove_stale_temporaries``). Created with the usual
    permissions (umask), unlike ``tempfile``'s private 0600 files.
    """
    remove_stale_temporaries(path.parent)
    return path.with_name(f"{temporary_prefix(path)}{secrets.token_hex(4)}.tmp")


class VideoWriter:
    """Encodes RGB frames into an ``.mp4``, written atomically.

    Frames go to a hidden temporary file in the destination's folder, renamed to ``path`` by
    ``close``; ``abort`` (or leaving the ``with`` block by an exception, Ctrl-C included)
    deletes it, so a half-written video never sits under the final name. yuv420p needs even
    sides: an odd height or width is padded by repeating the last row or column.

    Args:
        path: the final ``.mp4``.
        rate: nominal frames/s (the encoder's rate control and the stream's stated rate).
        time_base: unit of the ``pts`` given to ``write``, in seconds.
        codec: ``libx264`` or ``mpeg4``; default: ``video_codec()``.
        audio_from: a video file whose first audio stream ``close`` copies in (no re-encoding;
            its times shifted as the frames' are, from the first video frame); ``audio`` then
            says whether it was copied or dropped.
    """

    def __init__(
        self,
        path: str | Path,
        rate: Fraction,
        time_base: Fraction,
        codec: str | None = None,
        audio_from: str | None = None,
    ):
        av = _av()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.codec = codec or video_codec()
        self.source_time_base = Fraction(time_base)
        self.time_base = self.source_time_base
        if self.codec == "mpeg4" and self.time_base.denominator > _MPEG4_MAX_TIME_BASE:
            self.time_base = Fraction(1, 1000)  # milliseconds: still keeps every frame's time
        self._temp = _temp_name(self.path)
        os.close(os.open(self._temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        self._container = av.open(str(self._temp), "w", format="mp4")
        self._container.metadata["comment"] = f"{MARK} video"  # so a rerun may replace it
        self._stream: Any = None
        self._rate = Fraction(rate)
        self._last_pts = -1
        self.frames = 0
        self.audio_from = audio_from
        self.audio: str | None = None

    def _start(self, height: int, width: int) -> None:
        options = {"preset": "veryfast", "crf": "20"} if self.codec == "libx264" else {}
        stream = self._container.add_stream(self.codec, rate=self._rate, options=options)
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = self.time_base  # so pts are not rounded to 1/rate
        stream.time_base = self.time_base
        if self.codec == "mpeg4":
            stream.bit_rate = stream.width * stream.height * 30  # 1 bit/pixel at 30 fps: clean
        self._stream = stream

    def write(self, pixels: np.ndarray, pts: int) -> None:
        """Encode one ``(H, W, 3)`` uint8 RGB frame shown at ``pts`` (in ``time_base`` units)."""
        av = _av()
        if self._stream is None:
            self._start(*pixels.shape[:2])
        pad = ((0, pixels.shape[0] % 2), (0, pixels.shape[1] % 2), (0, 0))
        if pad[0][1] or pad[1][1]:
            pixels = np.pad(pixels, pad, mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
        out_pts = round(pts * self.source_time_base / self.time_base)
        # Encoders need strictly increasing times; a repeated or backwards pts gets the next tick.
        self._last_pts = max(out_pts, self._last_pts + 1)
        frame.pts = self._last_pts
        frame.time_base = self.time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path:
        """Flush the encoder and move the finished file to ``path``; returns ``path``."""
        if self._stream is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
        self._container.close()
        if self.audio_from is not None:
            self.audio = add_audio(self._temp, self.audio_from)
        os.replace(self._temp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        with suppress(Exception):  # the container may be broken; the file goes anyway
            self._container.close()
        self._temp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if kind is not None:
            self.abort()


def _packets(container: Any, stream: Any, shift: int = 0) -> Iterator[tuple[float, int, Any]]:
    """``(seconds, kind, packet)`` of one stream in file order, times moved back by ``shift``
    ticks; packets without a time (the demuxer's flush markers) are left out."""
    kind = 0 if stream.type == "video" else 1
    for packet in container.demux(stream):
        if packet.dts is None or packet.pts is None:
            continue
        packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
        yield float(packet.dts * stream.time_base), kind, packet


def add_audio(video: Path, source: str) -> str:
    """Copy the first audio stream of ``source`` into the ``.mp4`` ``video`` (a remux: packets
    copied as they are, no re-encoding), timed as the frames were (from the source's first video
    frame) and cut at the end of ``video``. ``video`` is replaced only by a complete file.

    Returns:
        What happened: ``"copied (aac)"``, or ``"dropped: <why>"`` when the codec cannot go into
        an ``.mp4`` or the audio cannot be read (``video`` is then left as it was).
    """
    av = _av()
    combined = _temp_name(video)
    try:
        with av.open(source) as src, av.open(str(video)) as frames:
            audio_in, video_in = src.streams.audio[0], frames.streams.video[0]
            codec = audio_in.codec_context.name
            first = src.streams.video[0].start_time or 0  # the output's time 0
            shift = round(first * src.streams.video[0].time_base / audio_in.time_base)
            end = float(video_in.duration * video_in.time_base) if video_in.duration else math.inf
            with av.open(str(combined), "w", format="mp4") as out:
                try:
                    audio_out = out.add_stream_from_template(audio_in)
                except ValueError:
                    return f"dropped: its codec ({codec}) cannot be copied into an .mp4"
                video_out = out.add_stream_from_template(video_in)
                merged = heapq.merge(
                    _packets(frames, video_in), _packets(src, audio_in, shift), key=lambda p: p[:2]
                )
                for seconds, kind, packet in merged:
                    if kind == 1 and seconds >= end:
                        continue  # sound after the last frame (sound before the first, such
                        # as AAC's priming packet, is kept: the muxer's edit list hides it)
                    packet.stream = audio_out if kind else video_out
                    out.mux(packet)
        os.replace(combined, video)
    except av.error.FFmpegError as exc:
        return f"dropped: the audio cannot be read or written ({exc})"
    finally:
        combined.unlink(missing_ok=True)
    return f"copied ({codec})"


def _not_label_frames(path: Path) -> str | None:
    """The first entry of ``path`` that is not a label frame lrnet wrote (``000000.png`` ...
    with lrnet's mark), if any: a folder of earlier frames may be replaced, anything else is
    the user's."""
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
    advice = "choose another --out folder, move the file, or give --overwrite"
    for path in (overlay_path, mask_path) if mask_video else (overlay_path,):
        check_replaceable(path, overwrite=overwrite, inputs=inputs, advice=advice)
    if not label_pngs:
        return
    check_replaceable(labels_path / "000000.png", inputs=inputs, overwrite=True)
    foreign = _not_label_frames(labels_path)
    if foreign and not (overwrite and labels_path.is_dir() and not labels_path.is_symlink()):
        raise LrnetError(
            f"{labels_path} exists and holds files lrnet did not write there (e.g. {foreign}); "
            f"refusing to replace it: {advice}"
        )


class _FrameFolder:
    """Label PNGs written into a hidden folder, renamed to their final name by ``close``."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._temp = _temp_name(path)
        self._temp.mkdir()

    def write(self, labels: Any, index: int) -> None:
        from lrnet.visualize import as_mask  # imports torch

        info = PngInfo()
        info.add_text(MARK, "video")
        as_mask(labels).save(self._temp / f"{index:06d}.png", pnginfo=info)

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


def _write_frame(
    frame: Frame,
    prediction: Any,
    palette: Sequence[Sequence[int]],
    alpha: float,
    outputs: Sequence[VideoWriter | _FrameFolder],
) -> None:
    """One labelled frame into the overlay video, then the mask video and the label folder
    (``outputs``: the overlay first, then those asked for, in ``predict_video``'s order)."""
    from lrnet.visualize import colorize, overlay  # imports torch

    for output in outputs:
        if isinstance(output, _FrameFolder):
            output.write(prediction.labels, frame.index)
        elif output is outputs[0]:
            drawn = overlay(frame.pixels, prediction.labels, palette, alpha)
            output.write(np.asarray(drawn), frame.pts)
        else:
            output.write(np.asarray(colorize(prediction.labels, palette)), frame.pts)


def _threads_pay(predictor: Predictor) -> bool:
    """Threads, except when the predictor runs PyTorch, whose intra-op threads the decode and
    encode threads slow down (camvid-lite fp32: 19.7 frames/s threaded, 24.0 serial;
    docs/benchmarks.md)."""
    return getattr(getattr(predictor, "backend", None), "name", None) != "torch"


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
    """Label every frame of ``source`` and write the overlay video (and optional extras).

    Streams: one frame at a time through decode -> ``predictor.predict`` -> overlay -> encode,
    with at most a few frames in flight, so memory does not grow with the clip's length.

    Args:
        predictor: labels each ``(H, W, 3)`` uint8 RGB frame at the frame's own size.
        source: from ``open_video``, ``open_frames`` or ``open_webcam``.
        out_dir: where ``<stem>_overlay.mp4`` (and ``_mask.mp4``, ``_labels/``) go.
        label_pngs: also write each frame's class indices as ``<stem>_labels/000000.png`` ...
        mask_video: also write the colour-mask video ``<stem>_mask.mp4``.
        overlap: decode, inference and encode in three threads joined by bounded queues;
            ``False``: one after the other in this thread; ``None``: ``_threads_pay``.
        progress: a tqdm bar on stderr counting frames, with frames/s.
        alpha: weight of the mask colour in the overlay.
        overwrite: replace outputs in ``out_dir`` that lrnet did not write (``check_outputs``).

    Returns:
        The paths written and the frame count.

    Raises:
        LrnetError: the source has no frames or a frame cannot be decoded; nothing is left
            under the output names (earlier files there are kept). A file cut at a frame
            boundary decodes without error: ``VideoOutputs.truncated`` tells. An output would
            replace the input, or a file lrnet did not write (without ``overwrite``).
    """
    check_outputs(
        out_dir, source, label_pngs=label_pngs, mask_video=mask_video, overwrite=overwrite
    )

    overlay_path, mask_path, labels_path = video_output_paths(out_dir, source.stem)
    overlap = _threads_pay(predictor) if overlap is None else overlap
    frames: Iterable[Frame] = _in_thread(source) if overlap else source
    results = label_frames(predictor, frames)
    if overlap:
        results = _in_thread(results)  # inference in its own thread; overlay + encode here
    outputs: list[VideoWriter | _FrameFolder] = []
    try:
        overlay_video = VideoWriter(overlay_path, source.rate, source.time_base)
        overlay_video.audio_from = source.audio  # the input's sound goes into the overlay
        outputs.append(overlay_video)
        mask = VideoWriter(mask_path, source.rate, source.time_base) if mask_video else None
        labels = _FrameFolder(labels_path) if label_pngs else None
        outputs += [o for o in (mask, labels) if o is not None]
        interrupted = _drain(results, outputs, predictor.palette, alpha, source, progress)
        if overlay_video.frames == 0:
            raise LrnetError(f"{source.name} has no video frames to label")
        written = [output.close() for output in outputs]
    except BaseException:
        for output in outputs:
            output.abort()
        raise
    return VideoOutputs(
        overlay=written[0],
        mask=mask_path if mask_video else None,
        labels=labels_path if label_pngs else None,
        frames=overlay_video.frames,
        stated_frames=source.num_frames,
        interrupted=interrupted,
        audio=_say_if_dropped(source.name, overlay_video.audio),
    )


def _drain(
    results: Generator[tuple[Frame, Prediction], None, None],
    outputs: Sequence[VideoWriter | _FrameFolder],
    palette: Sequence[Sequence[int]],
    alpha: float,
    source: VideoSource,
    progress: bool,
) -> bool:
    """Draw and encode every labelled frame into ``outputs``, a tqdm bar counting them; ``True``
    when a live source was stopped by Ctrl-C (the only way to end it: what it recorded is kept)."""
    bar = tqdm(total=source.num_frames, unit="frame", desc=source.stem, disable=not progress)
    with bar, closing(results):  # closing the generator stops and joins the threads
        try:
            for frame, prediction in results:
                _write_frame(frame, prediction, palette, alpha, outputs)
                bar.update()
        except KeyboardInterrupt:
            if not source.live:
                raise
            return True
    return False


def _say_if_dropped(name: str, audio: str | None) -> str | None:
    """Print that the input's sound is not in the overlay video, and why; returns ``audio``."""
    if audio is not None and audio.startswith("dropped"):
        print(f"lrnet: {name}: the overlay video has no sound ({audio})", file=sys.stderr)
    return audio


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
