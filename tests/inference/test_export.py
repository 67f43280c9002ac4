"""ONNX export: onnxruntime against PyTorch at several sizes, all stages, SegNet, metadata, the
deploy script of docs/deploy.md, and the cached int8 graph."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lrnet import LrnetError, checkpoint, pretrained
from lrnet.cli import main
from lrnet.config import load_config
from lrnet.inference import graphs
from lrnet.inference.export import OnnxParity, export_onnx, read_metadata, verify_onnx
from lrnet.models import build_model
from lrnet.sources import open_model

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

NUM_CLASSES = 5


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(name, NUM_CLASSES, width=0.125)
    # Non-trivial BatchNorm statistics, so that folding them into the convs is exercised.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    return model.eval()


def _run(path: Path, images: torch.Tensor) -> list[torch.Tensor]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [torch.from_numpy(o) for o in session.run(None, {"images": images.numpy()})]


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


def calibration_folder(folder: Path, count: int, size: tuple[int, int]) -> Path:
    """``count`` random RGB images of ``size`` ``(h, w)`` as PNGs in ``folder``, to calibrate on."""
    folder.mkdir()
    for seed in range(count):
        pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{seed}.png")
    return folder


def test_lrn_final_stage_one_file_many_sizes(tmp_path: Path) -> None:
    model = _model("lrn")
    path = export_onnx(model, tmp_path / "lrn.onnx", example_size=(64, 96))
    graph = onnx.load(str(path)).graph
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    assert [o.name for o in graph.output] == ["logits"]
    assert model.training is False  # left as it was
    # sizes other than the one traced, odd ones and a batch of two: height and width are dynamic
    for shape in [(1, 3, 64, 96), (2, 3, 77, 45), (1, 3, 33, 129)]:
        images = torch.rand(*shape)
        (logits,) = _run(path, images)
        with torch.no_grad():
            expected = model(images)[-1]
        assert logits.shape == (shape[0], NUM_CLASSES, *shape[2:])
        assert expected.abs().max() > 1e-2  # not all zero: the comparison means something
        _close(logits, expected)
    # verify_onnx passes the model it came from and catches another one
    images = torch.rand(1, 3, 48, 40)
    assert verify_onnx(path, model, images).ok
    other = build_model("lrn", NUM_CLASSES, width=0.125).eval()
    parity = verify_onnx(path, other, images)
    assert not parity.ok and parity.outlier_fraction > 0.5


def test_parity_tolerates_only_isolated_pixels() -> None:
    assert OnnxParity(1e-6, 0.0, 1.0).ok
    assert OnnxParity(0.02, 0.0002, 1.0).ok  # a max-unpool tie moved a few values
    assert not OnnxParity(0.02, 0.05, 1.0).ok
    assert not OnnxParity(0.02, 0.0002, 0.99).ok


def test_cli_all_stages_with_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _model("lrn")
    config = load_config(None, [f"model.num_classes={NUM_CLASSES}", "model.width=0.125"])
    ckpt = tmp_path / "model.pt"
    checkpoint.save_checkpoint(ckpt, checkpoint.training_state(model, config))
    out = tmp_path / "all.onnx"
    args = ["export", str(ckpt), "--onnx", str(out), "--all-stages", "--height", "64"]
    assert main([*args, "--width", "64", "--verify"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("max abs diff") == 2
    images = torch.rand(2, 3, 70, 50)
    outputs = _run(out, images)
    with torch.no_grad():
        expected = model(images)
    assert len(outputs) == len(expected) == 6
    assert [tuple(o.shape[-2:]) for o in outputs] == [
        (3, 2),
        (5, 4),
        (9, 7),
        (18, 13),
        (35, 25),
        (70, 50),
    ]
    for got, want in zip(outputs, expected, strict=True):
        _close(got, want)


def test_segnet_max_unpool_exports(tmp_path: Path) -> None:
    model = _model("segnet")
    path = export_onnx(model, tmp_path / "segnet.onnx", example_size=(64, 64))
    for shape in [(1, 3, 64, 64), (2, 3, 45, 83)]:
        images = torch.rand(*shape)
        (logits,) = _run(path, images)
        with torch.no_grad():
            expected = model(images)[-1]
        assert expected.abs().max() > 1e-2
        _close(logits, expected)


def test_export_refuses_tiny_example_size(tmp_path: Path) -> None:
    with pytest.raises(LrnetError, match="under 32"):
        export_onnx(_model("lrn"), tmp_path / "x.onnx", example_size=(16, 64))


def test_export_help_lists_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    options = ("--onnx", "--all-stages", "--height", "--width", "--opset", "--verify", "--int8")
    for option in (*options, "--calibrate", "--calibration-images"):
        assert option in out


CLASSES = ["sky", "road", "car", "tree", "person"]
PALETTE = [(70, 130, 180), (128, 64, 128), (0, 0, 142), (107, 142, 35), (220, 20, 60)]
DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint with classes, a palette and a run size (64 x 96)."""
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    overrides = [f"model.num_classes={NUM_CLASSES}", "model.width=0.125", "data.eval_size=[64,96]"]
    config = load_config(None, overrides)
    state = checkpoint.training_state(_model("lrn"), config, classes=CLASSES, palette=PALETTE)
    checkpoint.save_checkpoint(path, state)
    return path


