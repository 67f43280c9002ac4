"""PyAV in and out: frame sources (a video file, a folder of frames, a webcam) and the writer.

Frames keep their input's presentation times, so variable-frame-rate clips keep their timing;
README.md "Video" says what goes in and comes out.
"""

from __future__ import annotations

import heapq
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import KW_ONLY, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from lrnet._checks import frames_per_second
from lrnet._errors import LrnetError
from lrnet._files import MARK, temporary_path
from lrnet.data._io import IMAGE_SUFFIXES
from lrnet.inference.image import load_image

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
DEFAULT_RATE = Fraction(30)  # frames/s when a source states none
_MPEG4_MAX_TIME_BASE = 65535  # MPEG-4 part 2 stores the time base denominator in 16 bits


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
    """One decoded frame: ``index`` from 0, ``pixels`` ``(H, W, 3)`` uint8 RGB, ``pts`` in the
    source's ``time_base`` counted from the first frame."""

    index: int
    pixels: np.ndarray
    pts: int


@dataclass(eq=False)  # compared and hashed by identity, as a plain class
class VideoSource:
    """Frames from a file, a folder of images or a webcam; iterate it to decode them one by one.

    Attributes:
        name: what the messages call it (the file, folder or device).
        stem: output files are named ``<stem>_overlay.mp4`` ...
        frames: makes a fresh iterator of the frames, each time the source is iterated.
        rate: average frames/s.
        time_base: unit of ``Frame.pts``, in seconds.
        num_frames: frame count the container states, or ``None`` (unknown, or live).
        live: a webcam: it never ends by itself; Ctrl-C ends it and keeps the output.
        audio: the file whose first audio stream the overlay video carries, or ``None``.
    """

    name: str
    stem: str
    frames: Callable[[], Iterator[Frame]]
    _: KW_ONLY
    rate: Fraction
    time_base: Fraction
    num_frames: int | None = None
    live: bool = False
    audio: str | None = None

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()


def is_video(path: str | Path) -> bool:
    """Whether ``path`` names a video file by its suffix (``VIDEO_SUFFIXES``)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _stream_frames(container: Any, name: str) -> Iterator[Frame]:
    """RGB frames of the container's first video stream, all at the first frame's size; closes
    the container at the end."""
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
                size = size or (frame.height, frame.width)
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
    name = str(path)
    if not path.is_file():
        raise LrnetError(f"video {name} does not exist")
    container = _open_container(name, name)
    stream = container.streams.video[0]
    rate, time_base, frames = _rate_of(stream), stream.time_base, stream.frames or None
    audio = name if container.streams.audio else None
    container.close()  # reopened by each iteration, so a source can be iterated twice
    return VideoSource(
        name,
        path.stem,
        lambda: _stream_frames(_open_container(name, name), name),
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
            size = size or pixels.shape[:2]
            if pixels.shape[:2] != size:
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

    rate, time_base = _rate_of(stream), stream.time_base
    return VideoSource(name, f"webcam{index}", frames_of, rate=rate, time_base=time_base, live=True)


def video_codec() -> str:
    """``libx264`` (H.264) when PyAV's FFmpeg has it, else ``mpeg4`` (MPEG-4 part 2)."""
    av = _av()
    try:
        av.codec.Codec("libx264", "w")
    except Exception:  # UnknownCodecError; its module moved between PyAV versions
        return "mpeg4"
    return "libx264"


class VideoWriter:
    """Encodes RGB frames into an ``.mp4`` through a hidden temporary file that ``close`` renames
    to ``path`` and ``abort`` (or an exception in the ``with`` block) deletes. An odd height or
    width is padded by repeating the last row or column (yuv420p needs even sides).

    Args:
        rate: nominal frames/s (the encoder's rate control and the stream's stated rate).
        time_base: unit of the ``pts`` given to ``write``, in seconds.
        codec: ``libx264`` or ``mpeg4``; default: ``video_codec()``.
        audio_from: a video file whose first audio stream ``close`` copies in (``add_audio``);
            ``audio`` then says whether it was copied or dropped.
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
        self._temp = temporary_path(self.path)
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
        if self._stream is None:
            self._start(*pixels.shape[:2])
        pad = ((0, pixels.shape[0] % 2), (0, pixels.shape[1] % 2), (0, 0))
        if pad[0][1] or pad[1][1]:
            pixels = np.pad(pixels, pad, mode="edge")
        frame = _av().VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
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
    ticks, packets without a time (the demuxer's flush markers) left out."""
    kind = 0 if stream.type == "video" else 1
    for packet in container.demux(stream):
        if packet.dts is None or packet.pts is None:
            continue
        packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
        yield float(packet.dts * stream.time_base), kind, packet


def add_audio(video: Path, source: str) -> str:
    """Copy (remux, no re-encoding) the first audio stream of ``source`` into the ``.mp4``
    ``video``, timed from the source's first video frame and cut at the end of ``video``, which
    is replaced only by a complete file.

    Returns:
        ``"copied (aac)"``, or ``"dropped: <why>"`` when the codec cannot go into an ``.mp4`` or
        the audio cannot be read (``video`` is then left as it was).
    """
    av = _av()
    combined = temporary_path(video)
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
                    # Sound after the last frame is cut; sound before the first (AAC's priming
                    # packet) is kept: the muxer's edit list hides it.
                    if kind == 1 and seconds >= end:
                        continue
                    packet.stream = audio_out if kind else video_out
                    out.mux(packet)
        os.replace(combined, video)
    except av.error.FFmpegError as exc:
        return f"dropped: the audio cannot be read or written ({exc})"
    finally:
        combined.unlink(missing_ok=True)
    return f"copied ({codec})"
