"""Video: clips made here with PyAV, labelled by the CLI and the API; timing, sizes, bad inputs."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from _helpers import TINY_CLASSES, TINY_PALETTE, write_tiny_checkpoint
from lrnet import LrnetError
from lrnet.cli import main
from lrnet.inference.predictor import Predictor
from lrnet.visualize import colorize, overlay

av = pytest.importorskip("av")

from lrnet.inference import video  # noqa: E402  (needs av, skipped above when it is missing)

NUM_CLASSES, CLASSES, PALETTE = len(TINY_CLASSES), TINY_CLASSES, TINY_PALETTE
HEIGHT, WIDTH, NUM_FRAMES, RATE = 64, 96, 12, 10


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt")


@pytest.fixture(scope="module")
def predictor(ckpt: Path) -> Predictor:
    return Predictor.from_pretrained(ckpt, backend="torch")


def _pictures(count: int, height: int, width: int) -> list[np.ndarray]:
    """Smooth moving gradients plus noise: compressible, and different from frame to frame."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    frames = []
    for i in range(count):
        base = np.stack([(x * 3 + i * 9) % 256, (y * 4 + i * 5) % 256, (x + y + i * 20) % 256], -1)
        noise = rng.integers(-20, 21, base.shape)
        frames.append(np.clip(base + noise, 0, 255).astype(np.uint8))
    return frames