@pytest.fixture(scope="module")
def exported(ckpt: Path) -> Path:
    """``lrnet export ckpt --onnx model.onnx`` (the final stage only, with metadata)."""
    out = ckpt.parent / "model.onnx"
    assert main(["export", str(ckpt), "--onnx", str(out)]) == 0
    return out


def test_exported_file_carries_what_a_user_needs(exported: Path) -> None:
    out = exported
    meta = read_metadata(out)
    assert json.loads(meta["classes"]) == CLASSES
    assert [tuple(c) for c in json.loads(meta["palette"])] == PALETTE
    assert json.loads(meta["run_size"]) == [64, 96]
    assert "float32 RGB in [0, 1]" in meta["input"] and "antialias" in meta["input"]
    assert meta["precision"] == "fp32" and "final stage" in meta["outputs"]
    assert [o.name for o in onnx.load(str(out)).graph.output] == ["logits"]
    assert not list(out.parent.glob(".*"))  # no temporary file left beside it


def _deploy_script() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DEPLOY.read_text(), flags=re.DOTALL)
    (script,) = [b for b in blocks if "onnxruntime" in b]
    assert "lrnet" not in script and "torch" not in script  # plain onnxruntime, as documented
    return script


@pytest.mark.parametrize("size", [(64, 96), (45, 120), (100, 37), (30, 40)])
def test_deploy_script_gives_the_labels_of_predict(
    ckpt: Path, exported: Path, tmp_path: Path, size: tuple[int, int]
) -> None:
    from lrnet.inference.predictor import Predictor

    out = exported
    pixels = np.random.default_rng(size[0]).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "image.png")
    script = tmp_path / "deploy.py"
    script.write_text(_deploy_script())
    command = [sys.executable, str(script), str(out), str(tmp_path / "image.png")]
    subprocess.run([*command, str(tmp_path / "labels.png")], check=True, timeout=120)
    labels = np.asarray(Image.open(tmp_path / "labels.png"))
    for backend in ("onnxruntime", "torch"):
        expected = Predictor.from_pretrained(ckpt, backend=backend, precision="fp32")
        want = expected.predict(tmp_path / "image.png").labels
        assert labels.shape == want.shape == size
        assert len(np.unique(want)) > 1  # not a constant map: the comparison means something
        # PIL's and torchvision's antialiased bilinear agree to ~1e-5, ONNX Runtime and PyTorch
        # to ~1e-6: a label can differ only where two logits tie to that precision.
        assert (labels == want).mean() > 0.999, backend


