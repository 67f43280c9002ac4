"""Bad inputs through every command and the Python API: a one-line error or a correct result.

A corpus of broken images, masks, split files, configs, checkpoints and videos (clips and frame
folders), made here, is replayed through ``lrnet.cli.main`` in-process and through
``Predictor``, ``load_model``, ``build_dataset``, ``load_config`` and ``lrnet.inference.video``. Each case must end with exit status 2 (check-dataset: 1,
with the problem in its report) and a one-line message naming the file or key, or with a correct
result; never a traceback, and never a changed or deleted file outside the case's own output
folder (every file of the case and of the shared fixtures is hashed before and after). A pickle
whose ``__reduce__`` would create a marker file is among the checkpoints: the marker never
appears. Pillow replays its fuzzing corpus the same way (``Tests/oss-fuzz/test_fuzzers.py``).

Also here: the data-loss regressions of ``lrnet predict`` (issue 13): no output replaces an
input, a ground-truth mask or a file lrnet did not write.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from lrnet._errors import LrnetError
from lrnet.cli import main as cli
from lrnet.data.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_PALETTE, generate_synthetic
from lrnet.inference.outputs import OUTPUT_SUFFIXES

SIZE = 32  # every image and mask of the tiny dataset is 32 x 32
MAX_MESSAGE = 2000  # characters: a message quotes values in part (issue 21: one quoted 8 GB)
TINY_CONFIG = {
    "model": {"name": "lrn", "encoder": "vgg16_bn", "width": 0.125, "skip_channels": 4},
    "data": {
        "dataset": "folder",
        "crop_size": [SIZE, SIZE],
        "scale_range": [1.0, 1.0],
        "batch_size": 2,
        "num_workers": 0,
        "class_weights": None,
    },
    "optim": {"optimizer": "adamw", "lr": 0.001, "iterations": 2, "schedule": "constant"},
    "run": {
        "device": "cpu",
        "val_interval": 2,
        "checkpoint_interval": 2,
        "log_interval": 1,
        "tensorboard": False,
        "progress": False,
    },
}


# ---------------------------------------------------------------- the shared, read-only world


@dataclass
class World:
    root: Path
    data: Path  # the tiny synthetic dataset (folder layout)
    config: Path  # TINY_CONFIG as YAML
    ckpt: Path  # a checkpoint of TINY_CONFIG's model on the tiny dataset
    marker: Path  # created by the malicious pickle if it ever runs


class Evil:
    """Unpickling this calls ``open(marker, "w")``: the file appears if a loader runs code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module", autouse=True)
def lrnet_home(tmp_path_factory: pytest.TempPathFactory):
    """One cache for the module (exported graphs are made once), never the user's ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LRNET_HOME", str(tmp_path_factory.mktemp("lrnet_home")))
        yield


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    from lrnet import checkpoint
    from lrnet.config import load_config
    from lrnet.models import build_model

    root = tmp_path_factory.mktemp("world")
    data = generate_synthetic(root / "data", num_train=2, num_val=1, size=(SIZE, SIZE))
    config_path = root / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(TINY_CONFIG))
    config = load_config(
        config_path, [f"data.root={data}", f"model.num_classes={len(SYNTHETIC_CLASSES)}"]
    )
    torch.manual_seed(0)
    model = build_model("lrn", len(SYNTHETIC_CLASSES), width=0.125, skip_channels=4)
    state = checkpoint.training_state(
        model.eval(), config, classes=SYNTHETIC_CLASSES, palette=SYNTHETIC_PALETTE
    )
    ckpt = root / "model.pt"
    checkpoint.save_checkpoint(ckpt, state)
    return World(root, data, config_path, ckpt, root / "MARKER")


@pytest.fixture(scope="module")
def predictor(world: World) -> Any:
    from lrnet.inference.predictor import Predictor

    return Predictor.from_pretrained(world.ckpt)


# ---------------------------------------------------------------- bad files, made here


def _png_bytes(array: np.ndarray, **save: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", **save)
    return buffer.getvalue()


def _noise(height: int = SIZE, width: int = SIZE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width x height`` RGB pixels and that holds no pixel data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _jpeg(array: np.ndarray, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _image_16bit() -> bytes:
    gray = (np.random.default_rng(1).random((SIZE, SIZE)) * 65535).astype(np.uint16)
    return _png_bytes(gray)


def _image_palette() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_noise()).convert("P", palette=Image.Palette.ADAPTIVE).save(
        buffer, format="PNG"
    )
    return buffer.getvalue()


# name -> (bytes of the file, None for an error naming it, or the (H, W) it is read at)
IMAGES: dict[str, tuple[Callable[[], bytes], tuple[int, int] | None]] = {
    "truncated_png": (lambda: _png_bytes(_noise())[:400], None),
    "truncated_jpeg": (lambda: _jpeg(_noise())[:300], None),
    "zero_bytes": (lambda: b"", None),
    "text_named_png": (lambda: b"this is not an image\n", None),
    "header_100000x100000": (lambda: _png_header_only(100_000, 100_000), None),
    "header_8000x6000": (lambda: _png_header_only(8000, 6000), None),  # 48 MP: over the limit
    "16bit": (_image_16bit, (SIZE, SIZE)),
    "palette": (_image_palette, (SIZE, SIZE)),
    "cmyk_jpeg": (lambda: _jpeg(_noise(), "CMYK"), (SIZE, SIZE)),
}


def _index_mask(root: Path, stem: str) -> np.ndarray:
    return np.asarray(Image.open(root / "masks" / f"{stem}.png"))


def _mask_rgb_in_palette(root: Path, stem: str) -> bytes:
    colours = np.array(SYNTHETIC_PALETTE, np.uint8)
    return _png_bytes(colours[_index_mask(root, stem)])


def _mask_rgb_unknown_colour(root: Path, stem: str) -> bytes:
    rgb = np.array(SYNTHETIC_PALETTE, np.uint8)[_index_mask(root, stem)]
    rgb[0, :5] = (1, 2, 3)
    return _png_bytes(rgb)


def _mask_out_of_range(root: Path, stem: str) -> bytes:
    mask = _index_mask(root, stem).copy()
    mask[3, 3] = 42
    return _png_bytes(mask)


def _mask_wrong_size(root: Path, stem: str) -> bytes:
    return _png_bytes(_index_mask(root, stem)[:-2])


# name -> (bytes of the mask file, whether classes.yaml loses its palette, error needles or None)
MASKS: dict[str, tuple[Callable[[Path, str], bytes], bool, tuple[str, ...] | None]] = {
    "rgb_without_colours": (_mask_rgb_in_palette, True, ("gives no colours",)),
    "rgb_unknown_colour": (_mask_rgb_unknown_colour, False, ("(1, 2, 3) in 5 pixels",)),
    "values_out_of_range": (_mask_out_of_range, False, ("42",)),
    "wrong_size": (_mask_wrong_size, False, ()),
    "rgb_in_the_palette": (_mask_rgb_in_palette, False, None),  # a colour mask, read correctly
}

SPLITS: dict[str, bytes] = {
    "non_utf8": b"train_00000\n\xff\xfe\x00bad\n",
    "missing_entry": b"train_00000\nghost_00007\n",
}


def _checkpoint_bytes(kind: str, world: World) -> bytes:
    good = world.ckpt.read_bytes()
    state = torch.load(world.ckpt, weights_only=True)
    buffer = io.BytesIO()
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "random_bytes":
        return np.random.default_rng(5).integers(0, 256, 4096, np.uint8).tobytes()
    if kind == "zero_bytes":
        return b""
    if kind in OTHER_FILES:  # issue 21: said to "hold objects lrnet refuses to load for safety"
        return _other_file_bytes(kind)
    if kind == "malicious_zip":
        torch.save({"model": Evil(world.marker), "config": state["config"]}, buffer)
    elif kind == "malicious_raw_pickle":
        return pickle.dumps({"model": Evil(world.marker)}, protocol=2)
    elif kind == "dict_without_model":
        torch.save({"config": state["config"]}, buffer)
    elif kind == "model_not_a_state_dict":
        torch.save({"model": [1, 2, 3], "config": state["config"]}, buffer)
    elif kind == "model_with_non_tensors":  # a state dict's shape, a value that is no tensor
        model = dict(state["model"])
        model[next(iter(model))] = "not a tensor"
        torch.save({**state, "model": model}, buffer)
    elif kind == "nan_weights":  # a diverged run's last.pt
        model = {k: v.clone() for k, v in state["model"].items()}
        first = next(k for k, v in model.items() if v.is_floating_point())
        model[first].view(-1)[0] = float("nan")
        torch.save({**state, "model": model}, buffer)
    elif kind == "other_architecture":
        from lrnet.models import build_model

        other = build_model("segnet", 3, width=0.125)
        torch.save({**state, "model": other.state_dict()}, buffer)
    else:
        raise AssertionError(kind)
    return buffer.getvalue()


def _other_file_bytes(kind: str) -> bytes:
    """A file that is no checkpoint at all: an image, JSON text, an ONNX graph."""
    if kind == "png_image":
        return _png_bytes(_noise())
    if kind == "json_text":
        return b'{"model": "lrn", "classes": ["sky", "road"]}\n'
    import onnx
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["logits"])],
        "g",
        [value("images", TensorProto.FLOAT, [1, 3, 32, 32])],
        [value("logits", TensorProto.FLOAT, [1, 3, 32, 32])],
    )
    return onnx.helper.make_model(graph).SerializeToString()


# name -> the suffix the file is given with
OTHER_FILES = {"png_image": ".png", "json_text": ".json", "onnx_graph": ".onnx"}
CHECKPOINTS = (
    "truncated",
    "random_bytes",
    "zero_bytes",
    *OTHER_FILES,
    "malicious_zip",
    "malicious_raw_pickle",
    "dict_without_model",
    "model_not_a_state_dict",
    "model_with_non_tensors",
    "other_architecture",
    "nan_weights",
)


def _alias_bomb(levels: int) -> bytes:
    """YAML whose aliases of aliases stand for 9**levels strings (issue 21: 8 GB at 9 levels)."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * 9) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return ("\n".join(lines) + f"\nmodel: {{name: *l{levels - 1}}}\n").encode()


