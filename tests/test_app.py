"""lrnet app: the checks and drawings behind the page, and the page itself in a real Chromium."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import numpy as np
import pytest
from PIL import Image

from _helpers import TINY_CLASSES, TINY_PALETTE, write_tiny_checkpoint
from lrnet._errors import LrnetError
from lrnet.app import (
    App,
    check_opacity,
    examples_for,
    model_notes,
    stage_index,
    write_examples,
)
from lrnet.cli import main
from lrnet.inference.predictor import Predictor

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


def _image(
    folder: Path, name: str = "street.png", seed: int = 0, size: tuple[int, int] = SIZE
) -> Path:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    pixels[: size[0] // 2] //= 3  # some structure: a dark top half
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
    np.testing.assert_array_equal(labelled.labels, expected.labels)
    strides = [32, 16, 8, 4, 2, 1]
    assert [s.shape for s in labelled.stage_labels] == [(96 // k, 128 // k) for k in strides]
    pixels = np.asarray(Image.open(path))
    np.testing.assert_array_equal(labelled.pixels, pixels)
    for k, stage in enumerate(expected.stage_labels):
        view = app.view(labelled, k, alpha=1.0)
        np.testing.assert_array_equal(np.asarray(view.mask), _blocks(stage, SIZE))
        np.testing.assert_array_equal(np.asarray(view.overlay), _blocks(stage, SIZE))
        shares = dict(view.shares)
        for c, name in enumerate(CLASSES):
            assert shares.get(name, 0.0) == pytest.approx(np.mean(stage == c))
    np.testing.assert_array_equal(np.asarray(app.view(labelled, 0, alpha=0.0).overlay), pixels)
    label_png = app.save_labels(labelled, tmp_path / "out")
    assert label_png.name == "street_label.png"
    np.testing.assert_array_equal(np.asarray(Image.open(label_png)), expected.labels)


def test_stage_strip_class_under_the_cursor_and_the_api_checks(
    app: App, predictor: Predictor, tmp_path: Path
):
    path = _image(tmp_path)
    labelled = app.label_image(path)
    expected = predictor.predict(path).stage_labels
    # The pixel (x, y) of the shown picture is cell (y // stride, x // stride) of the stage map.
    for stage, stride in ((0, 32), (2, 8), (5, 1)):
        for x, y in ((0, 0), (127, 95), (70, 33)):
            name = CLASSES[expected[stage][y // stride, x // stride]]
            assert app.class_at(labelled, stage, x, y) == f"{name} at ({x}, {y}) in s_{stage + 1}"
    with pytest.raises(LrnetError, match=r"\(128, 0\) is outside the 128x96 \(W x H\) picture"):
        app.class_at(labelled, -1, 128, 0)

    strip = app.stage_strip(labelled)
    assert strip.height >= 96 and strip.width > 7 * 128  # input and six stages in one row
    tiles = np.asarray(strip)
    assert len({tuple(c) for c in tiles.reshape(-1, 3)[::7]} & {tuple(c) for c in PALETTE}) >= 2

    assert [stage_index(f"s_{k}", 6) for k in range(1, 7)] == list(range(6))
    assert stage_index(None, 6) == stage_index("", 6) == 5
    for bad in ("s_7", "s_0", "3", 3, "S_1"):
        with pytest.raises(LrnetError, match=r"does not exist; give one of s_1, s_2"):
            stage_index(bad, 6)
    assert check_opacity(0) == 0.0 and check_opacity(0.25) == 0.25 and check_opacity(1) == 1.0
    for bad in (-0.1, 1.5, float("nan"), "0.5", None, True):
        with pytest.raises(LrnetError, match=r"opacity must be a number from 0"):
            check_opacity(bad)


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
    with pytest.raises(
        LrnetError, match=r"8000x6000 \(W x H\), 48 MP; the app takes images up to 40 MP"
    ):
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
    video = pytest.importorskip("lrnet.inference.video")
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

    from lrnet.inference import video
    from lrnet.inference.video import VideoSource

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
    from lrnet.pretrained import read_config

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


def test_the_page_says_what_a_zoo_model_was_trained_on_and_where_it_fails(ckpt: Path):
    notes = model_notes("camvid-lite")
    assert notes.startswith("**camvid-lite** was trained on the CamVid train and val splits (468")
    assert "Cambridge, UK, by day and at dusk" in notes
    assert "It was never shown portrait photos of people, night, rain" in notes
    assert "people at close range come out as building, road or car." in notes
    assert model_notes(ckpt) == "" and model_notes("no-such-model") == ""


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


@dataclass
class _Served:
    """``lrnet app`` serving the tiny checkpoint, shared by the API and the browser tests."""

    url: str
    server: _Server
    temp: Path  # the app's TMPDIR: its temporary folder lives here while it runs
    inputs: Path


@pytest.fixture(scope="module")
def served(ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Served]:
    _require("gradio")
    _require("av")
    root = tmp_path_factory.mktemp("served")
    port = _free_port()
    temp = root / "tmp"
    temp.mkdir()
    env = {
        **os.environ,
        "TMPDIR": str(temp),  # the app's temporary folder goes here, where the test can see it
        "LRNET_HOME": str(root / "home"),
        "PYTHONUNBUFFERED": "1",
    }
    args = ["--model", str(ckpt), "--port", str(port), "--backend", "torch", "--precision", "fp32"]
    server = _Server([*args, "--device", "cpu"], env)
    try:
        assert server.serving.wait(timeout=SLOW / 1000), server.output()
        assert server.process.poll() is None, server.output()
        url = f"http://127.0.0.1:{port}/"
        assert f"serving {ckpt} at {url}" in server.output()
        workdirs = list(temp.glob("lrnet-app-*"))
        assert len(workdirs) == 1, list(temp.iterdir())
        yield _Served(url, server, temp, root / "inputs")
    finally:
        code = server.stop()
    assert code == 0, server.output()
    assert not list(temp.glob("lrnet-app-*")), "the app's temporary folder was left behind"


def _rgb(path: str | Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_api_through_gradio_client(served: _Served, predictor: Predictor, monkeypatch):
    _require("gradio_client")
    from gradio_client import Client, handle_file

    with pytest.raises(Exception, match="nothing is labelled in this session yet"):
        Client(served.url, verbose=False).predict("s_1", 0.5, api_name="/view_stage")

    client = Client(served.url, verbose=False)
    api = client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/predict", "/view_stage", "/label_video"}
    assert not api["unnamed_endpoints"]
    predict = api["named_endpoints"]["/predict"]
    assert [p["parameter_name"] for p in predict["parameters"]] == ["image", "stage", "opacity"]
    assert [r["label"] for r in predict["returns"]] == [
        "Overlay", "Colour mask", "Pixel shares", "All stages, coarse to fine", "Run",
        "Download label PNG", "Class under the cursor",
    ]  # fmt: skip

    image = _image(served.inputs, "wide.png", seed=5, size=(64, 128))  # 2:1, W x H 128x64
    expected = predictor.predict(image)
    overlay, mask, shares, strip, run, label_png, _ = client.predict(
        handle_file(image), "s_1", 1.0, api_name="/predict"
    )
    assert "wide.png** (128x64, W x H)" in run and "s_1 4x2" in run, run
    assert shares.startswith("Pixel shares at s_1 (4x2)")
    np.testing.assert_array_equal(_rgb(mask), _blocks(expected.stage_labels[0], (64, 128)))
    np.testing.assert_array_equal(_rgb(overlay), _rgb(mask))  # opacity 1: the mask alone
    np.testing.assert_array_equal(np.asarray(Image.open(label_png["value"])), expected.labels)
    assert _rgb(strip).shape[1] > 7 * 128

    # The same session: another stage of the same image, without running the model again.
    overlay, mask, shares = client.predict("s_6", 0.0, api_name="/view_stage")
    np.testing.assert_array_equal(_rgb(overlay), np.asarray(Image.open(image)))
    np.testing.assert_array_equal(_rgb(mask), _blocks(expected.stage_labels[5], (64, 128)))
    with pytest.raises(Exception, match="s_7"):
        client.predict("s_7", 0.5, api_name="/view_stage")
    with pytest.raises(Exception, match=r"1\.5"):
        client.predict("s_2", 1.5, api_name="/view_stage")
    *_, run, label_png, _ = client.predict(handle_file(image), "s_1", 2, api_name="/predict")
    assert "opacity must be a number from 0" in run and not label_png["value"]

    # The README's example, as written there, against this server.
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (example,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "Client(" in b]
    assert len(example.strip().splitlines()) == 5, example
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    namespace: dict[str, object] = {}
    exec(example.replace("http://127.0.0.1:7860/", served.url), namespace)
    shown = _rgb(str(namespace["overlay"]))
    assert shown.shape == (360, 480, 3) and "(480x360, W x H)" in str(namespace["run"])


def _drawn_box(page: Any, selector: str) -> dict[str, float]:
    """Where the picture of an ``<img>`` is drawn on the page (object-fit letterboxes it)."""
    return page.evaluate(
        """selector => {
            const img = document.querySelector(selector);
            const box = img.getBoundingClientRect();
            const fit = getComputedStyle(img).objectFit;
            let scale = Math.min(box.width / img.naturalWidth, box.height / img.naturalHeight);
            if (fit === "scale-down") scale = Math.min(scale, 1);
            if (fit === "none") scale = 1;
            const width = img.naturalWidth * scale, height = img.naturalHeight * scale;
            return {x: box.left + (box.width - width) / 2, y: box.top + (box.height - height) / 2,
                    width: width, height: height};
        }""",
        selector,
    )


def test_page_in_chromium(served: _Served, predictor: Predictor, tmp_path: Path):
    executable = _chromium()
    _require("playwright")
    from playwright.sync_api import sync_playwright

    image = _image(served.inputs, "street.png", seed=3)
    expected = predictor.predict(image)
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=BROWSER_ARGS
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
        page.set_default_timeout(SLOW)
        page.on("request", lambda request: requests.append(request.url))
        page.goto(served.url)
        _upload_and_download(page, image, expected, tmp_path)
        _stage_control(page, served.url, expected, tmp_path)
        _class_under_the_cursor(page, expected)
        page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
        _wide_photo(page, _image(served.inputs, "wide2.png", seed=7, size=(512, 1024)))
        _errors_and_queue(page, browser, served, image, requests)
        _video_tab(page, _clip(served.inputs / "clip.mp4", frames=3, rate=3))
        browser.close()
    assert (tmp_path / "app.png").stat().st_size > 10_000
    own = (served.url.rstrip("/"), "data:", "blob:")
    outside = [u for u in requests if not u.startswith(own)]
    assert not outside, f"the page fetched from elsewhere: {outside}"


def _upload_and_download(page: Any, image: Path, expected: Any, tmp_path: Path) -> None:
    """Upload an image: the label PNG offered for download is Predictor.predict's labels; the
    strip of all stages (as lrnet predict draws it) and the legend are shown."""
    page.locator("#lrnet-input input[type=file]").set_input_files(str(image))
    status = page.locator("#lrnet-status")
    status.get_by_text("labelled in").wait_for()
    assert "street.png" in status.inner_text() and "(128x96, W x H)" in status.inner_text()
    with page.expect_download() as download_info:
        page.locator("#lrnet-download").click()
    label_png = tmp_path / "downloaded_label.png"
    download_info.value.save_as(label_png)
    with Image.open(label_png) as labels:
        np.testing.assert_array_equal(np.asarray(labels), expected.labels)
    page.locator("#lrnet-strip img").wait_for()
    assert page.locator("#lrnet-legend img").is_visible()


def _stage_control(page: Any, url: str, expected: Any, tmp_path: Path) -> None:
    """The stage control: s_1 shows the 3x4 coarse map as 32-pixel blocks."""
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
    np.testing.assert_array_equal(_rgb(coarse), _blocks(expected.stage_labels[0], SIZE))
    fine = page.request.get(urljoin(url, fine_src or "")).body()
    assert fine != response.body()


def _class_under_the_cursor(page: Any, expected: Any) -> None:
    """A click on the overlay names the class s_1 gives that 32x32 block."""
    overlay = page.locator("#lrnet-overlay img")
    box = _drawn_box(page, "#lrnet-overlay img")
    frame = overlay.bounding_box()
    assert frame is not None
    x, y = 80, 48  # in block (row 1, column 2) of the 3x4 map
    overlay.click(
        position={
            "x": box["x"] - frame["x"] + (x + 0.5) * box["width"] / SIZE[1],
            "y": box["y"] - frame["y"] + (y + 0.5) * box["height"] / SIZE[0],
        }
    )
    page.wait_for_function(
        "() => document.querySelector('#lrnet-pointed').innerText.includes(' in s_1')",
        timeout=60_000,
    )
    name = CLASSES[int(expected.stage_labels[0][1, 2])]
    pointed = page.locator("#lrnet-pointed").inner_text().strip()
    assert pointed.startswith(f"{name} at ("), pointed


def _wide_photo(page: Any, wide: Path) -> None:
    """A 2:1 photo is shown at least 720 pixels wide, the overlay and the mask."""
    page.locator("#lrnet-input input[type=file]").set_input_files(str(wide))
    page.locator("#lrnet-status").get_by_text(wide.name).wait_for()
    page.wait_for_function(
        "() => document.querySelector('#lrnet-overlay img')?.naturalWidth === 1024"
    )
    assert _drawn_box(page, "#lrnet-overlay img")["width"] >= 720
    assert _drawn_box(page, "#lrnet-mask img")["width"] >= 720


def _errors_and_queue(
    page: Any, browser: Any, served: _Served, image: Path, requests: list[str]
) -> None:
    """A corrupt file: a message, and the page goes on serving; two users at once are both
    queued and answered."""
    corrupt = served.inputs / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    status = page.locator("#lrnet-status")
    page.locator("#lrnet-input input[type=file]").set_input_files(str(corrupt))
    status.get_by_text("Cannot label corrupt.png").wait_for()
    assert "corrupt.png is not an image" in status.inner_text()
    assert not page.locator("#lrnet-download").is_enabled()
    (workdir,) = served.temp.glob("lrnet-app-*")
    uploaded = [p for p in workdir.rglob("corrupt.png") if p.is_file()]
    assert uploaded and uploaded[0].read_bytes() == corrupt.read_bytes()
    other = browser.new_page()
    other.set_default_timeout(SLOW)
    other.on("request", lambda request: requests.append(request.url))
    other.goto(served.url)
    other.locator("#lrnet-input input[type=file]").set_input_files(str(image))
    page.locator("button.gallery-item").first.click()
    status.get_by_text("synthetic_scene_3.png").wait_for()
    assert "labelled in" in status.inner_text()
    other.locator("#lrnet-status").get_by_text("street.png").wait_for()
    assert "labelled in" in other.locator("#lrnet-status").inner_text()
    other.close()


def _video_tab(page: Any, clip: Path) -> None:
    """A short clip through lrnet.inference.video: the overlay video comes back; the legend and the
    opacity slider are on this tab too."""
    page.get_by_role("tab", name="Video").click()
    assert page.locator("#lrnet-video-legend img").is_visible()
    assert page.locator("#lrnet-video-opacity input[type=range]").is_visible()
    page.locator("#lrnet-video-in input[type=file]").set_input_files(str(clip))
    page.get_by_role("button", name="Label the clip").click()
    page.locator("#lrnet-video-status").get_by_text("clip.mp4: labelled in").wait_for()
    video_src = page.locator("video").last.get_attribute("src") or ""
    assert video_src.endswith("clip_overlay.mp4"), video_src


def test_the_python_api_checks_stage_and_opacity(app: App, tmp_path: Path) -> None:
    """Issue 21: App.view took any stage (an IndexError deep inside) and any opacity."""
    labelled = app.label_image(_image(tmp_path))
    assert app.view(labelled, -1).stage == app.view(labelled, 5).stage == 5
    for bad in (6, -7, 100):
        with pytest.raises(ValueError, match=rf"stage {bad} does not exist; give -6 to 5"):
            app.view(labelled, bad)
    for bad_type in ("s_1", 1.0, True, None):
        with pytest.raises(TypeError, match=r"stage must be a whole number from -6 to 5"):
            app.class_at(labelled, bad_type, 0, 0)  # type: ignore[arg-type]
    for alpha in (-0.5, 2, float("nan")):
        with pytest.raises(ValueError, match=r"opacity must be a number from 0"):
            app.view(labelled, 0, alpha)


def test_port_out_of_range_is_refused_at_parsing(capsys) -> None:
    for port in ("70000", "-1", "http"):
        with pytest.raises(SystemExit) as exit_info:
            main(["app", "--port", port])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert f"argument --port: {port!r}" in err or f"argument --port: {port} " in err, err


def test_upload_folders_of_killed_apps_are_removed_at_start(tmp_path: Path) -> None:
    """Issue 21: an app killed with -9 left its upload folder, and no later run removed it."""
    from lrnet.cli.app import WORKDIR_MARK, WORKDIR_PREFIX, remove_stale_workdirs

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid names a process that is gone
    stale = tmp_path / f"{WORKDIR_PREFIX}{dead.pid}-abc"
    (stale / "gradio").mkdir(parents=True)
    (stale / "gradio" / "upload.png").write_bytes(b"x")
    mine = tmp_path / f"{WORKDIR_PREFIX}{os.getpid()}-def"  # this process: running
    alive = tmp_path / f"{WORKDIR_PREFIX}1-ghi"  # init: running
    other = tmp_path / "lrnet-app-notapid"  # not lrnet's naming: left alone
    unmarked = tmp_path / f"{WORKDIR_PREFIX}{dead.pid}-user"  # lrnet's naming, not lrnet's mark
    for folder in (mine, alive, other, unmarked):
        folder.mkdir()
    for folder in (stale, mine, alive, other):
        (folder / WORKDIR_MARK).touch()
    assert remove_stale_workdirs(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (mine, alive, other, unmarked)
    )