def test_int8_is_made_once_and_reused(ckpt: Path, tmp_path: Path) -> None:
    images = calibration_folder(tmp_path / "train", 3, (50, 70))
    args = ["export", str(ckpt), "--int8", "--calibrate", str(images)]
    before = graphs.calibration_runs
    assert main(args) == 0
    assert graphs.calibration_runs == before + 1
    loaded = pretrained.load_model(ckpt)
    path = graphs.cached_int8(loaded)
    stamp = path.stat().st_mtime_ns
    # the same calibration again: the cached graph, at once, untouched
    out = tmp_path / "copy.onnx"
    assert main([*args, "--onnx", str(out)]) == 0
    assert graphs.calibration_runs == before + 1
    assert path.stat().st_mtime_ns == stamp
    assert out.read_bytes() == path.read_bytes()
    meta = read_metadata(out)
    assert meta["precision"] == "int8"
    calibration = json.loads(meta["calibration"])
    assert calibration["images"] == 3 and calibration["dataset"] == "folder"
    assert calibration["scheme"] == graphs.INT8_SCHEME
    # what identifies the data, not where this machine keeps it
    assert str(tmp_path) not in meta["calibration"] and len(calibration["files_sha256"]) == 64
    assert json.loads(meta["classes"]) == CLASSES
    # Predictor finds it without being told where; another calibration makes a new one
    from lrnet.inference.predictor import Predictor

    assert Predictor.from_pretrained(ckpt, precision="int8").runtime == "onnxruntime int8"
    assert graphs.calibration_runs == before + 1
    assert main([*args, "--calibration-images", "2"]) == 0
    assert graphs.calibration_runs == before + 2