# Config files and overrides: (file text or None for TINY_CONFIG, overrides, needles)
CONFIGS: dict[str, tuple[bytes | None, list[str], tuple[str, ...]]] = {
    "bad_yaml": (b"model: [unclosed\n", [], ("bad.yaml",)),
    "unknown_key": (b"model: {nme: lrn}\n", [], ("nme",)),
    "wrong_type": (b"optim: {lr: fast}\n", [], ("optim.lr",)),
    "not_a_mapping": (b"- a\n- b\n", [], ("bad.yaml",)),
    "non_utf8": (b"model:\n  name: \xff\xfe\n", [], ("bad.yaml",)),
    "override_without_equals": (None, ["optim.lr"], ("optim.lr",)),
    "override_without_key": (None, ["=3"], ("=3",)),
    "override_bad_yaml": (None, ["optim.lr=[1"], ("optim.lr",)),
    "override_unknown_key": (None, ["optim.nope=1"], ("optim.nope",)),
    "override_wrong_type": (None, ["optim.iterations=abc"], ("optim.iterations",)),
    "override_empty_part": (None, ["optim..lr=1"], ("optim..lr",)),
    "override_section_value": (None, ["optim=3"], ("optim",)),
    # issue 21: what is parsed and what a message quotes are bounded
    "alias_bomb": (_alias_bomb(6), [], ("bad.yaml", "aliases")),
    "alias_loop": (b"model: &m {name: *m}\n", [], ("bad.yaml", "refers to")),
    "long_value": (b"model:\n  name: " + b"x" * 100_000 + b"\n", [], ("model.name",)),
    "override_long_value": (None, ["model.name=" + "y" * 100_000], ("model.name",)),
    # issue 21: a key given twice would keep the last alone (a whole optim block lost)
    "duplicate_section": (
        b"optim:\n  lr: 0.1\nmodel:\n  name: lrn\noptim:\n  iterations: 5\n",
        [],
        ("bad.yaml", "'optim'", "lines 1 and 5"),
    ),
    "duplicate_nested_key": (b"optim:\n  lr: 0.1\n  lr: 0.2\n", [], ("'lr'", "lines 2 and 3")),
    "override_duplicate_key": (None, ["data.options={seed: 1, seed: 2}"], ("'seed'",)),
}


# ---------------------------------------------------------------- running a case


@dataclass
class Result:
    rc: int | None
    out: str
    err: str
    error: BaseException | None = None
    value: Any = None


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Result:
    try:
        rc = cli(argv)
    except SystemExit as exc:  # argparse
        rc = exc.code if isinstance(exc.code, int) else 2
    captured = capsys.readouterr()
    return Result(rc, captured.out, captured.err)


def run_api(call: Callable[[], Any], capsys: pytest.CaptureFixture[str]) -> Result:
    try:
        value, error = call(), None
    except LrnetError as exc:
        value, error = None, exc
    captured = capsys.readouterr()
    return Result(None, captured.out, captured.err, error, value)


def snapshot(*roots: Path, skip: Path | None = None) -> dict[str, str]:
    """sha256 of every file under ``roots``, except under ``skip``."""
    found = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.is_file() and not (skip is not None and skip in p.parents):
                found[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def assert_one_line_error(result: Result, command: str, needles: tuple[str, ...]) -> None:
    text = result.out + result.err
    assert "Traceback" not in text, text
    assert result.rc == 2, (result.rc, text)
    lines = result.err.strip().splitlines()
    assert lines, "no message"
    prefix = f"lrnet {command}: error: "
    last = next((i for i, line in enumerate(lines) if line.startswith(prefix)), None)
    assert last is not None, f"no '{prefix}' line in {result.err!r}"
    assert last == len(lines) - 1, f"the message spans several lines: {result.err!r}"
    assert len(lines[-1]) <= MAX_MESSAGE, f"a {len(lines[-1])}-character message"
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])


def assert_api_error(result: Result, needles: tuple[str, ...]) -> None:
    assert result.error is not None, f"no LrnetError; returned {result.value!r}"
    message = str(result.error)
    assert "\n" not in message.strip(), message[:1000]
    assert len(message) <= MAX_MESSAGE, f"a {len(message)}-character message"
    for needle in needles:
        assert needle in message, (needle, message)


@dataclass
class Case:
    """One bad input through one route; ``run`` returns the Result and checks it."""

    kind: str
    name: str
    route: str
    run: Callable[..., None]
    owner: str | None = None  # set while another part's fix is pending (strict xfail)
    tags: list[str] = field(default_factory=list)


