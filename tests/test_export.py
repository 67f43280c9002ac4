"""ONNX export: onnxruntime against PyTorch at several input sizes, final and all stages, SegNet."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lrnet import LrnetError, checkpoint
from lrnet.cli import main
from lrnet.config import load_config
from lrnet.export import OnnxParity, export_onnx, verify_onnx
from lrnet.models import build_model

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
    for option in ("--onnx", "--all-stages", "--height", "--width", "--opset", "--verify"):
        assert option in out
