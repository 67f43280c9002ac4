"""Backends: every backend x precision against fp32 PyTorch, auto's choice, bf16, evaluate."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lrnet import LrnetError, checkpoint, pretrained
from lrnet.cli import main
from lrnet.config import load_config
from lrnet.inference.backends import SUPPORTED, cpu_has_native_bf16, is_available, stage_module
from lrnet.inference.predictor import Predictor
from lrnet.models import build_model

pytest.importorskip("onnxruntime")

NUM_CLASSES = 3
SIZE = (64, 64)  # the toy models' run size
STEPS = 50  # training steps of the toy model: enough for > 97% pixel accuracy on its scenes
# Mean colour of each class in the toy scenes; the noise is small beside their distances.
COLOURS = np.array([[0.15, 0.15, 0.15], [0.85, 0.2, 0.2], [0.2, 0.3, 0.9]], np.float32)


def toy_scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A ``(H, W, 3)`` uint8 image of rectangles coloured by class, and its ``(H, W)`` labels."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(SIZE, np.int64)
    for _ in range(4):
        top, left = rng.integers(0, 48, 2)
        height, width = rng.integers(8, 24, 2)
        labels[top : top + height, left : left + width] = rng.integers(1, NUM_CLASSES)
    noise = rng.normal(0.0, 0.04, (*SIZE, 3)).astype(np.float32)
    image = np.clip(COLOURS[labels] + noise, 0.0, 1.0)
    return (image * 255).round().astype(np.uint8), labels


def boundary_fraction(labels: np.ndarray) -> float:
    """Fraction of pixels with another class among their 8 neighbours."""
    padded = np.pad(labels, 1, mode="edge")
    other = np.zeros(labels.shape, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            shifted = padded[1 + dy : 1 + dy + labels.shape[0], 1 + dx : 1 + dx + labels.shape[1]]
            other |= shifted != labels
    return float(other.mean())


def _trained_model() -> torch.nn.Module:
    """A width-0.125 LRN trained for a few seconds on toy scenes (loss on every stage)."""
    torch.manual_seed(0)
    model = build_model("lrn", NUM_CLASSES, width=0.125)
    scenes = [toy_scene(seed) for seed in range(16)]
    images = torch.stack([torch.from_numpy(i).permute(2, 0, 1).float() / 255 for i, _ in scenes])
    targets = torch.stack([torch.from_numpy(t) for _, t in scenes])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for step in range(STEPS):
        batch = slice(4 * (step % 4), 4 * (step % 4) + 4)
        stages = model(images[batch])
        loss = sum(
            F.cross_entropy(
                s, F.interpolate(targets[batch, None].float(), s.shape[-2:])[:, 0].long()
            )
            for s in stages
        )
        optimiser.zero_grad()
        loss.backward()  # type: ignore[union-attr]
        optimiser.step()
    return model.eval()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The trained toy model as a checkpoint, its training images as PNGs, and val scenes."""
    root = tmp_path_factory.mktemp("toy")
    overrides = [
        f"model.num_classes={NUM_CLASSES}",
        "model.width=0.125",
        "data.dataset=folder",
        f"data.eval_size=[{SIZE[0]},{SIZE[1]}]",
    ]
    config = load_config(None, overrides)
    ckpt = root / "toy.pt"
    model = _trained_model()
    classes = ["background", "red", "blue"]
    palette = [(40, 40, 40), (220, 50, 50), (50, 80, 230)]
    checkpoint.save_checkpoint(
        ckpt, checkpoint.training_state(model, config, classes=classes, palette=palette)
    )
    train = root / "train"
    train.mkdir()
    for seed in range(8):
        Image.fromarray(toy_scene(seed)[0]).save(train / f"{seed:02d}.png")
    val = [toy_scene(100 + seed) for seed in range(4)]
    return {"ckpt": ckpt, "train": train, "val": val, "model": model}


def _labels(predictor: Predictor, images: list[np.ndarray]) -> np.ndarray:
    return np.stack([p.labels for p in predictor.predict(images)])


def test_the_toy_model_is_trained(trained: dict) -> None:
    # The int8 / bf16 bounds below rest on this: confident everywhere but at class boundaries.
    reference = Predictor.from_pretrained(trained["ckpt"], backend="torch", precision="fp32")
    images, truth = zip(*trained["val"], strict=True)
    accuracy = (_labels(reference, list(images)) == np.stack(truth)).mean()
    assert accuracy > 0.97