@pytest.fixture
def guarded(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Runs in ``tmp_path`` (outputs in ``tmp_path/out``); every other file must stay as it was."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    before = snapshot(world.root, tmp_path, skip=out)
    yield out
    after = snapshot(world.root, tmp_path, skip=out)
    changed = [p for p, digest in before.items() if after.get(p) != digest]
    assert not changed, f"changed or deleted outside the outputs: {changed}"
    assert not world.marker.exists(), "the malicious pickle ran"


def _dataset_copy(world: World, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(world.data, root)
    return root


def _train_argv(world: World, data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", str(world.config), f"data.root={data}", f"run.out_dir={out / 'run'}", *extra]


def _evaluate_argv(ckpt: Path | str, data: Path) -> list[str]:
    return [
        "evaluate",
        str(ckpt),
        "--data",
        str(data),
        "--dataset",
        "folder",
        "--split",
        "val",
        "--batch-size",
        "1",
        "--num-workers",
        "0",
        "--device",
        "cpu",
    ]


# ---------------------------------------------------------------- images


def _image_case(name: str, route: str) -> Case:
    make, size = IMAGES[name]

    def run(world: World, tmp_path: Path, out: Path, capsys: Any, predictor: Any) -> None:
        if route in ("predict", "predict-api"):
            image = tmp_path / f"{name}.png"
            image.write_bytes(make())
            if route == "predict-api":
                result = run_api(lambda: predictor.predict(image), capsys)
                if size is None:
                    assert_api_error(result, (image.name,))
                else:
                    assert result.error is None and tuple(result.value.labels.shape) == size
                return
            result = run_cli(
                ["predict", str(world.ckpt), str(image), "--out", str(out), "--device", "cpu"],
                capsys,
            )
            if size is None:
                assert_one_line_error(result, "predict", (image.name,))
                assert not any(out.glob(f"{name}_*")), "outputs of an unreadable image"
            else:
                assert result.rc == 0, result.err
                assert Image.open(out / f"{name}_label.png").size == size[::-1]
            return
        data = _dataset_copy(world, tmp_path)
        stem = "val_00000" if route == "evaluate" else "train_00000"
        (data / "images" / f"{stem}.png").write_bytes(make())
        needles = (f"{stem}.png",)
        if route == "dataset-api":
            from lrnet.data import build_dataset

            result = run_api(lambda: build_dataset("folder", data, "train")[0], capsys)
            if size is None:
                assert_api_error(result, needles)
            else:
                assert result.error is None and tuple(result.value[0].shape) == (3, *size)
        elif route == "check-dataset":
            result = run_cli(["check-dataset", "folder", str(data), "--splits", "train"], capsys)
            assert "Traceback" not in result.out + result.err
            if size is None:
                assert result.rc == 1 and "unreadable files: 1" in result.out
                assert needles[0] in result.out
            else:
                assert result.rc == 0, result.out
        elif route == "evaluate":
            result = run_cli(_evaluate_argv(world.ckpt, data), capsys)
            if size is None:
                assert_one_line_error(result, "evaluate", needles)
            else:
                assert result.rc == 0, result.err
        elif route == "train":
            result = run_cli(_train_argv(world, data, out), capsys)
            assert_one_line_error(result, "train", needles)
        else:
            raise AssertionError(route)

    return Case("image", name, route, run)


IMAGE_ROUTES = ("predict", "predict-api", "dataset-api", "check-dataset", "evaluate")
TRAIN_IMAGES = ("truncated_png", "header_8000x6000")


def _in_thread(call: Callable[[], Any], unblock: Callable[[], None]) -> Any:
    """``call()`` in a thread: its result, or its error; fails (then ``unblock``s it) if it is
    still running after 60 s, as a reader blocked on a named pipe would be."""
    import threading

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(60)
    if thread.is_alive():
        unblock()
        thread.join(10)
        raise AssertionError("the read blocked (it was given a named pipe)")
    if "error" in box and not isinstance(box["error"], LrnetError):
        raise box["error"]
    return box.get("error"), box.get("value")


def _make_special(path: Path, name: str) -> Callable[[], None]:
    """A named pipe or a folder at ``path``; returns what unblocks a reader of the pipe."""
    import os

    if name == "folder":
        path.mkdir()
        return lambda: None
    os.mkfifo(path)

    def unblock() -> None:  # a writer that closes at once: the blocked reader sees the end
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    return unblock


def _special_case(name: str, route: str) -> Case:
    """Issue 21: an image path that is a named pipe (read for ever) or a folder: an error, not
    a hang (a dataset lists regular files only: the sample is missing)."""

    def run(world: World, tmp_path: Path, out: Path, capsys: Any, predictor: Any) -> None:
        if route == "predict-api":
            image = tmp_path / f"{name}.png"
            unblock = _make_special(image, name)
            error, value = _in_thread(lambda: predictor.predict(image), unblock)
            assert_api_error(Result(None, "", "", error, value), (image.name, "not a regular file"))
            return
        data = _dataset_copy(world, tmp_path)
        image = data / "images" / "train_00000.png"
        image.unlink()
        unblock = _make_special(image, name)
        if route == "dataset-api":
            from lrnet.data import build_dataset

            error, value = _in_thread(lambda: build_dataset("folder", data, "train")[0], unblock)
            assert_api_error(Result(None, "", "", error, value), (image.stem,))
        elif route == "train":
            result = _in_thread(lambda: run_cli(_train_argv(world, data, out), capsys), unblock)[1]
            assert_one_line_error(result, "train", (image.stem,))
        else:
            raise AssertionError(route)

    return Case("image", name, route, run)


SPECIAL_FILES = ("fifo", "folder")
SPECIAL_ROUTES = ("predict-api", "dataset-api", "train")

# ---------------------------------------------------------------- masks


def _mask_case(name: str, route: str) -> Case:
    make, drop_palette, needles = MASKS[name]

    def run(world: World, tmp_path: Path, out: Path, capsys: Any, predictor: Any) -> None:
        data = _dataset_copy(world, tmp_path)
        stem = "val_00000" if route in ("evaluate", "predict --gt") else "train_00000"
        mask = data / "masks" / f"{stem}.png"
        mask.write_bytes(make(world.data, stem))
        if drop_palette:
            (data / "classes.yaml").write_text(yaml.safe_dump({"names": SYNTHETIC_CLASSES}))
        named = (mask.name, *(needles or ()))
        if route == "dataset-api":
            from lrnet.data import build_dataset

            result = run_api(lambda: build_dataset("folder", data, "train")[0], capsys)
            if needles is None:
                assert result.error is None
                np.testing.assert_array_equal(
                    result.value[1].numpy(), _index_mask(world.data, stem)
                )
            else:
                assert_api_error(result, named)
        elif route == "check-dataset":
            result = run_cli(["check-dataset", "folder", str(data), "--splits", "train"], capsys)
            assert "Traceback" not in result.out + result.err
            if needles is None:
                assert result.rc == 0, result.out
            else:
                assert result.rc == 1 and all(n in result.out for n in named), result.out
        elif route == "class-weights":
            result = run_cli(["class-weights", "folder", str(data)], capsys)
            if needles is None or name == "wrong_size":  # weights count masks only
                assert result.rc == 0, result.err
            else:
                assert_one_line_error(result, "class-weights", named)
        elif route == "evaluate":
            result = run_cli(_evaluate_argv(world.ckpt, data), capsys)
            if needles is None:
                assert result.rc == 0, result.err
            else:
                assert_one_line_error(result, "evaluate", named)
        elif route == "train":
            result = run_cli(_train_argv(world, data, out), capsys)
            assert_one_line_error(result, "train", named)
        elif route == "predict --gt":
            image = data / "images" / f"{stem}.png"
            argv = ["predict", str(world.ckpt), str(image), "--gt", str(mask), "--out", str(out)]
            result = run_cli([*argv, "--device", "cpu"], capsys)
            if name in ("values_out_of_range", "rgb_unknown_colour"):
                # a value or colour that is no class is drawn as void: a correct result
                assert result.rc == 0, result.err
                assert (out / f"{stem}_stages.png").is_file(), sorted(p.name for p in out.iterdir())
            elif name in ("rgb_without_colours", "rgb_in_the_palette"):
                # a colour mask is read through the checkpoint's palette, which classes.yaml
                # losing its colours does not change
                assert result.rc == 0, result.err
                assert (out / f"{stem}_stages.png").is_file(), sorted(p.name for p in out.iterdir())
            else:
                assert_one_line_error(result, "predict", (image.name,))
        else:
            raise AssertionError(route)

    return Case("mask", name, route, run)


MASK_ROUTES = ("dataset-api", "check-dataset", "class-weights", "evaluate", "predict --gt")
TRAIN_MASKS = ("rgb_unknown_colour", "values_out_of_range", "wrong_size")

# ---------------------------------------------------------------- split files


def _split_case(name: str, route: str) -> Case:
    text = SPLITS[name]

    def run(world: World, tmp_path: Path, out: Path, capsys: Any, predictor: Any) -> None:
        data = _dataset_copy(world, tmp_path)
        split = "val" if route == "evaluate" else "train"
        (data / "splits" / f"{split}.txt").write_bytes(text)
        named = (f"{split}.txt",) if name == "non_utf8" else ("ghost_00007",)
        if route == "dataset-api":
            from lrnet.data import build_dataset

            assert_api_error(run_api(lambda: build_dataset("folder", data, split), capsys), named)
        elif route == "check-dataset":
            result = run_cli(["check-dataset", "folder", str(data), "--splits", split], capsys)
            assert "Traceback" not in result.out + result.err
            assert result.rc == 1 and all(n in result.out for n in named), result.out
            if name == "missing_entry":  # the rest of the split is still checked
                assert "missing files: 2" in result.out and "samples: 2" in result.out
        elif route == "class-weights":
            result = run_cli(["class-weights", "folder", str(data)], capsys)
            assert_one_line_error(result, "class-weights", named)
        elif route == "evaluate":
            assert_one_line_error(
                run_cli(_evaluate_argv(world.ckpt, data), capsys), "evaluate", named
            )
        elif route == "train":
            assert_one_line_error(run_cli(_train_argv(world, data, out), capsys), "train", named)
        else:
            raise AssertionError(route)

    return Case("split", name, route, run)


SPLIT_ROUTES = ("dataset-api", "check-dataset", "class-weights", "evaluate", "train")


def _other_split_case(dataset: str) -> Case:
    """A non-UTF-8 split file of CamVid and VOC (their own list formats)."""

    def run(world: World, tmp_path: Path, out: Path, capsys: Any, predictor: Any) -> None:
        from lrnet.data import build_dataset

        root = tmp_path / dataset
        if dataset == "camvid":
            (root / "train").mkdir(parents=True)
            list_file = root / "train.txt"
        else:
            (root / "JPEGImages").mkdir(parents=True)
            list_file = root / "ImageSets" / "Segmentation" / "train.txt"
            list_file.parent.mkdir(parents=True)
        list_file.write_bytes(b"/SegNet/CamVid/train/a.png \xff\xfe\n")
        result = run_api(lambda: build_dataset(dataset, root, "train"), capsys)
        assert_api_error(result, (str(list_file), "UTF-8"))

    return Case("split", f"non_utf8_{dataset}", "dataset-api", run)


# ---------------------------------------------------------------- configs


def _config_case(name: str, route: str) -> Case:
    text, overrides, needles = CONFIGS[name]

    def run(world: World, tmp_path: Path, out: Path, capsys: Any, predictor: Any) -> None:
        path = world.config
        if text is not None:
            path = tmp_path / "bad.yaml"
            path.write_bytes(text)
        if route == "train":
            argv = ["train", str(path), f"data.root={world.data}", f"run.out_dir={out}", *overrides]
            assert_one_line_error(run_cli(argv, capsys), "train", needles)
        elif route == "load_config":
            from lrnet.config import load_config

            assert_api_error(run_api(lambda: load_config(path, overrides), capsys), needles)
        elif route == "demo":
            argv = ["demo", "--out", str(out), *overrides]
            assert_one_line_error(run_cli(argv, capsys), "demo", needles)
        else:
            raise AssertionError(route)

    return Case("config", name, route, run)


# ---------------------------------------------------------------- checkpoints


def _checkpoint_case(name: str, route: str) -> Case:
    def run(world: World, tmp_path: Path, out: Path, capsys: Any, predictor: Any) -> None:
        ckpt = tmp_path / f"{name}{OTHER_FILES.get(name, '.pt')}"
        ckpt.write_bytes(_checkpoint_bytes(name, world))
        needles = (ckpt.name,)
        image = tmp_path / "photo.png"
        image.write_bytes(_png_bytes(_noise()))
        if route == "predict":
            argv = ["predict", str(ckpt), str(image), "--out", str(out), "--device", "cpu"]
            result = run_cli(argv, capsys)
        elif route == "evaluate":
            result = run_cli(_evaluate_argv(ckpt, world.data), capsys)
        elif route == "export":
            result = run_cli(["export", str(ckpt), "--onnx", str(out / "model.onnx")], capsys)
        elif route in ("train --load-from", "train --resume-from"):
            flag = route.split()[1]
            result = run_cli(_train_argv(world, world.data, out, flag, str(ckpt)), capsys)
        elif route in ("load_model", "Predictor"):
            from lrnet.inference.predictor import Predictor
            from lrnet.pretrained import load_model

            call = load_model if route == "load_model" else Predictor.from_pretrained
            result = run_api(lambda: call(ckpt), capsys)
            assert_api_error(result, needles)
            assert "weights_only=False" not in str(result.error)
            if name in OTHER_FILES:  # no pickle, so no objects in it to refuse
                assert "refuses to load" not in str(result.error), str(result.error)
            return
        else:
            raise AssertionError(route)
        assert_one_line_error(result, route.split()[0], needles)
        assert "weights_only=False" not in result.err  # never suggest turning the safety off
        if name in OTHER_FILES:
            assert "refuses to load" not in result.err, result.err

    return Case("checkpoint", name, route, run)


CHECKPOINT_ROUTES = ("predict", "evaluate", "export", "load_model", "Predictor")
TRAIN_CHECKPOINTS = (
    "truncated",
    "malicious_zip",
    "dict_without_model",
    "other_architecture",
    "nan_weights",
    "model_with_non_tensors",
)


# ---------------------------------------------------------------- videos


def _clip_bytes(tmp_path: Path, faststart: bool = False) -> bytes:
    """A valid 6-frame 32x32 H.264 clip (index at the end, or first with ``faststart``)."""
    from fractions import Fraction

    av = pytest.importorskip("av")
    path = tmp_path / "good.mp4"
    with av.open(str(path), "w", options={"movflags": "+faststart"} if faststart else {}) as out:
        stream = out.add_stream("libx264", rate=Fraction(10))
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        for index in range(6):
            frame = av.VideoFrame.from_ndarray(_noise(seed=index), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    data = path.read_bytes()
    path.unlink()
    return data


def _video_bytes(name: str, tmp_path: Path) -> bytes:
    if name == "text_named_mp4":
        return b"this is not a video\n"
    if name == "zero_bytes_mp4":
        return b""
    if name == "random_bytes_mp4":
        return np.random.default_rng(7).integers(0, 256, 8192, np.uint8).tobytes()
    if name == "index_at_end_cut_mp4":  # the first half of a file whose index is at its end
        data = _clip_bytes(tmp_path)
        return data[: len(data) // 2]
    if name == "frames_cut_mp4":  # index first: it opens, then the frames run out mid-packet
        data = _clip_bytes(tmp_path, faststart=True)
        return data[: len(data) // 2]
    raise AssertionError(name)


VIDEOS = (
    "text_named_mp4",
    "zero_bytes_mp4",
    "random_bytes_mp4",
    "index_at_end_cut_mp4",
    "frames_cut_mp4",
    "frames_folder_truncated_frame",
    "frames_folder_mixed_sizes",
    "frames_folder_empty",
)
VIDEO_ROUTES = ("predict", "video-api")


def _video_source(name: str, tmp_path: Path) -> tuple[Path, tuple[str, ...]]:
    """The bad clip or frame folder, and what its message must name."""
    if not name.startswith("frames_folder"):
        clip = tmp_path / "clip.mp4"
        clip.write_bytes(_video_bytes(name, tmp_path))
        return clip, (clip.name,)
    folder = tmp_path / "frames"
    folder.mkdir()
    if name == "frames_folder_empty":
        return folder, (folder.name,)
    for index in range(3):
        Image.fromarray(_noise(seed=index)).save(folder / f"{index:03d}.png")
    if name == "frames_folder_truncated_frame":
        (folder / "001.png").write_bytes(_png_bytes(_noise())[:200])
        return folder, ("001.png",)
    Image.fromarray(_noise(SIZE + 8, SIZE, seed=9)).save(folder / "002.png")  # mixed sizes
    return folder, ("002.png",)


def _video_case(name: str, route: str) -> Case:
    def run(world: World, tmp_path: Path, out: Path, capsys: Any, predictor: Any) -> None:
        pytest.importorskip("av")
        source, needles = _video_source(name, tmp_path)
        if route == "predict":
            argv = [
                "predict",
                str(world.ckpt),
                str(source),
                "--out",
                str(out),
                "--backend",
                "torch",
            ]
            if source.is_dir():
                argv += ["--fps", "10"]
            result = run_cli(argv, capsys)
            assert_one_line_error(result, "predict", needles)
        else:
            from lrnet.inference import video

            def label() -> Any:
                opened = video.open_frames(source) if source.is_dir() else video.open_video(source)
                return video.predict_video(predictor, opened, out, progress=False)

            result = run_api(label, capsys)
            assert_api_error(result, needles)
        leftovers = [p.name for p in out.rglob("*") if p.is_file()] if out.exists() else []
        assert not leftovers, f"partial outputs left: {leftovers}"

    return Case("video", name, route, run)


# ---------------------------------------------------------------- outputs (issue 21)


def _output_argv(name: str, world: World, tmp_path: Path) -> tuple[list[str], tuple[str, ...]]:
    """An output that may not be replaced: the model itself (even with --overwrite), or a
    user's file (without --overwrite). The guard checks that it is unchanged."""
    mine = tmp_path / ("notes.json" if name.startswith("evaluate") else "m.onnx")
    mine.write_bytes(b"the user's own file")
    evaluate = [*_evaluate_argv(world.ckpt, world.data), "--backend", "torch", "--out"]
    argv = {
        "evaluate_out_is_the_model": ([*evaluate, str(world.ckpt), "--overwrite"], "input"),
        "evaluate_out_is_a_users_file": ([*evaluate, str(mine)], "--overwrite"),
        "export_onnx_is_the_model": (
            ["export", str(world.ckpt), "--onnx", str(world.ckpt), "--overwrite"],
            "input",
        ),
        "export_onnx_is_a_users_file": (
            ["export", str(world.ckpt), "--onnx", str(mine)],
            "--overwrite",
        ),
    }[name]
    target = world.ckpt if name.endswith("model") else mine
    return argv[0], (target.name, argv[1])


def _blocked_output_argv(
    name: str, world: World, tmp_path: Path
) -> tuple[list[str], tuple[str, ...]]:
    """An output path that cannot be written (issue 21): a file where its folder should be
    (ENOTDIR: root ignores permission bits, so this stands for a read-only folder too), or a
    folder where the file should be (EISDIR)."""
    blocker = tmp_path / "a_file"
    blocker.write_text("the user's own file")
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.jsonl").write_text(
        '{"kind": "train", "iteration": 1, "loss": 1.0, "stage_losses": [1.0]}\n'
    )
    (run / "report.html").mkdir()  # a folder where the page goes
    evaluate = [*_evaluate_argv(world.ckpt, world.data), "--backend", "torch", "--out"]
    report = ["report", str(run), "--panels", "0"]
    argv = {
        "evaluate_out_under_a_file": [*evaluate, str(blocker / "out.json")],
        "report_out_under_a_file": [*report, "--out", "a_file/report.html"],
        "report_out_is_a_folder": report,
        "train_run_under_a_file": _train_argv(world, world.data, blocker),
    }[name]
    if name == "report_out_under_a_file":
        (run / "a_file").write_text("the user's own file")
    if name == "report_out_is_a_folder":  # the output rule's own check says it first
        return argv, ("report.html", "is a folder")
    return argv, ("cannot write", "a_file")


def _blocked_output_case(name: str) -> Case:
    def run(world: World, tmp_path: Path, out: Path, capsys: Any, predictor: Any) -> None:
        argv, needles = _blocked_output_argv(name, world, tmp_path)
        assert_one_line_error(run_cli(argv, capsys), argv[0], needles)

    return Case("output", name, name.split("_")[0], run)


def _output_case(name: str) -> Case:
    def run(world: World, tmp_path: Path, out: Path, capsys: Any, predictor: Any) -> None:
        argv, needles = _output_argv(name, world, tmp_path)
        assert_one_line_error(run_cli(argv, capsys), argv[0], needles)

    return Case("output", name, name.split("_")[0], run)


OUTPUTS = (
    "evaluate_out_is_the_model",
    "evaluate_out_is_a_users_file",
    "export_onnx_is_the_model",
    "export_onnx_is_a_users_file",
)
BLOCKED_OUTPUTS = (
    "evaluate_out_under_a_file",
    "report_out_under_a_file",
    "report_out_is_a_folder",
    "train_run_under_a_file",
)


# ---------------------------------------------------------------- run folders for report (issue 21)

_TRAIN_LINE = '{"kind": "train", "iteration": 1, "loss": 1.0, "stage_losses": [1.0, 0.5]}\n'
# name -> (history.jsonl bytes, val.json bytes or None, extra arguments, needles)
RUNS: dict[str, tuple[bytes, bytes | None, list[str], tuple[str, ...]]] = {
    "panels_negative": (_TRAIN_LINE.encode(), None, ["--panels", "-1"], ("--panels", "-1")),
    "history_non_utf8": (b'{"kind": "train", "iteration": 1, "loss": "\xff"}\n', None, [], (
        "history.jsonl", "UTF-8")),
    "history_no_iteration": (b'{"kind": "train", "loss": 1.0}\n', None, [], (
        "history.jsonl:1", "iteration")),
    "history_stage_losses_not_a_list": (
        b'{"kind": "train", "iteration": 1, "loss": 1.0, "stage_losses": 5}\n', None, [], (
            "history.jsonl:1", "stage_losses")),
    "history_stages_not_objects": (
        (_TRAIN_LINE + '{"kind": "val", "iteration": 1, "stages": [1, 2]}\n').encode(), None, [], (
            "history.jsonl:2", "stages")),
    "evaluation_non_utf8": (_TRAIN_LINE.encode(), b'{"stages": ["\xfe"]}', [], (
        "val.json", "UTF-8")),
    "evaluation_stage_not_a_number": (
        _TRAIN_LINE.encode(), b'{"stages": [{"miou": "high"}]}', [], ("val.json", "miou")),
    "evaluation_per_class_not_objects": (
        _TRAIN_LINE.encode(), b'{"stages": [{"miou": 0.5}], "per_class": [3]}', [], (
            "val.json", "per_class")),
}  # fmt: skip


def _run_case(name: str) -> Case:
    history, evaluation, extra, needles = RUNS[name]

    def run(world: World, tmp_path: Path, out: Path, capsys: Any, predictor: Any) -> None:
        folder = out / "run"
        folder.mkdir(parents=True)
        (folder / "history.jsonl").write_bytes(history)
        if evaluation is not None:
            (folder / "val.json").write_bytes(evaluation)
        result = run_cli(["report", str(folder), "--panels", "0", *extra], capsys)
        assert_one_line_error(result, "report", needles)
        assert not (folder / "report.html").exists()

    return Case("run", name, "report", run)


# ---------------------------------------------------------------- sizes and numbers (issue 21)

HUGE = "100000"
# name -> (argv after the command's own fixed part, needles); sizes that cannot fit are refused
# with the size and the memory they need, sizes under the minimum with the minimum
SIZES: dict[str, tuple[str, list[str], tuple[str, ...]]] = {
    "evaluate_eval_size_huge": ("evaluate", ["--eval-size", HUGE, HUGE], (HUGE, "needs at least")),
    "evaluate_scales_huge": ("evaluate", ["--scales", "5000"], ("scale 5000", "needs at least")),
    "evaluate_scales_tiny": ("evaluate", ["--scales", "0.0001"], ("scale 0.0001", "32")),
    "export_height_huge": ("export", ["--height", HUGE, "--width", HUGE], (HUGE, "needs at least")),
    "summary_size_huge": ("summary", ["--size", HUGE, HUGE], (HUGE, "needs at least")),
    "summary_size_negative": ("summary", ["--size", "-5", "64"], ("height", "-5")),
    "summary_width_huge": ("summary", ["--width", "1000"], ("width 1000", "needs at least")),
    "summary_num_classes_zero": ("summary", ["--num-classes", "0"], ("num_classes", "0")),
    "train_crop_size_huge": ("train", [f"data.crop_size=[{HUGE}, {HUGE}]"], ("data.crop_size",)),
    "train_width_huge": ("train", ["model.width=1000"], ("width 1000", "needs at least")),
    "app_port_out_of_range": ("app", ["--port", "70000"], ("--port", "70000")),
}


def _size_case(name: str) -> Case:
    command, extra, needles = SIZES[name]

    def run(world: World, tmp_path: Path, out: Path, capsys: Any, predictor: Any) -> None:
        fixed = {
            "evaluate": [*_evaluate_argv(world.ckpt, world.data), "--backend", "torch"],
            "export": ["export", str(world.ckpt), "--onnx", str(out / "model.onnx")],
            "summary": ["summary", "--models", "lrn", "--width", "0.125", "--num-classes", "3"],
            "train": _train_argv(world, world.data, out),
            "app": ["app"],
        }[command]
        result = run_cli([*fixed, *extra], capsys)
        assert_one_line_error(result, command, needles)

    return Case("size", name, command, run)


# ---------------------------------------------------------------- the corpus

# Cases whose fix belongs to another part of the project and was still pending when this file
# was written: strict xfails, so that the fix flips them (id -> owner).
PENDING: dict[str, str] = {}


def _corpus() -> list[Case]:
    cases = [_image_case(n, r) for n in IMAGES for r in IMAGE_ROUTES]
    cases += [_image_case(n, "train") for n in TRAIN_IMAGES]
    cases += [_special_case(n, r) for n in SPECIAL_FILES for r in SPECIAL_ROUTES]
    cases += [_output_case(n) for n in OUTPUTS]
    cases += [_blocked_output_case(n) for n in BLOCKED_OUTPUTS]
    cases += [_run_case(n) for n in RUNS]
    cases += [_size_case(n) for n in SIZES]
    cases += [_mask_case(n, r) for n in MASKS for r in MASK_ROUTES]
    cases += [_mask_case(n, "train") for n in TRAIN_MASKS]
    cases += [_split_case(n, r) for n in SPLITS for r in SPLIT_ROUTES]
    cases += [_other_split_case(d) for d in ("camvid", "voc")]
    cases += [_config_case(n, r) for n in CONFIGS for r in ("train", "load_config")]
    cases += [_config_case("override_bad_yaml", "demo")]
    cases += [_checkpoint_case(n, r) for n in CHECKPOINTS for r in CHECKPOINT_ROUTES]
    cases += [_video_case(n, r) for n in VIDEOS for r in VIDEO_ROUTES]
    cases += [
        _checkpoint_case(n, r)
        for n in TRAIN_CHECKPOINTS
        for r in ("train --load-from", "train --resume-from")
    ]
    return cases


CORPUS = _corpus()


def _case_id(case: Case) -> str:
    return f"{case.kind}-{case.name}-{case.route.replace(' ', '')}"


def _param(case: Case) -> Any:
    owner = PENDING.get(_case_id(case))
    marks = [pytest.mark.xfail(strict=True, reason=f"owner: {owner}")] if owner else []
    return pytest.param(case, id=_case_id(case), marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CORPUS])
def test_bad_input(case: Case, world: World, tmp_path: Path, guarded: Path, capsys, predictor):
    case.run(world, tmp_path, guarded, capsys, predictor)


def test_the_corpus_covers_every_class_and_command():
    kinds = {c.kind for c in CORPUS}
    routes = {c.route.split()[0] for c in CORPUS}
    kinds_expected = {"image", "mask", "split", "config", "checkpoint", "video", "output"}
    assert kinds == kinds_expected | {"run", "size"}
    assert {"predict", "evaluate", "train", "export", "check-dataset", "class-weights"} <= routes
    assert "report" in routes
    assert {"predict-api", "dataset-api", "load_model", "Predictor", "load_config"} <= routes
    assert "video-api" in routes
    assert len({_case_id(c) for c in CORPUS}) == len(CORPUS) >= 150


def test_the_malicious_pickle_does_run_code_when_loaded_unsafely(tmp_path):
    """The payload is real: plain pickle creates the marker (so its absence above means safety)."""
    marker = tmp_path / "MARKER"
    pickle.loads(pickle.dumps(Evil(marker)))
    assert marker.exists()


def test_the_huge_header_is_what_it_claims():
    with Image.open(io.BytesIO(_png_header_only(8000, 6000))) as img:
        assert img.size == (8000, 6000)


# ---------------------------------------------------------------- predict: no output replaces
# an input, a ground-truth mask or a file that lrnet did not write (issue 13, data loss)


def _predict(world: World, *args: str) -> int:
    return cli(["predict", str(world.ckpt), *args, "--device", "cpu"])


def _photo(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_noise(40, 48, seed)).save(path)
    return path


def test_predict_into_the_input_folder_never_overwrites_an_input_named_like_an_output(
    world: World, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "photos"
    _photo(folder / "street.png", 1)
    _photo(folder / "street_color.png", 2)  # the user's own photo, not an output
    before = snapshot(folder)
    assert _predict(world, str(folder), "--out", str(folder)) == 2
    err = capsys.readouterr().err
    assert "street_color.png" in err and "Traceback" not in err
    assert snapshot(folder) == before  # refused before anything was written


def test_predict_never_overwrites_an_input_given_by_name(
    world: World, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _photo(tmp_path / "a.png", 1)
    _photo(tmp_path / "a_label.png", 2)
    before = snapshot(tmp_path)
    assert _predict(world, "a.png", "a_label.png", "--out", ".") == 2
    assert "a_label.png" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_predict_never_overwrites_the_ground_truth(world: World, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    image = _photo(tmp_path / "x.png", 1)
    gt = out / "x_label.png"
    gt.parent.mkdir()
    Image.fromarray(np.zeros((40, 48), np.uint8)).save(gt)
    before = snapshot(tmp_path)
    assert _predict(world, str(image), "--gt", str(gt), "--out", str(out)) == 2
    assert "x_label.png" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_predict_never_replaces_a_file_it_did_not_write(
    world: World, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    image = _photo(tmp_path / "scene.png", 1)
    (out / "scene_overlay.png").parent.mkdir()
    (out / "scene_overlay.png").write_bytes(b"the user's drawing")
    assert _predict(world, str(image), "--out", str(out)) == 2
    assert "scene_overlay.png" in capsys.readouterr().err
    assert (out / "scene_overlay.png").read_bytes() == b"the user's drawing"
    assert sorted(p.name for p in out.iterdir()) == ["scene_overlay.png"]


def test_predict_replaces_its_own_outputs_on_a_rerun(world: World, tmp_path: Path) -> None:
    image = _photo(tmp_path / "scene.png", 1)
    for _ in range(2):
        assert _predict(world, str(tmp_path), "--out", str(tmp_path)) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["scene.png", *(f"scene{s}" for s in OUTPUT_SUFFIXES)])
    assert Image.open(image).size == (48, 40)


def test_predict_with_out_an_existing_file_is_a_one_line_error(
    world: World, tmp_path: Path, capsys
) -> None:
    image = _photo(tmp_path / "scene.png", 1)
    (tmp_path / "out").write_text("a file")
    assert _predict(world, str(image), "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "out").read_text() == "a file"


@pytest.mark.parametrize("stem", ["../x", "ABSOLUTE/x", "a/b", "", ".", "..", "a\\b"])
def test_save_writes_inside_the_output_folder_only(
    predictor: Any, tmp_path: Path, stem: str
) -> None:
    stem = stem.replace("ABSOLUTE", str(tmp_path / "elsewhere"))  # inside tmp_path, if it fails
    prediction = predictor.predict(torch.rand(3, 32, 32))
    out = tmp_path / "nested" / "out"
    with pytest.raises(LrnetError, match="plain file name"):
        predictor.save(prediction, out, stem)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # nothing, inside or beside


def test_an_output_killed_mid_write_leaves_no_partial_file(
    predictor: Any, tmp_path: Path, monkeypatch
) -> None:
    prediction = predictor.predict(torch.rand(3, 32, 32))
    real_save = Image.Image.save
    calls = 0

    def dies_half_way(self: Image.Image, fp: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # the colour mask: half a file, then the disk is full
            if isinstance(fp, (str, Path)):
                Path(fp).write_bytes(b"\x89PNG half")
            else:
                fp.write(b"\x89PNG half")
            raise OSError(28, "No space left on device")
        real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", dies_half_way)
    with pytest.raises((LrnetError, OSError)):
        predictor.save(prediction, tmp_path, "x")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["x_label.png"], names  # complete, and nothing of the one that failed


# ---------------------------------------------------------------- threads (issue 21)


@pytest.mark.parametrize("threads", [0, -1, 100_000, True, 2.5])
def test_predictor_threads_out_of_range_is_one_line(world: World, threads: Any, capsys) -> None:
    from lrnet.inference.predictor import Predictor

    result = run_api(
        lambda: Predictor.from_pretrained(world.ckpt, backend="torch", threads=threads), capsys
    )
    assert_api_error(result, ("threads", str(threads)))


@pytest.mark.parametrize("threads", ["0", "-3", "100000"])
def test_predict_threads_out_of_range_is_one_line(
    world: World, tmp_path: Path, threads: str, capsys
) -> None:
    image = _photo(tmp_path / "photo.png", 1)
    argv = ["predict", str(world.ckpt), str(image), "--out", str(tmp_path / "out")]
    result = run_cli([*argv, "--backend", "torch", "--threads", threads], capsys)
    assert_one_line_error(result, "predict", ("--threads", threads))
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- frame rates (issue 21)


@pytest.mark.parametrize("fps", ["1e-300", "1e300", "0", "-1", "nan", "inf", "fast"])
def test_predict_fps_out_of_range_is_one_line(
    world: World, tmp_path: Path, fps: str, capsys
) -> None:
    """--fps 1e-300 rounded to a rate of 0 (ZeroDivisionError), 1e300 overflowed (OverflowError)."""
    frames = tmp_path / "frames"
    for index in range(2):
        _photo(frames / f"{index:03d}.png", index)
    argv = ["predict", str(world.ckpt), str(frames), "--out", str(tmp_path / "out")]
    result = run_cli([*argv, "--fps", fps, "--backend", "torch", "--device", "cpu"], capsys)
    assert_one_line_error(result, "predict", ("--fps", fps))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("rate", "kind"),
    [
        (1e-300, ValueError),  # a rate of 0 once rounded: ZeroDivisionError
        (1e300, ValueError),  # overflowed the encoder's time base
        pytest.param(10**400, ValueError, id="10**400"),  # too big for a float: OverflowError
        (0, ValueError),
        (-1, ValueError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        ("30", TypeError),
        (True, TypeError),
    ],
)
def test_open_frames_rate_out_of_range_is_a_value_error(
    tmp_path: Path, rate: Any, kind: type
) -> None:
    """The Python API's frame rate follows --fps's rule (0.01 to 1000 frames/s)."""
    from fractions import Fraction

    from lrnet.inference.video import open_frames

    frames = tmp_path / "frames"
    for index in range(2):
        _photo(frames / f"{index:03d}.png", index)
    with pytest.raises(kind, match=r"^rate\b") as caught:
        open_frames(frames, rate)
    assert isinstance(caught.value, LrnetError) and "\n" not in str(caught.value)
    for good in (0.01, 1000, Fraction(30000, 1001)):
        assert [f.pts for f in open_frames(frames, good)] == [0, 1]


# ---------------------------------------------------------------- Python API values (issue 21)


@pytest.fixture(scope="module")
def network(world: World) -> torch.nn.Module:
    from lrnet.pretrained import load_model

    return load_model(world.ckpt).model


class _Unrun:
    """A backend that is never run: what the constructor's checks need."""

    name, precision = "onnxruntime", "fp32"

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        raise AssertionError("not run")


@pytest.mark.parametrize(
    ("keyword", "value", "kind"),
    [
        ("eval_size", (-1, 64), ValueError),
        ("eval_size", (0, 0), ValueError),
        ("eval_size", (64,), ValueError),
        ("eval_size", (64, 96, 3), ValueError),
        ("eval_size", 64, TypeError),
        ("eval_size", (64.5, 96), TypeError),
        ("num_classes", 2.5, TypeError),
        ("num_classes", True, TypeError),
        ("num_classes", 0, ValueError),
        ("num_classes", -2, ValueError),
        ("palette", [(1, 2)], ValueError),
        ("palette", [(300, 0, 0)], ValueError),
        ("palette", [(-1, 0, 0)], ValueError),
        ("palette", 5, TypeError),
        ("batch_size", -3, ValueError),
        ("batch_size", 0, ValueError),
        ("batch_size", 2.5, TypeError),
        ("classes", "road", TypeError),
    ],
)
def test_predictor_values_are_checked_naming_the_argument(
    keyword: str, value: Any, kind: type
) -> None:
    """Each was taken as it was: a negative size, 2.5 classes or colour 300 failed later, deep
    in numpy or Pillow, or drew nonsense."""
    from lrnet.inference.predictor import Predictor

    arguments = {"num_classes": 3, keyword: value}
    with pytest.raises(kind, match=rf"^{keyword}\b") as caught:
        Predictor(_Unrun(), **arguments)  # type: ignore[arg-type]
    assert isinstance(caught.value, LrnetError) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("threads", "kind"),
    [(0, ValueError), (-1, ValueError), (100_000, ValueError), (True, TypeError), (2.5, TypeError)],
)
def test_predictor_threads_are_a_value_or_type_error(world: World, threads: Any, kind: type):
    from lrnet.inference.predictor import Predictor

    with pytest.raises(kind, match=r"^threads\b"):
        Predictor.from_pretrained(world.ckpt, threads=threads)


_GPU = torch.cuda.is_available()
_MPS = torch.backends.mps.is_available()


@pytest.mark.parametrize(
    "device",
    [
        pytest.param("cuda", marks=pytest.mark.skipif(_GPU, reason="a CUDA GPU is here")),
        pytest.param("cuda:0", marks=pytest.mark.skipif(_GPU, reason="a CUDA GPU is here")),
        "cuda:99",
        "cuda:-1",
        pytest.param("mps", marks=pytest.mark.skipif(_MPS, reason="an Apple GPU is here")),
        "meta",
        "npu",
        "xla",
        "garbage",
        "",
        "cpu:x",
        3,
        None,
    ],
)
@pytest.mark.parametrize("route", ["from_pretrained", "constructor"])
def test_a_device_that_cannot_run_here_is_a_value_error(
    world: World, network: torch.nn.Module, device: Any, route: str
) -> None:
    """Device 'cuda' without a GPU, 'npu' or '' ended in torch's RuntimeError; 'meta' was taken,
    and every prediction then failed."""
    from lrnet.inference.predictor import Predictor

    with pytest.raises((ValueError, TypeError)) as caught:
        if route == "from_pretrained":
            Predictor.from_pretrained(world.ckpt, device=device)
        else:
            Predictor(network, num_classes=3, device=device)
    message = str(caught.value)
    assert isinstance(caught.value, LrnetError), repr(caught.value)
    assert message.startswith("device") and "'cpu'" in message and "\n" not in message, message


def test_the_devices_lrnet_runs_on_are_taken(world: World, network: torch.nn.Module) -> None:
    from lrnet.inference.predictor import Predictor

    for device in ("cpu", "cpu:0", torch.device("cpu")):
        assert Predictor(network, num_classes=3, device=device).device.startswith("cpu")
    assert Predictor.from_pretrained(world.ckpt, backend="torch", device="cpu").device == "cpu"


# ---------------------------------------------------------------- links (issue 21)


def test_predict_names_a_links_outputs_after_the_link(world: World, tmp_path: Path) -> None:
    """A link to an image gets <link>_label.png ...: the outputs were named after the file it
    points to (a cache's hashed name), and the link's own were never written. A folder that
    holds a file and a link to it labels the file once, under its own name."""
    blob = tmp_path / "cache" / "3f9a2c"  # no suffix, as in a content-addressed store
    blob.parent.mkdir()
    blob.write_bytes(_png_bytes(_noise(40, 48, 1)))
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "street.png").symlink_to(blob)
    out = tmp_path / "out"
    assert _predict(world, str(photos / "street.png"), "--out", str(out), "--backend", "torch") == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"street{s}" for s in OUTPUT_SUFFIXES)
    _photo(photos / "road.png", 2)
    (photos / "alias.png").symlink_to(photos / "road.png")
    both = tmp_path / "both"
    assert _predict(world, str(photos / "alias.png"), str(photos / "road.png"), "--out", str(both),
                    "--backend", "torch") == 0  # fmt: skip
    assert sorted(p.name for p in both.iterdir()) == sorted(f"road{s}" for s in OUTPUT_SUFFIXES)


# ---------------------------------------------------------------- colour masks, end to end


def test_a_colour_mask_dataset_trains_and_predicts_in_its_own_colours(
    world: World, tmp_path: Path
) -> None:
    """Masks as annotation tools export them: the checkpoint keeps the dataset's colours, and
    predict's colour mask reads back (through the same loader) to its label map."""
    from lrnet.data import FolderDataset

    data = _dataset_copy(world, tmp_path)
    colours = np.array(SYNTHETIC_PALETTE, np.uint8)
    for mask in (data / "masks").glob("*.png"):
        mask.write_bytes(_png_bytes(colours[np.asarray(Image.open(mask))]))
    spec = yaml.safe_load((data / "classes.yaml").read_text())
    (data / "classes.yaml").write_text(yaml.safe_dump({**spec, "void_colors": [[0, 0, 0]]}))
    run = tmp_path / "run"
    assert cli(["train", str(world.config), f"data.root={data}", f"run.out_dir={run}"]) == 0
    state = torch.load(run / "last.pt", weights_only=True)
    assert [tuple(c) for c in state["palette"]] == SYNTHETIC_PALETTE
    image, out = data / "images" / "val_00000.png", tmp_path / "predicted"
    argv = ["predict", str(run / "last.pt"), str(image), "--out", str(out), "--backend", "torch"]
    assert cli([*argv, "--device", "cpu"]) == 0
    colour = np.asarray(Image.open(out / "val_00000_color.png").convert("RGB"))
    labels = np.asarray(Image.open(out / "val_00000_label.png"))
    np.testing.assert_array_equal(FolderDataset(data, "val").colors_to_values(colour), labels)