def _write_clip(
    path: Path,
    pictures: list[np.ndarray],
    *,
    rate: int = RATE,
    codec: str = "libx264",
    times_ms: list[int] | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode RGB pictures; ``times_ms`` gives each frame's own time (variable frame rate)."""
    container = av.open(str(path), "w", options=options or {})
    stream = container.add_stream(codec, rate=rate)
    stream.height, stream.width = pictures[0].shape[:2]
    stream.pix_fmt = "yuv420p"
    if times_ms is not None:
        stream.codec_context.time_base = Fraction(1, 1000)
    for i, pixels in enumerate(pictures):
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        if times_ms is not None:
            frame.pts, frame.time_base = times_ms[i], Fraction(1, 1000)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def _decode(path: Path) -> tuple[list[np.ndarray], list[float], Fraction, str]:
    """Decoded RGB frames, their times in seconds, the stated average rate and the codec."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, times = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.time))
        return frames, times, stream.average_rate, stream.codec_context.name


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clip")
    return _write_clip(folder / "street.mp4", _pictures(NUM_FRAMES, HEIGHT, WIDTH))


def _labels_of(predictor: Predictor, pixels: np.ndarray) -> np.ndarray:
    """``Predictor.predict`` on one frame the test decoded itself, ``(H, W, 3)`` uint8 RGB."""
    return predictor.predict(pixels).labels


def test_cli_video_writes_overlay_mask_and_label_frames(
    ckpt: Path, clip: Path, predictor: Predictor, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = ["predict", str(ckpt), str(clip), "--out", str(out), "--backend", "torch"]
    assert main([*argv, "--frames", "--mask-video"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "street_labels",
        "street_mask.mp4",
        "street_overlay.mp4",
    ]  # and no temporary file left behind

    inputs, input_times, _, _ = _decode(clip)
    overlays, times, rate, codec = _decode(out / "street_overlay.mp4")
    masks, _, mask_rate, _ = _decode(out / "street_mask.mp4")
    assert len(overlays) == len(masks) == NUM_FRAMES
    assert overlays[0].shape == masks[0].shape == (HEIGHT, WIDTH, 3)
    assert rate == mask_rate == RATE
    assert times == pytest.approx(input_times, abs=1e-3)
    assert codec == "h264" and video.video_codec() == "libx264"

    pngs = sorted((out / "street_labels").iterdir())
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(NUM_FRAMES)]
    for i, (pixels, png) in enumerate(zip(inputs, pngs, strict=True)):
        labels = np.asarray(Image.open(png))
        expected = _labels_of(predictor, pixels)
        np.testing.assert_array_equal(labels, expected, err_msg=f"frame {i}")
        # The videos are lossy: compare with what they should show, loosely but frame by frame.
        drawn = np.asarray(overlay(pixels, expected, PALETTE), dtype=np.float32)
        colors = np.asarray(colorize(expected, PALETTE), dtype=np.float32)
        assert np.abs(overlays[i] - drawn).mean() < 12, i
        assert np.abs(masks[i] - colors).mean() < 12, i
    assert len({png.read_bytes() for png in pngs}) > 1  # the frames differ, so order matters


def test_frame_folder_with_the_model_option(
    ckpt: Path, predictor: Predictor, tmp_path: Path
) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    pictures = _pictures(5, 40, 52)
    for i, pixels in enumerate(pictures):
        Image.fromarray(pixels).save(folder / f"f{i:03d}.png")
    out = tmp_path / "out"
    argv = ["predict", str(folder), "--model", str(ckpt), "--fps", "5", "--out", str(out)]
    assert main([*argv, "--frames", "--backend", "torch"]) == 0
    frames, times, rate, _ = _decode(out / "frames_overlay.mp4")
    assert len(frames) == 5 and frames[0].shape == (40, 52, 3)
    assert rate == 5
    assert times == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8], abs=1e-3)
    for i, pixels in enumerate(pictures):  # PNG frames are lossless: the pixels themselves
        labels = np.asarray(Image.open(out / "frames_labels" / f"{i:06d}.png"))
        np.testing.assert_array_equal(labels, _labels_of(predictor, pixels))


def test_odd_size_is_padded_in_the_video_and_exact_in_the_labels(
    ckpt: Path, predictor: Predictor, tmp_path: Path
) -> None:
    # MPEG-4 part 2 in AVI can store 63 x 95; yuv420p H.264 cannot, so the output is padded.
    odd = _write_clip(tmp_path / "odd.avi", _pictures(4, 63, 95), codec="mpeg4")
    out = tmp_path / "out"
    argv = ["predict", str(ckpt), str(odd), "--out", str(out), "--frames", "--backend", "torch"]
    assert main(argv) == 0
    inputs, _, _, _ = _decode(odd)
    overlays, _, rate, _ = _decode(out / "odd_overlay.mp4")
    assert len(overlays) == 4 and rate == RATE
    assert overlays[0].shape == (64, 96, 3)
    for i, pixels in enumerate(inputs):
        labels = np.asarray(Image.open(out / "odd_labels" / f"{i:06d}.png"))
        assert labels.shape == (63, 95)
        np.testing.assert_array_equal(labels, _labels_of(predictor, pixels))


def test_label_frames_never_replace_a_folder_of_the_users(
    ckpt: Path, clip: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    mine = out / "street_labels"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    argv = ["predict", str(ckpt), str(clip), "--out", str(out), "--frames", "--backend", "torch"]
    assert main(argv) == 2
    assert "notes.txt" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["street_labels"]  # nothing else written
    assert (mine / "notes.txt").read_text() == "mine"
    (mine / "notes.txt").unlink()
    info = PngInfo()
    info.add_text("lrnet", "video")  # the mark lrnet's label frames carry (issue 21)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(mine / "999999.png", pnginfo=info)
    assert main(argv) == 0  # an earlier run's frames are replaced, not mixed
    assert "999999.png" not in {p.name for p in mine.iterdir()}


def test_variable_frame_rate_keeps_each_frames_time(predictor: Predictor, tmp_path: Path) -> None:
    times_ms = [0, 100, 150, 400, 450, 1000]
    clip = _write_clip(tmp_path / "vfr.mp4", _pictures(6, 32, 48), times_ms=times_ms)
    _, input_times, _, _ = _decode(clip)
    assert input_times == pytest.approx([t / 1000 for t in times_ms], abs=1e-3)  # really VFR
    outputs = video.predict_video(predictor, video.open_video(clip), tmp_path / "out")
    _, times, _, _ = _decode(outputs.overlay)
    assert outputs.frames == 6
    assert times == pytest.approx(input_times, abs=1e-3)


def _bad_inputs(folder: Path, clip: Path) -> dict[str, Path]:
    folder.mkdir()
    text = folder / "notes.mp4"
    text.write_text("this is not a video\n")
    data = clip.read_bytes()
    head = folder / "head.mp4"  # index (moov) at the end: the first half cannot be opened
    head.write_bytes(data[: len(data) // 2])
    faststart = _write_clip(
        folder / "fs.mp4", _pictures(NUM_FRAMES, HEIGHT, WIDTH), options={"movflags": "+faststart"}
    )
    tail_cut = folder / "cut.mp4"  # index first: opens, then the frames run out mid-packet
    tail_cut.write_bytes(faststart.read_bytes()[: len(faststart.read_bytes()) // 2])
    empty = folder / "empty.mp4"
    with av.open(str(empty), "w") as container:  # a valid container holding no video
        container.add_stream("libx264", rate=RATE)
        container.start_encoding()
    return {"text": text, "head": head, "cut": tail_cut, "empty": empty}


@pytest.mark.parametrize("kind", ["text", "head", "cut", "empty"])
def test_bad_video_is_one_clear_error_and_leaves_no_file(
    ckpt: Path,
    clip: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kind: str,
) -> None:
    bad = _bad_inputs(tmp_path / "bad", clip)[kind]
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{bad.stem}_overlay.mp4").write_bytes(b"an earlier result")
    # --overwrite: the earlier file is not lrnet's (issue 21), and is replaced only by a whole one
    argv = ["predict", str(ckpt), str(bad), "--out", str(out), "--mask-video", "--overwrite"]
    assert main([*argv, "--backend", "torch"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err
    message = err.strip().splitlines()[-1]
    assert message.startswith("lrnet predict: error:"), err
    # The earlier result is untouched, and no partial file is left beside it.
    assert [p.name for p in out.iterdir()] == [f"{bad.stem}_overlay.mp4"]
    assert (out / f"{bad.stem}_overlay.mp4").read_bytes() == b"an earlier result"


def test_a_source_short_of_its_stated_count_is_reported(
    predictor: Predictor, tmp_path: Path
) -> None:
    # A file cut exactly at a frame boundary decodes without error; only the count tells.
    source, _ = _source(5)
    source.num_frames = 8
    outputs = video.predict_video(predictor, source, tmp_path)
    assert outputs.truncated and (outputs.frames, outputs.stated_frames) == (5, 8)
    assert len(_decode(outputs.overlay)[0]) == 5


def test_missing_webcam_is_a_clear_error(ckpt: Path, tmp_path: Path) -> None:
    with pytest.raises(LrnetError, match="/dev/video99"):
        video.open_webcam(99)
    assert main(["predict", str(ckpt), "--source", "99", "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def _source(
    count: int, *, interrupt_after: int | None = None, live: bool = False
) -> tuple[video.VideoSource, list[int]]:
    """A source of ``count`` frames that records how many it has decoded."""
    pictures = _pictures(count, 32, 48)
    decoded: list[int] = []

    def frames() -> Iterator[video.Frame]:
        for i, pixels in enumerate(pictures):
            if i == interrupt_after:
                raise KeyboardInterrupt
            decoded.append(i)
            yield video.Frame(i, pixels, i)

    rate = Fraction(RATE)
    source = video.VideoSource(
        "synthetic", "synthetic", frames, rate=rate, time_base=1 / rate, live=live
    )
    return source, decoded


@pytest.mark.parametrize("overlap", [True, False])
def test_ctrl_c_removes_the_partial_video(
    predictor: Predictor, tmp_path: Path, overlap: bool
) -> None:
    source, _ = _source(8, interrupt_after=3)
    with pytest.raises(KeyboardInterrupt):
        video.predict_video(
            predictor, source, tmp_path, mask_video=True, label_pngs=True, overlap=overlap
        )
    assert list(tmp_path.iterdir()) == []


_KILLED_MID_VIDEO = """
import os, signal, sys
from fractions import Fraction
import numpy as np
from lrnet.inference import video
from lrnet.inference.predictor import Predictor

def frames():
    for index in range(3):
        if index == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        yield video.Frame(index, np.zeros((32, 48, 3), np.uint8), index)

source = video.VideoSource("clip", "clip", frames, rate=Fraction(10), time_base=Fraction(1, 10))
predictor = Predictor.from_pretrained(sys.argv[1], backend="torch")
video.predict_video(predictor, source, sys.argv[2], mask_video=True, label_pngs=True,
                    overlap=False, progress=False)
"""


def test_the_temporaries_of_a_killed_run_are_removed_by_the_next(
    ckpt: Path, predictor: Predictor, tmp_path: Path
) -> None:
    """Issue 21: kill -9 mid-video left hidden .<name>.*.part files and a label folder that no
    later run removed. They are named as atomic_write's temporaries (host and process id), and
    the next run into the folder removes those whose process is gone."""
    out = tmp_path / "out"
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_VIDEO, str(ckpt), str(out)], capture_output=True
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    left = sorted(p.name for p in out.iterdir())
    assert len(left) == 3 and all(name.startswith(".clip_") for name in left), left
    source, _ = _source(2)
    video.predict_video(predictor, source, out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["synthetic_overlay.mp4"]


def test_ctrl_c_ends_a_live_source_and_keeps_its_video(
    predictor: Predictor, tmp_path: Path
) -> None:
    source, _ = _source(8, interrupt_after=3, live=True)
    outputs = video.predict_video(predictor, source, tmp_path)
    assert outputs.interrupted and outputs.frames == 3
    assert len(_decode(outputs.overlay)[0]) == 3


@pytest.mark.parametrize("overlap", [True, False])
def test_streaming_keeps_only_a_few_frames_in_flight(
    predictor: Predictor, tmp_path: Path, overlap: bool
) -> None:
    source, decoded = _source(16)
    ahead: list[int] = []

    class Counting:
        palette = predictor.palette

        def __init__(self) -> None:
            self.calls = 0

        def predict(self, image: torch.Tensor) -> object:
            self.calls += 1
            ahead.append(len(decoded) - self.calls)
            return predictor.predict(image)

    counting = Counting()
    outputs = video.predict_video(counting, source, tmp_path, overlap=overlap)  # type: ignore[arg-type]
    assert outputs.frames == counting.calls == 16
    # Decoding runs at most a queue's length ahead of inference, however long the clip.
    assert max(ahead) <= (video._QUEUE_SIZE + 2 if overlap else 0)
    assert len(_decode(outputs.overlay)[0]) == 16


@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_threads_by_default_except_for_pytorch(
    predictor: Predictor, tmp_path: Path, backend: str
) -> None:
    source, _ = _source(6)
    threads: set[bool] = set()

    class Named:
        palette = predictor.palette

        class backend_:  # what predict_video reads: predictor.backend.name
            name = backend

        def __init__(self) -> None:
            self.backend = self.backend_

        def predict(self, image: torch.Tensor) -> object:
            threads.add(threading.current_thread() is threading.main_thread())
            return predictor.predict(image)

    outputs = video.predict_video(Named(), source, tmp_path)  # type: ignore[arg-type]
    assert outputs.frames == 6
    # PyTorch runs serially, in this thread; other backends run inference in a worker thread.
    assert threads == {backend == "torch"}


def test_frame_folder_with_mixed_sizes_names_the_frame(
    predictor: Predictor, tmp_path: Path
) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(_pictures(1, 32, 48)[0]).save(folder / "a.png")
    Image.fromarray(_pictures(1, 40, 48)[0]).save(folder / "b.png")
    with pytest.raises(LrnetError, match=r"b\.png is 40x48"):
        video.predict_video(predictor, video.open_frames(folder, 10), tmp_path / "out")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def _write_clip_with_sound(
    path: Path, pictures: list[np.ndarray], audio_codec: str, seconds: float, sample_rate: int
) -> Path:
    """A clip at ``RATE`` frames/s with a mono tone of ``seconds`` in ``audio_codec``."""
    with av.open(str(path), "w") as container:
        picture = container.add_stream("mpeg4", rate=RATE)
        picture.height, picture.width = pictures[0].shape[:2]
        picture.pix_fmt = "yuv420p"
        sound = container.add_stream(audio_codec, rate=sample_rate, layout="mono")
        for pixels in pictures:
            for packet in picture.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        step = sound.codec_context.frame_size or 1024
        tone = np.sin(np.arange(round(seconds * sample_rate)) / 7.0)
        kind = {"fltp": np.float32, "s16": np.int16, "u8": np.uint8}[sound.format.name]
        scale = {"fltp": 0.5, "s16": 8000, "u8": 60}[sound.format.name]
        offset = 128 if kind is np.uint8 else 0
        for start in range(0, len(tone), step):
            chunk = (tone[start : start + step] * scale + offset).astype(kind)[None]
            frame = av.AudioFrame.from_ndarray(chunk, format=sound.format.name, layout="mono")
            frame.sample_rate, frame.pts = sample_rate, start
            for packet in sound.encode(frame):
                container.mux(packet)
        for stream in (picture, sound):
            for packet in stream.encode():
                container.mux(packet)
    return path


def _sound_packets(path: Path) -> list[tuple[float, bytes]]:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        stream = container.streams.audio[0]
        return [
            (float(p.pts * stream.time_base), bytes(p))
            for p in container.demux(stream)
            if p.pts is not None
        ]


def test_the_inputs_sound_is_copied_into_the_overlay_video(
    predictor: Predictor, clip: Path, tmp_path: Path
) -> None:
    pictures = _pictures(NUM_FRAMES, HEIGHT, WIDTH)  # 1.2 s of frames, 2 s of sound
    noisy = _write_clip_with_sound(tmp_path / "noisy.mp4", pictures, "aac", 2.0, 8000)
    outputs = video.predict_video(predictor, video.open_video(noisy), tmp_path / "out")
    assert outputs.audio == "copied (aac)" and outputs.frames == NUM_FRAMES
    copied, source = _sound_packets(outputs.overlay), _sound_packets(noisy)
    # The same packets, not re-encoded, cut at the end of the frames (1.2 s).
    assert 0 < len(copied) < len(source)
    assert [data for _, data in copied] == [data for _, data in source[: len(copied)]]
    assert copied[-1][0] < NUM_FRAMES / RATE <= copied[-1][0] + 1024 / 8000 + 1e-6
    frames, times, _, _ = _decode(outputs.overlay)
    assert len(frames) == NUM_FRAMES and times[0] == 0.0
    with av.open(str(outputs.overlay)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
    # A clip without sound: nothing added, nothing said.
    silent = video.predict_video(predictor, video.open_video(clip), tmp_path / "silent")
    assert silent.audio is None and _sound_packets(silent.overlay) == []


def test_sound_an_mp4_cannot_hold_is_dropped_with_a_message(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pictures = _pictures(4, HEIGHT, WIDTH)
    raw = _write_clip_with_sound(tmp_path / "raw.mkv", pictures, "pcm_u8", 0.4, 8000)
    assert _sound_packets(raw)
    assert main(["predict", str(ckpt), str(raw), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "raw.mkv: the overlay video has no sound (dropped: its codec (pcm_u8) cannot be " in err
    overlay_path = tmp_path / "out" / "raw_overlay.mp4"
    assert _sound_packets(overlay_path) == [] and len(_decode(overlay_path)[0]) == 4
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