def test_int8_needs_calibration_images(ckpt: Path, tmp_path: Path, capsys) -> None:
    assert main(["export", str(ckpt), "--int8"]) == 2
    assert "--calibrate ROOT" in capsys.readouterr().err
    assert main(["export", str(ckpt), "--int8", "--calibrate", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["export", str(ckpt), "--int8", "--calibrate", str(tmp_path / "empty")]) == 2
    assert "holds no image" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags", [["--opset", "18"], ["--height", "64"], ["--width", "64"], ["--all-stages"]]
)
def test_int8_refuses_the_fp32_export_flags(
    ckpt: Path, tmp_path: Path, capsys, flags: list[str]
) -> None:
    """--opset, --height, --width and --all-stages shape the fp32 export: with --int8 they were
    taken and ignored; now refused by name before any work (no calibration, nothing written)."""
    (tmp_path / "images").mkdir()
    out = tmp_path / "m.onnx"
    args = ["export", str(ckpt), "--int8", "--calibrate", str(tmp_path / "images")]
    assert main([*args, "--onnx", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert f"{flags[0]} apply to the fp32 export, not to --int8" in err, err
    assert not out.exists() and err.count("\n") == 1


def test_calibrate_needs_int8(ckpt: Path, tmp_path: Path, capsys) -> None:
    assert main(["export", str(ckpt), "--calibrate", str(tmp_path)]) == 2
    assert "--calibrate applies to --int8" in capsys.readouterr().err


def test_cache_key_follows_the_weights(ckpt: Path) -> None:
    loaded = pretrained.load_model(ckpt)
    first = graphs.weights_fingerprint(loaded)
    assert graphs.weights_fingerprint(pretrained.load_model(ckpt)) == first  # stable across loads
    with torch.no_grad():
        next(loaded.model.parameters()).add_(1e-3)
    assert graphs.weights_fingerprint(loaded) != first


def test_a_shipped_int8_graph_is_used_only_for_its_own_weights(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrnet import zoo
    from lrnet.inference.predictor import Predictor

    images = calibration_folder(tmp_path / "train", 2, (64, 96))
    loaded = pretrained.load_model(ckpt)
    shipped = tmp_path / "weights"
    shipped.mkdir()
    made = graphs.cached_int8(loaded, images, images=2)
    (shipped / "tiny.int8.onnx").write_bytes(made.read_bytes())
    monkeypatch.setattr(zoo, "weights_dir", lambda: shipped)
    monkeypatch.setenv("LRNET_HOME", str(tmp_path / "fresh"))  # nothing cached here
    assert graphs.cached_int8(loaded) == shipped / "tiny.int8.onnx"
    before = graphs.calibration_runs
    assert Predictor.from_pretrained(ckpt, precision="int8").runtime.endswith(" int8")
    assert graphs.calibration_runs == before  # used as shipped, not recalibrated
    with torch.no_grad():  # other weights: the shipped graph is not theirs
        next(loaded.model.parameters()).add_(1e-3)
    with pytest.raises(LrnetError, match="no int8 version"):
        graphs.cached_int8(loaded)


def test_the_shipped_camvid_lite_int8_graph_fits_its_weights() -> None:
    from lrnet import zoo

    # It ships (auto's fast path for camvid-lite needs it): a missing file is a failure.
    assert (zoo.weights_dir() / "camvid-lite.int8.onnx").is_file()
    # Re-shipped weights need a new graph (lrnet export camvid-lite --int8 --calibrate CAMVID).
    path = graphs.packaged(open_model("camvid-lite"), "int8")
    assert path is not None and path.name == "camvid-lite.int8.onnx"
    assert read_metadata(path)["precision"] == "int8"


def test_an_unreadable_onnx_file_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "cut.int8.onnx"
    broken.write_bytes(b"\x08\x07\x12\xff\xff\xff not protobuf")
    with pytest.raises(LrnetError, match=r"cut\.int8\.onnx is not a readable ONNX file"):
        read_metadata(broken)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_a_backend_on_an_unreadable_graph_is_a_clear_error(tmp_path: Path, runtime: str) -> None:
    """ONNX Runtime's InvalidProtobuf, OpenVINO's C++ stack: one line naming the file now."""
    from lrnet.inference.backends import OnnxRuntimeBackend, OpenVinoBackend

    pytest.importorskip(runtime)
    runner = OnnxRuntimeBackend if runtime == "onnxruntime" else OpenVinoBackend
    broken = tmp_path / "cut.onnx"
    broken.write_bytes(b"\x08\x07\x12\xff\xff\xff not protobuf")
    with pytest.raises(LrnetError, match=r"cut\.onnx cannot be loaded by") as caught:
        runner(broken)
    assert "\n" not in str(caught.value)
    with pytest.raises(LrnetError, match=r"missing\.onnx is not a file"):
        runner(tmp_path / "missing.onnx")


def test_auto_runs_a_checkpoints_int8_graph_only_when_its_labels_agree(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrnet.inference import auto
    from lrnet.inference.predictor import Predictor

    monkeypatch.setenv("LRNET_HOME", str(tmp_path / "home"))
    images = calibration_folder(tmp_path / "train", 3, (64, 96))
    assert Predictor.from_pretrained(ckpt).runtime.endswith(" fp32")  # no int8 graph yet
    loaded = pretrained.load_model(ckpt)
    graphs.cached_int8(loaded, images, images=3)
    agreement = graphs.int8_record(loaded)["agreement"]
    assert 0.0 < agreement <= 1.0
    monkeypatch.setattr(auto, "AUTO_AGREEMENT", agreement)  # just good enough
    chosen = Predictor.from_pretrained(ckpt)
    assert chosen.runtime.endswith(" int8") and "agree with fp32" in chosen.notes[-1]
    monkeypatch.setattr(auto, "AUTO_AGREEMENT", agreement + 1e-6)  # just short of it
    assert Predictor.from_pretrained(ckpt).runtime.endswith(" fp32")


@pytest.mark.parametrize("opset", ["1", "99", "-1", "17"])
def test_an_opset_the_exporter_does_not_write_is_one_line_before_any_work(
    tmp_path: Path, capsys, opset: str
) -> None:
    """Issue 21: a traceback, then "wrote" an opset-18 file and exit 0."""
    from _helpers import write_tiny_checkpoint

    ckpt = write_tiny_checkpoint(tmp_path / "model.pt")
    out = tmp_path / "m.onnx"
    assert main(["export", str(ckpt), "--onnx", str(out), "--opset", opset]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lrnet export: error: --opset") and "\n" not in err, err
    assert not out.exists()


# ---------------------------------------------------------------- a damaged or unwritable cache


@pytest.mark.parametrize(("backend", "damage"), [("onnxruntime", "cut"), ("openvino", "garbage")])
def test_a_damaged_cached_graph_is_made_again(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, backend: str, damage: str
) -> None:
    """Issue 21: a cached fp32.onnx cut short (a full disk, an interrupted copy) or overwritten
    ended every later run in ONNX Runtime's InvalidProtobuf or OpenVINO's parse error."""
    from lrnet.inference.predictor import Predictor

    pytest.importorskip(backend)
    monkeypatch.setenv("LRNET_HOME", str(tmp_path / "home"))
    path = graphs.cached_onnx(open_model(ckpt))
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2] if damage == "cut" else b"\x08\x07\x12\xffgarbage")
    capsys.readouterr()
    predictor = Predictor.from_pretrained(ckpt, backend=backend, precision="fp32")
    assert predictor.runtime == f"{backend} fp32"
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if "damaged" in line]
    assert "Traceback" not in err and len(said) == 1 and str(path) in said[0], err
    assert read_metadata(path)["precision"] == "fp32"  # whole again, in its place


def test_a_cached_graph_cut_anywhere_is_seen_as_damaged(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrnet.inference import cache

    monkeypatch.setenv("LRNET_HOME", str(tmp_path / "home"))
    path = graphs.cached_onnx(open_model(ckpt))
    whole = path.read_bytes()
    assert cache.graph_problem(path) is None
    for end in [0, 1, 2, 9, 100, *range(1000, len(whole), len(whole) // 97), len(whole) - 1]:
        path.write_bytes(whole[:end])
        assert cache.graph_problem(path) is not None, end
    path.write_bytes(b"PK\x03\x04 a zip, say" * 50)
    assert cache.graph_problem(path) is not None


def test_a_damaged_int8_graph_or_record_is_made_again(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Issue 21: a cut int8.json ended in JSONDecodeError, a cut int8.onnx in InvalidProtobuf."""
    monkeypatch.setenv("LRNET_HOME", str(tmp_path / "home"))
    images = calibration_folder(tmp_path / "train", 2, (64, 96))
    loaded = open_model(ckpt)
    path = graphs.cached_int8(loaded, images, images=2)
    record, runs = path.with_name("int8.json"), graphs.calibration_runs
    for victim in (path, record):
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
        capsys.readouterr()
        assert graphs.cached_int8(loaded, images, images=2) == path
        runs += 1
        assert graphs.calibration_runs == runs  # calibrated again
        err = capsys.readouterr().err
        assert "Traceback" not in err and f"{victim} in the graph cache is damaged" in err, err
        assert read_metadata(path)["precision"] == "int8"
        assert (graphs.int8_record(loaded) or {}).get("images") == 2
    record.write_text('{"root": ')  # no calibration asked: the graph serves as it is
    assert graphs.cached_int8(loaded) == path and "damaged" in capsys.readouterr().err
    path.write_bytes(b"garbage")  # and cannot be made again without images: how to make it
    with pytest.raises(LrnetError, match="no int8 version of this model yet"):
        graphs.cached_int8(loaded)
    assert "damaged" in capsys.readouterr().err and not path.exists()


@pytest.mark.parametrize("kind", ["a file", "read-only"])
def test_an_unwritable_graph_cache_falls_back_to_a_temporary_folder(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, kind: str
) -> None:
    """An LRNET_HOME that cannot be written ended in 'cannot run onnxruntime fp32'."""
    from _helpers import read_only
    from lrnet.inference.predictor import Predictor

    home = tmp_path / "home"
    if kind == "a file":
        home.write_text("not a folder")
    else:
        home.mkdir()
        read_only(home, monkeypatch)
    monkeypatch.setenv("LRNET_HOME", str(home))
    capsys.readouterr()
    predictor = Predictor.from_pretrained(ckpt, backend="onnxruntime", precision="fp32")
    assert predictor.runtime == "onnxruntime fp32"
    said = [line for line in capsys.readouterr().err.splitlines() if "graph cache" in line]
    assert len(said) == 1 and str(home) in said[0] and "LRNET_HOME" in said[0], said
    graph = predictor.backend.path  # type: ignore[attr-defined]
    assert graph.is_file() and home not in graph.parents
    assert home.read_text() == "not a folder" if kind == "a file" else not list(home.iterdir())
    assert Predictor.from_pretrained(ckpt, backend="openvino", precision="fp32").runtime
    assert not [line for line in capsys.readouterr().err.splitlines() if "graph cache" in line]