@pytest.mark.parametrize(
    ("backend", "precision"),
    [(b, p) for b, ps in SUPPORTED.items() for p in ps if (b, p) != ("torch", "fp32")],
)
def test_every_backend_agrees_with_torch_fp32(trained: dict, backend: str, precision: str) -> None:
    if not is_available(backend):
        pytest.skip(f"{backend} is not installed")
    reference = Predictor.from_pretrained(trained["ckpt"], backend="torch", precision="fp32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # emulated bf16 says so; measured here all the same
        predictor = Predictor.from_pretrained(
            trained["ckpt"], backend=backend, precision=precision, calibrate=trained["train"]
        )
    assert predictor.runtime == f"{backend} {precision}"
    images, truth = zip(*trained["val"], strict=True)
    expected, got = _labels(reference, list(images)), _labels(predictor, list(images))
    agreement = (expected == got).mean()
    if precision == "fp32":
        # Same arithmetic up to float rounding (~1e-6 on the logits): only exact ties could flip.
        assert agreement >= 0.9995
    else:
        # int8 rounds every activation to 1/255 of its range and bf16 keeps 8 bits of mantissa:
        # the logits move by a little, which flips a label only where fp32's two best classes
        # nearly tie. In a model this well trained (test above) such pixels lie on class
        # boundaries, so labels may differ at most on the pixels next to a boundary.
        allowed = np.mean([boundary_fraction(t) for t in truth])
        assert 0.0 < allowed < 0.2
        assert agreement >= 1.0 - allowed
    # every stage comes back, coarse to fine, at its own resolution
    stages = predictor.predict(images[0]).stage_labels
    assert [tuple(s.shape) for s in stages] == [(2, 2), (4, 4), (8, 8), (16, 16), (32, 32), SIZE]


def test_int8_graph_is_quantised(trained: dict) -> None:
    onnx = pytest.importorskip("onnx")
    from lrnet.inference.graphs import cached_int8

    loaded = pretrained.load_model(trained["ckpt"])
    graph = onnx.load(str(cached_int8(loaded, trained["train"]))).graph
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    per_channel = [init for init in graph.initializer if init.name.endswith("_scale") and init.dims]
    assert per_channel  # weight scales are vectors (one per output channel), not scalars


def test_auto_takes_onnxruntime_fp32_for_a_model_without_measurements(
    trained: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty cache: no int8 graph, so no measured agreement (with one, auto may run int8: see
    # test_export.py's test_auto_runs_a_checkpoints_int8_graph_only_when_its_labels_agree).
    monkeypatch.setenv("LRNET_HOME", str(tmp_path / "empty_home"))
    predictor = Predictor.from_pretrained(trained["ckpt"])
    assert predictor.runtime == "onnxruntime fp32"
    assert "auto chose onnxruntime fp32: the fastest exact" in predictor.notes


def test_auto_falls_back_from_bf16_without_native_support(
    trained: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrnet.inference import auto, backends

    monkeypatch.setenv("LRNET_HOME", str(tmp_path / "empty_home"))  # no int8 graph to prefer
    # A model whose measurements put bf16 first, on a CPU with and without native bf16.
    monkeypatch.setattr(auto, "DEFAULT_FAST_PATHS", (("torch", "bf16"), ("torch", "fp32")))
    monkeypatch.setattr(backends, "has_native_bf16", lambda device: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback is a note, not a warning or an error
        fallback = Predictor.from_pretrained(trained["ckpt"])
    assert fallback.runtime == "torch fp32"
    assert any("bf16 skipped" in note and "native bf16" in note for note in fallback.notes)
    monkeypatch.setattr(backends, "has_native_bf16", lambda device: True)
    assert Predictor.from_pretrained(trained["ckpt"]).runtime == "torch bf16"


def test_explicit_bf16_without_native_support_warns(
    trained: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrnet.inference import backends

    monkeypatch.setattr(backends, "has_native_bf16", lambda device: False)
    with pytest.warns(UserWarning, match="emulated"):
        predictor = Predictor.from_pretrained(trained["ckpt"], backend="torch", precision="bf16")
    assert predictor.runtime == "torch bf16"


def test_native_bf16_probe_matches_the_cpu_flags() -> None:
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    if not flags:
        pytest.skip("no /proc/cpuinfo")
    assert cpu_has_native_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)


@pytest.mark.parametrize(
    ("backend", "precision", "message"),
    [
        ("torch", "int8", "the torch backend runs fp32 or bf16"),
        ("onnxruntime", "bf16", "runs fp32 or int8"),
        ("tensorrt", "fp32", "choose auto or one of"),
        ("auto", "fp8", "choose auto or one of"),
    ],
)
def test_impossible_settings_are_named(
    trained: dict, backend: str, precision: str, message: str
) -> None:
    with pytest.raises(LrnetError, match=message):
        Predictor.from_pretrained(trained["ckpt"], backend=backend, precision=precision)


def test_int8_without_a_graph_says_how_to_make_one(trained: dict, tmp_path: Path) -> None:
    config = load_config(None, [f"model.num_classes={NUM_CLASSES}", "model.width=0.125"])
    fresh = tmp_path / "fresh.pt"
    checkpoint.save_checkpoint(fresh, checkpoint.training_state(_random_model(), config))
    with pytest.raises(LrnetError, match="--int8 --calibrate ROOT"):
        Predictor.from_pretrained(fresh, precision="int8")


def _random_model() -> torch.nn.Module:
    torch.manual_seed(1)
    return build_model("lrn", NUM_CLASSES, width=0.125).eval()


def test_stage_module_gives_every_stage_for_evaluate(trained: dict) -> None:
    predictor = Predictor.from_pretrained(trained["ckpt"], backend="onnxruntime", precision="fp32")
    images = torch.rand(2, 3, 64, 96)
    stages = stage_module(predictor.backend)(images)
    with torch.no_grad():
        expected = trained["model"](images)
    assert len(stages) == len(expected) == 6
    for got, want in zip(stages, expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_evaluate_and_predict_take_the_backend_flags(
    trained: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a folder dataset of toy scenes (images/<split>/, masks/<split>/, classes.yaml)
    root = tmp_path / "data"
    for split, seeds in (("train", range(2)), ("val", range(100, 103))):
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        for seed in seeds:
            image, labels = toy_scene(seed)
            Image.fromarray(image).save(root / "images" / split / f"{seed}.png")
            Image.fromarray(labels.astype(np.uint8)).save(root / "masks" / split / f"{seed}.png")
    (root / "classes.yaml").write_text(
        "names: [background, red, blue]\npalette: [[40, 40, 40], [220, 50, 50], [50, 80, 230]]\n"
    )
    scores = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / f"{backend}.json"
        args = ["evaluate", str(trained["ckpt"]), "--data", str(root), "--num-workers", "0"]
        assert main([*args, "--backend", backend, "--precision", "fp32", "--out", str(out)]) == 0
        assert f"running {backend}" in capsys.readouterr().err
        result = json.loads(out.read_text())
        assert result["backend"] == f"{backend} fp32"
        scores[backend] = [s["miou"] for s in result["stages"]]
    assert len(scores["onnxruntime"]) == 6  # every stage is scored on the ONNX backend too
    np.testing.assert_allclose(scores["onnxruntime"], scores["torch"], atol=1e-3)
    image = tmp_path / "scene.png"
    Image.fromarray(toy_scene(7)[0]).save(image)
    argv = ["predict", str(trained["ckpt"]), str(image), "--out", str(tmp_path / "out")]
    assert main([*argv, "--backend", "onnxruntime", "--precision", "fp32"]) == 0
    assert "running onnxruntime" in capsys.readouterr().err
    assert (tmp_path / "out" / "scene_label.png").is_file()


def test_benchmark_fast_paths_keep_the_accurate_pairs_fastest_first() -> None:
    inference = pytest.importorskip("bench.inference")

    def row(ms: float, miou: float, emulated: bool = False) -> dict:
        return {"timing": {"run_b1": {"median": ms / 1000}}, "miou": miou, "emulated": emulated}

    rows = {
        "torch fp32": row(100, 60.0),
        "torch bf16": row(20, 59.9, emulated=True),  # emulated here: never auto's choice
        "onnxruntime fp32": row(80, 60.0),
        "onnxruntime int8": row(40, 59.8),  # within 0.3 points
        "openvino int8": row(30, 59.6),  # 0.4 points lower: not within the tolerance
    }
    assert inference.fast_paths(rows, 0.3) == [
        ("onnxruntime", "int8"),
        ("onnxruntime", "fp32"),
        ("torch", "fp32"),
    ]
