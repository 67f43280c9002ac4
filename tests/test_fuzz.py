"""Property-based fuzzing (hypothesis) of what a user's files reach: only LrnetError may come out.

Four targets, each bounded (a fixed number of examples, derandomised so that CI is stable, no
example database): the image and mask readers (random bytes, valid files with mutated bytes, and
PNGs built chunk by chunk with random header fields and pixel data, CRCs fixed so that the
decoder itself is reached), the config override parser and ``load_config`` (random ``key=value``
strings and random YAML files), and checkpoint loading (a valid small checkpoint whose pickle is
mutated and rewritten into a well-formed zip, so the unpickler and the checks after it are
reached, not only the zip reader). ``pytest tests/test_fuzz.py --hypothesis-show-statistics``
prints the number of inputs tried.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from lrnet._errors import LrnetError
from lrnet.data._io import read_image, read_index_png, read_label_image


def fuzz_settings(examples: int) -> Any:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module", autouse=True)
def small_pixel_limit():
    """1 megapixel while fuzzing: headers claiming more are refused before any allocation."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LRNET_MAX_PIXELS", "1000000")
        yield


# ---------------------------------------------------------------- image and mask files


def _encoded(array: np.ndarray, fmt: str, **save: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **save)
    return buffer.getvalue()


_RGB = np.random.default_rng(0).integers(0, 256, (12, 10, 3), np.uint8)
_SEEDS = [
    _encoded(_RGB, "PNG"),
    _encoded(_RGB[:, :, 0], "PNG"),  # a mask: mode L
    _encoded(_RGB, "JPEG", quality=80),
    _encoded(_RGB, "BMP"),
    _encoded(_RGB, "TIFF"),
    _encoded(_RGB, "WEBP"),
    _encoded(_RGB, "GIF"),
]


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    """A valid file of some format with a few bytes changed, or cut short, or both."""
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


@st.composite
def built_pngs(draw: st.DrawFn) -> bytes:
    """A PNG made chunk by chunk: random header fields and pixel data, correct CRCs."""
    side = st.one_of(st.integers(0, 40), st.integers(0, 2**31 - 1))
    width, height = draw(side), draw(side)
    depth = draw(st.sampled_from([1, 2, 4, 8, 16, 3, 0, 255]))
    colour = draw(st.sampled_from([0, 2, 3, 4, 6, 1, 7]))
    interlace = draw(st.sampled_from([0, 1, 2]))
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    chunks = [_chunk(b"IHDR", header)]
    if draw(st.booleans()):
        chunks.append(_chunk(b"PLTE", draw(st.binary(max_size=60))))
    if draw(st.booleans()):
        chunks.append(_chunk(b"tRNS", draw(st.binary(max_size=10))))
    pixels = draw(st.binary(max_size=2000))
    chunks.append(_chunk(b"IDAT", zlib.compress(pixels) if draw(st.booleans()) else pixels))
    chunks.append(_chunk(b"IEND", b""))
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


MAGIC = [b"\xff\xd8\xff", b"GIF87a", b"BM", b"II*\x00", b"MM\x00*", b"RIFF\x00\x00\x00\x00WEBP"]
files = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda m, tail: m + tail, st.sampled_from(MAGIC), st.binary(max_size=300)),
    mutated_files(),
    built_pngs(),
)


@fuzz_settings(400)
@given(data=files)
def test_image_reader_gives_an_image_or_a_clear_error(data: bytes, scratch: Path) -> None:
    path = scratch / "image.png"
    path.write_bytes(data)
    try:
        image = read_image(path)
    except LrnetError as exc:
        assert str(path) in str(exc)
        return
    assert image.dtype == torch.float32 and image.ndim == 3 and image.shape[0] == 3
    assert image.shape[1] * image.shape[2] <= 1_000_000
    assert (
        bool(torch.isfinite(image).all()) and 0.0 <= float(image.min()) <= float(image.max()) <= 1
    )


@fuzz_settings(300)
@given(data=files)
def test_mask_readers_give_labels_or_a_clear_error(data: bytes, scratch: Path) -> None:
    path = scratch / "mask.png"
    path.write_bytes(data)
    try:
        stored = read_label_image(path)
    except LrnetError as exc:
        assert str(path) in str(exc)
        stored = None
    if stored is not None:
        assert stored.ndim == 2 or (stored.ndim == 3 and stored.shape[2] == 3)
        assert np.issubdtype(stored.dtype, np.integer)
    try:
        indices = read_index_png(path)
    except LrnetError as exc:
        assert str(path) in str(exc)
        return
    assert stored is not None and stored.ndim == 2 and indices.shape == stored.shape


