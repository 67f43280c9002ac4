"""lrnet app: the checks and drawings behind the page, and the page itself in a real Chromium."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import zlib
from pathlib import Path
from urllib.parse import urljoin

import numpy as np
import pytest
from PIL import Image

from _helpers import TINY_CLASSES, TINY_PALETTE, write_tiny_checkpoint
from lrnet._errors import LrnetError
from lrnet.app import App, examples_for, write_examples
from lrnet.cli import main
from lrnet.predict import Predictor

NUM_CLASSES, CLASSES, PALETTE = len(TINY_CLASSES), TINY_CLASSES, TINY_PALETTE
SIZE = (96, 128)  # stages 3x4 ... 96x128: each s_k cell is an exact square block on screen
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "/usr/lib/chromium/chromium")
IN_CI = os.environ.get("CI", "").lower() == "true"
BROWSER_ARGS = [
    "--no-sandbox",  # CI containers run as root
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
    "--no-first-run",
    "--disable-gpu",
    "--disable-dev-shm-usage",
]
SLOW = 300_000  # ms: the page's first model call on a loaded 2-core machine can take a while


def _require(module: str) -> object:
    """Import ``module``; skip without it, except in CI, where its absence is a failure."""
    try:
        return __import__(module)
    except ImportError:
        if IN_CI:
            pytest.fail(f"{module} is not installed but CI=true; install lrnet[dev]")
        pytest.skip(f"{module} is not installed (pip install 'lrnet[dev]')")


def _chromium() -> str:
    """The Chromium binary; skip (fail under CI=true) where there is none."""
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    if IN_CI:
        pytest.fail("no chromium found but CI=true; .ci/run installs it with apt-get")
    pytest.skip("no chromium on this machine (apt-get install chromium); the browser test needs it")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt")


@pytest.fixture(scope="module")
def predictor(ckpt: Path) -> Predictor:
    return Predictor.from_pretrained(ckpt, backend="torch", precision="fp32")


@pytest.fixture
def app(predictor: Predictor, tmp_path: Path) -> App:
    return App(predictor, tmp_path / "work", model_name="tiny")


def _image(folder: Path, name: str = "street.png", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    pixels[: SIZE[0] // 2] //= 3  # some structure: a dark top half
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    Image.fromarray(pixels).save(path)
    return path


def _blocks(stage: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The colour picture of a stage map blown up to ``size`` by whole blocks, computed here."""
    fy, fx = size[0] // stage.shape[0], size[1] // stage.shape[1]
    assert (fy * stage.shape[0], fx * stage.shape[1]) == size
    return np.array(PALETTE, np.uint8)[np.repeat(np.repeat(stage, fy, 0), fx, 1)]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` RGB pixels and holds none (a tiny 'bomb')."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"")
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


# The plain App: what the page's callbacks call.


def test_stages_are_drawn_at_their_own_resolution(app: App, predictor: Predictor, tmp_path: Path):
    path = _image(tmp_path)
    labelled = app.label_image(path)
    expected = predictor.predict(path)
    np.testing.assert_array_equal(labelled.labels, expected.labels.numpy())
    strides = [32, 16, 8, 4, 2, 1]
    assert [s.shape for s in labelled.stage_labels] == [(96 // k, 128 // k) for k in strides]
    pixels = np.asarray(Image.open(path))
    np.testing.assert_array_equal(labelled.pixels, pixels)
    for k, stage in enumerate(expected.stage_labels):
        stage = stage.numpy()
        view = app.view(labelled, k, alpha=1.0)
        np.testing.assert_array_equal(np.asarray(view.mask), _blocks(stage, SIZE))
        np.testing.assert_array_equal(np.asarray(view.overlay), _blocks(stage, SIZE))
        shares = dict(view.shares)
        for c, name in enumerate(CLASSES):
            assert shares.get(name, 0.0) == pytest.approx(np.mean(stage == c))
    np.testing.assert_array_equal(np.asarray(app.view(labelled, 0, alpha=0.0).overlay), pixels)
    label_png = app.save_labels(labelled, tmp_path / "out")
    assert label_png.name == "street_label.png"
    np.testing.assert_array_equal(np.asarray(Image.open(label_png)), expected.labels.numpy())


def test_bad_images_are_refused_with_a_message(app: App, tmp_path: Path):
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    with pytest.raises(LrnetError, match=r"notes.png is not an image"):
        app.label_image(text)

    good = _image(tmp_path, "good.png").read_bytes()
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(LrnetError, match=r"cut.png is truncated or corrupt"):
        app.label_image(truncated)

    huge = tmp_path / "huge.png"
    huge.write_bytes(_png_header(8000, 6000))
    with pytest.raises(LrnetError, match=r"6000x8000 .* 48 MP; the app takes images up to 40 MP"):
        app.label_image(huge)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(100_000, 100_000))
    with pytest.raises(LrnetError, match=r"bomb.png is far too large"):
        app.label_image(bomb)

    # A model without a run size would run at the image's own size: the app bounds that too.
    small = App(app.predictor, tmp_path / "w2", max_run_pixels=SIZE[0] * SIZE[1] - 1)
    with pytest.raises(LrnetError, match=r"runs at most"):
        small.label_image(tmp_path / "good.png")


def _clip(path: Path, frames: int, rate: int) -> Path:
    video = pytest.importorskip("lrnet.video")
    pytest.importorskip("av")
    from fractions import Fraction

    rng = np.random.default_rng(1)
    with video.VideoWriter(path, Fraction(rate), Fraction(1, rate), codec="mpeg4") as writer:
        for index in range(frames):
            writer.write(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8), index)
        writer.close()
    return path


def test_video_through_lrnet_video_and_its_length_limit(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import av

    from lrnet import video
    from lrnet.video import VideoSource

    clip = _clip(tmp_path / "clip.mp4", frames=4, rate=4)
    overlay = app.label_video(clip, tmp_path / "out", progress=False)
    assert overlay.parent == tmp_path / "out" and overlay.suffix == ".mp4"
    with av.open(str(overlay)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape == (64, 96, 3)

    long_clip = _clip(tmp_path / "long.mp4", frames=12, rate=4)  # 3 s
    short_limit = App(app.predictor, tmp_path / "w2", max_video_seconds=2.0)
    with pytest.raises(LrnetError, match=r"long.mp4 is longer than the app's limit of 2 s"):
        short_limit.label_video(long_clip, tmp_path / "out2", progress=False)

    # A container that states no frame count is stopped while it streams, leaving nothing.
    open_video = video.open_video

    def uncounted(path: Path) -> VideoSource:
        source = open_video(path)
        return video.VideoSource(
            source.name,
            source.stem,
            source.__iter__,
            rate=source.rate,
            time_base=source.time_base,
            num_frames=None,
        )

    monkeypatch.setattr(video, "open_video", uncounted)
    with pytest.raises(LrnetError, match=r"long.mp4 is longer than the app's limit of 2 s"):
        short_limit.label_video(long_clip, tmp_path / "out2", progress=False)
    assert not list((tmp_path / "out2").glob("*.mp4"))  # nothing half-written is left

    not_video = tmp_path / "fake.mp4"
    not_video.write_bytes(b"\x00" * 100)
    with pytest.raises(LrnetError, match=r"fake.mp4"):
        app.label_video(not_video, tmp_path / "out3", progress=False)


def test_examples_are_synthetic_scenes(tmp_path: Path):
    paths = write_examples(tmp_path)
    assert len(paths) == 3 and len({p.read_bytes() for p in paths}) == 3
    for path in paths:
        with Image.open(path) as image:
            assert image.mode == "RGB" and image.size == (320, 240)


def test_examples_follow_the_data_the_model_was_trained_on(ckpt: Path, tmp_path: Path):
    from lrnet.checkpoint import read_config

    assert read_config("camvid-lite").data.dataset == "camvid"
    assert read_config(ckpt).data.dataset == "synthetic"
    street, label = examples_for("camvid", tmp_path / "camvid")
    samples = Path(__file__).resolve().parents[1] / "src/lrnet/samples"
    assert len(street) == 3
    assert {p.name for p in street} == {p.name for p in samples.glob("camvid_*.jpg")}
    for path in street:
        assert path.read_bytes() == (samples / path.name).read_bytes()
        with Image.open(path) as image:
            assert image.size == (480, 360)
    assert "CamVid street frames" in label and "CC BY-NC" in label
    synthetic, label = examples_for("synthetic", tmp_path / "synthetic")
    assert [p.name for p in synthetic] == [p.name for p in write_examples(tmp_path / "again")]
    assert "synthetic" in label
    assert examples_for("voc", tmp_path / "voc") == ([], "")


def test_missing_model_is_one_line_and_leaves_no_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for name in ("GRADIO_TEMP_DIR", "GRADIO_ANALYTICS_ENABLED", "HF_HUB_DISABLE_TELEMETRY"):
        monkeypatch.setenv(name, "unset-by-test")  # main sets them; monkeypatch puts them back
    assert main(["app", "--model", str(tmp_path / "missing.pt"), "--backend", "torch"]) == 2
    err = capsys.readouterr().err
    assert "missing.pt" in err and "Traceback" not in err
    assert not list(tmp_path.glob("lrnet-app-*"))


# The page in a browser.


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """``lrnet app`` in a subprocess; its output lines are collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.lines: list[str] = []
        self.serving = threading.Event()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lrnet", "app", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if "lrnet app: serving" in line:
                self.serving.set()
        self.serving.set()  # the process ended: stop waiting

    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> int:
        if self.process.poll() is None:
            # SIGTERM, not SIGINT: a shell that starts pytest in the background makes its
            # children ignore SIGINT. The app treats both alike (clean up, exit 0).
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=10)
        return self.process.returncode


def test_page_in_chromium(ckpt: Path, predictor: Predictor, tmp_path: Path):
    executable = _chromium()
    _require("gradio")
    _require("playwright")
    _require("av")
    from playwright.sync_api import sync_playwright

    port = _free_port()
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {
        **os.environ,
        "TMPDIR": str(temp),  # the app's temporary folder goes here, where the test can see it
        "LRNET_HOME": str(tmp_path / "home"),
        "PYTHONUNBUFFERED": "1",
    }
    args = ["--model", str(ckpt), "--port", str(port), "--backend", "torch", "--precision", "fp32"]
    server = _Server([*args, "--device", "cpu"], env)
    image = _image(tmp_path / "inputs", "street.png", seed=3)
    expected = predictor.predict(image)
    corrupt = tmp_path / "inputs" / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    clip = _clip(tmp_path / "inputs" / "clip.mp4", frames=3, rate=3)
    requests: list[str] = []
    try:
        assert server.serving.wait(timeout=SLOW / 1000), server.output()
        assert server.process.poll() is None, server.output()
        url = f"http://127.0.0.1:{port}/"
        assert f"serving {ckpt} at {url}" in server.output()
        workdirs = list(temp.glob("lrnet-app-*"))
        assert len(workdirs) == 1, list(temp.iterdir())

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=executable, headless=True, args=BROWSER_ARGS
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
            page.set_default_timeout(SLOW)
            page.on("request", lambda request: requests.append(request.url))
            page.goto(url)

            # Upload an image: the label PNG offered for download is Predictor.predict's labels.
            page.locator("#lrnet-input input[type=file]").set_input_files(str(image))
            status = page.locator("#lrnet-status")
            status.get_by_text("labelled in").wait_for()
            assert "street.png" in status.inner_text()
            with page.expect_download() as download_info:
                page.locator("#lrnet-download").click()
            label_png = tmp_path / "downloaded_label.png"
            download_info.value.save_as(label_png)
            with Image.open(label_png) as labels:
                np.testing.assert_array_equal(np.asarray(labels), expected.labels.numpy())

            # The stage control: s_1 shows the 3x4 coarse map as 32-pixel blocks.
            mask = page.locator("#lrnet-mask img")
            fine_src = mask.get_attribute("src")
            page.locator("#lrnet-stage").get_by_text("s_1", exact=True).click()
            page.wait_for_function(
                "src => document.querySelector('#lrnet-mask img').src !== src",
                arg=urljoin(url, fine_src or ""),
            )
            coarse_src = mask.get_attribute("src")
            response = page.request.get(urljoin(url, coarse_src or ""))
            assert response.ok
            coarse = tmp_path / "coarse.png"
            coarse.write_bytes(response.body())
            with Image.open(coarse) as shown:
                coarse_pixels = np.asarray(shown.convert("RGB"))
            np.testing.assert_array_equal(
                coarse_pixels, _blocks(expected.stage_labels[0].numpy(), SIZE)
            )
            fine = page.request.get(urljoin(url, fine_src or "")).body()
            assert fine != response.body()
            page.screenshot(path=str(tmp_path / "app.png"), full_page=True)

            # A corrupt file: a message, and the page goes on serving (an example next).
            page.locator("#lrnet-input input[type=file]").set_input_files(str(corrupt))
            status.get_by_text("Cannot label corrupt.png").wait_for()
            assert "corrupt.png is not an image" in status.inner_text()
            assert not page.locator("#lrnet-download").is_enabled()
            uploaded = [p for p in workdirs[0].rglob("corrupt.png") if p.is_file()]
            assert uploaded and uploaded[0].read_bytes() == corrupt.read_bytes()
            # Two users at once: both requests are queued and answered.
            other = browser.new_page()
            other.set_default_timeout(SLOW)
            other.on("request", lambda request: requests.append(request.url))
            other.goto(url)
            other.locator("#lrnet-input input[type=file]").set_input_files(str(image))
            page.locator("button.gallery-item").first.click()
            status.get_by_text("synthetic_scene_3.png").wait_for()
            assert "labelled in" in status.inner_text()
            other.locator("#lrnet-status").get_by_text("street.png").wait_for()
            assert "labelled in" in other.locator("#lrnet-status").inner_text()
            other.close()

            # A short clip through lrnet.video: the overlay video comes back.
            page.get_by_role("tab", name="Video").click()
            page.locator("#lrnet-video-in input[type=file]").set_input_files(str(clip))
            page.get_by_role("button", name="Label the clip").click()
            page.locator("#lrnet-video-status").get_by_text("clip.mp4: labelled in").wait_for()
            video_src = page.locator("video").last.get_attribute("src") or ""
            assert video_src.endswith("clip_overlay.mp4"), video_src
            browser.close()
    finally:
        code = server.stop()
    assert code == 0, server.output()
    assert (tmp_path / "app.png").stat().st_size > 10_000
    assert not list(temp.glob("lrnet-app-*")), "the app's temporary folder was left behind"
    outside = [
        u for u in requests if not u.startswith((f"http://127.0.0.1:{port}", "data:", "blob:"))
    ]
    assert not outside, f"the page fetched from elsewhere: {outside}"