@fuzz_settings(150)
@given(data=files)
def test_folder_colour_masks_give_labels_or_a_clear_error(data: bytes, scratch: Path) -> None:
    """Through the folder dataset, whose classes.yaml gives colours (colour masks are read)."""
    from lrnet.data import FolderDataset

    root = scratch / "colours"
    if not root.is_dir():
        (root / "images").mkdir(parents=True)
        (root / "masks").mkdir()
        (root / "splits").mkdir()
        (root / "classes.yaml").write_text(
            "names: [a, b]\npalette: [[0, 0, 0], [255, 255, 255]]\nvoid_colors: [[9, 9, 9]]\n"
        )
        (root / "splits" / "train.txt").write_text("x\n")
        (root / "images" / "x.png").write_bytes(_SEEDS[0])
    (root / "masks" / "x.png").write_bytes(data)
    dataset = FolderDataset(root, "train")
    try:
        mask = dataset.read_mask(0)
    except LrnetError as exc:
        assert "x.png" in str(exc)
        return
    assert mask.ndim == 2 and set(np.unique(mask.numpy())) <= {0, 1, 255}


# ---------------------------------------------------------------- config overrides and files

_KEYS = [
    "model.name",
    "model.width",
    "model.num_classes",
    "data.crop_size",
    "data.options",
    "data.class_weights",
    "optim.lr",
    "optim.milestones",
    "optim.iterations",
    "run.device",
    "run.amp",
    "loss.stage_weights",
]
_YAMLISH = st.text(
    alphabet=st.sampled_from(list("abcxyz019.-_=:,[]{}!&*'\"#|>% \t\n\\e+")) | st.characters(),
    max_size=30,
)
overrides = st.one_of(
    _YAMLISH,
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(_KEYS), _YAMLISH),
    st.builds(lambda k, v: f"{k}={v}", _YAMLISH, _YAMLISH),
)


@fuzz_settings(400)
@given(texts=st.lists(overrides, min_size=1, max_size=3))
def test_config_overrides_give_a_config_or_a_clear_error(texts: list[str]) -> None:
    from lrnet.config import Config, load_config, parse_override

    for text in texts:
        try:
            keys, _ = parse_override(text)
        except LrnetError:
            continue
        assert keys and all(isinstance(k, str) for k in keys)
    try:
        config = load_config(None, texts)
    except LrnetError:
        return
    assert isinstance(config, Config)


@fuzz_settings(200)
@given(text=st.one_of(_YAMLISH, st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_config_files_give_a_config_or_a_clear_error(text: str, scratch: Path) -> None:
    from lrnet.config import Config, load_config

    path = scratch / "config.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        config = load_config(path)
    except LrnetError:
        return
    assert isinstance(config, Config)


# ---------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def checkpoint_parts() -> dict[str, bytes]:
    """The zip entries of a valid, small lrnet checkpoint (LRN at width 1/16, 3 classes)."""
    from lrnet import checkpoint
    from lrnet.config import load_config
    from lrnet.models import build_model

    config = load_config(
        None, ["model.num_classes=3", "model.width=0.0625", "model.skip_channels=2"]
    )
    model = build_model("lrn", 3, width=0.0625, skip_channels=2).eval()
    state = checkpoint.training_state(model, config, classes=["a", "b", "c"])
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with zipfile.ZipFile(buffer) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _rezip(parts: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@st.composite
def mutated_checkpoints(draw: st.DrawFn, parts: dict[str, bytes]) -> bytes:
    """A checkpoint whose pickle (or, now and then, the raw file) has a few bytes changed."""
    pickle_name = next(n for n in parts if n.endswith("data.pkl"))
    if draw(st.integers(0, 4)) == 0:  # the raw file: zip structures and tensor data
        data = bytearray(_rezip(parts))
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    payload = bytearray(parts[pickle_name])
    for _ in range(draw(st.integers(1, 6))):
        payload[draw(st.integers(0, len(payload) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        payload = payload[: draw(st.integers(0, len(payload)))]
    return _rezip({**parts, pickle_name: bytes(payload)})


@fuzz_settings(60)
@given(data=st.data())
def test_checkpoint_loading_gives_a_model_or_a_clear_error(
    data: st.DataObject, checkpoint_parts: dict[str, bytes], scratch: Path
) -> None:
    from lrnet.pretrained import load_model

    path = scratch / "model.pt"
    path.write_bytes(data.draw(mutated_checkpoints(checkpoint_parts)))
    try:
        loaded = load_model(path)
    except LrnetError as exc:
        assert "model.pt" in str(exc)
        return
    assert isinstance(loaded.model, torch.nn.Module)
