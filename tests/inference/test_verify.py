"""int8 that cannot saturate, and the check ``auto`` runs on the machine before an inexact path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _helpers import TINY_CLASSES, tiny_model, write_tiny_checkpoint
from lrnet import pretrained
from lrnet.inference import backends, export, graphs, verify
from lrnet.inference.backends import TorchBackend
from lrnet.inference.image import fit_size
from lrnet.inference.predictor import Predictor

RUN_SIZE = (64, 96)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LRNET_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _images(folder: Path, count: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for seed in range(count):
        pixels = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{seed}.png")
    return folder


class Shifted:
    """A backend that runs the reference but adds ``bias`` to one class's logits: a path that
    is fast and wrong, like saturated int8 turning sky into building."""

    name, precision = "onnxruntime", "int8"

    def __init__(self, reference: TorchBackend, target: int, bias: float):
        self.reference, self.target, self.bias = reference, target, bias

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        stages = [np.array(s) for s in self.reference.run(images)]
        for stage in stages:
            stage[:, self.target] += self.bias
        return stages


# ---- the int8 graph -------------------------------------------------------------------------


def test_the_shipped_int8_graph_cannot_saturate_without_vnni() -> None:
    """A property of the file, whatever CPU runs the test: in every convolution 255 times any two
    weights of an output channel fits int16 (VPMADDUBSW). The 8-bit graph shipped before had
    pairs of 254, so 64,770."""
    from lrnet import zoo

    shipped = sorted(zoo.weights_dir().glob("*.int8.onnx"))
    assert shipped, "no int8 graph ships in the package"
    for path in shipped:
        assert export.saturating_convs(path) == [], path.name


def test_8_bit_weights_are_found_and_7_bit_weights_pass(ckpt: Path, tmp_path: Path) -> None:
    loaded = pretrained.load_model(ckpt)
    fp32 = graphs.cached_onnx(loaded)
    rng = np.random.default_rng(0)
    image = lambda i: rng.random((1, 3, *RUN_SIZE), dtype=np.float32)  # noqa: E731
    eight = graphs.quantize_int8(fp32, tmp_path / "u8s8.onnx", 2, image, scheme="u8s8")
    seven = graphs.quantize_int8(fp32, tmp_path / "u8s7.onnx", 2, image, scheme="u8s7")
    risky = export.saturating_convs(eight)
    assert risky and all(worst > export.INT16_MAX for _, worst in risky)
    assert export.saturating_convs(seven) == []
    with pytest.raises(export.LrnetError, match="int8 scheme 'u8s9'"):
        graphs.quantize_int8(fp32, tmp_path / "x.onnx", 1, image, scheme="u8s9")


# ---- the check on this machine --------------------------------------------------------------


def test_a_path_equal_to_fp32_passes_and_its_verdict_is_cached(home: Path) -> None:
    reference = TorchBackend(tiny_model(), "fp32")
    before = verify.checks_run
    kwargs = {"identity": "same", "classes": TINY_CLASSES, "eval_size": RUN_SIZE}
    first = verify.verify(reference, reference, **kwargs)
    assert first.ok and first.agreement == 1.0 and not first.cached
    fitted = fit_size(360, 480, RUN_SIZE)  # the samples are 360x480: 64x85 inside 64x96
    assert first.pixels == len(verify.sample_paths()) * len(verify.VARIANTS) * fitted[0] * fitted[1]
    again = verify.verify(reference, reference, **kwargs)
    assert again.cached and again.ok and verify.checks_run == before + 1
    # another CPU (its kernel flags), another runtime or another graph: checked afresh
    verify.verify(reference, reference, **{**kwargs, "identity": "other graph"})
    assert verify.checks_run == before + 2


def test_a_path_that_turns_one_class_into_another_fails(home: Path) -> None:
    reference = TorchBackend(tiny_model(), "fp32")
    labels = verify.final_labels(reference, verify.check_images(), RUN_SIZE)
    common = int(np.bincount(np.concatenate([x.reshape(-1) for x in labels])).argmax())
    wrong = Shifted(reference, target=common, bias=-1e4)  # the commonest class never wins
    verdict = verify.verify(
        wrong, reference, identity="wrong", classes=TINY_CLASSES, eval_size=RUN_SIZE
    )
    assert not verdict.ok
    assert verdict.worst_class == TINY_CLASSES[common] and verdict.worst_loss == 1.0
    assert "loses 100.0% of its pixels" in verdict.describe()


def test_the_verdict_is_keyed_by_the_cpu_flags(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = TorchBackend(tiny_model(), "fp32")
    kwargs = {"identity": "g", "classes": TINY_CLASSES, "eval_size": RUN_SIZE}
    before = verify.checks_run
    monkeypatch.setattr(backends, "cpu_flags", lambda: ("avx2", "fma"))
    assert verify.verify(reference, reference, **kwargs).cpu == ("avx2", "fma")
    monkeypatch.setattr(backends, "cpu_flags", lambda: ("avx2", "avx512f", "avx512_vnni"))
    assert verify.verify(reference, reference, **kwargs).cpu == ("avx2", "avx512f", "avx512_vnni")
    assert verify.checks_run == before + 2


def test_a_damaged_verdict_is_measured_again(home: Path) -> None:
    reference = TorchBackend(tiny_model(), "fp32")
    kwargs = {"identity": "d", "classes": TINY_CLASSES, "eval_size": RUN_SIZE}
    verify.verify(reference, reference, **kwargs)
    for stored in verify.verdicts_dir().glob("*.json"):
        stored.write_text("{not json")
    before = verify.checks_run
    assert verify.verify(reference, reference, **kwargs).ok
    assert verify.checks_run == before + 1
    assert all(json.loads(p.read_text())["ok"] for p in verify.verdicts_dir().glob("*.json"))


def test_auto_falls_back_when_the_check_fails_and_says_why(
    ckpt: Path, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrnet.inference import auto

    loaded = pretrained.load_model(ckpt)
    graphs.cached_int8(loaded, _images(tmp_path / "train"), images=3)
    monkeypatch.setattr(auto, "AUTO_AGREEMENT", 0.0)  # the int8 graph is a candidate
    monkeypatch.setattr(verify, "MIN_AGREEMENT", 1.01)  # ... that no path can pass here
    chosen = Predictor.from_pretrained(ckpt)
    assert chosen.runtime == "onnxruntime fp32"
    skipped = [n for n in chosen.notes if "int8 skipped" in n]
    assert skipped and "of check-set labels equal fp32" in skipped[0]
    # asked for explicitly, int8 runs without the check
    assert Predictor.from_pretrained(ckpt, precision="int8").runtime.endswith(" int8")
    monkeypatch.setattr(verify, "MIN_AGREEMENT", 0.0)
    monkeypatch.setattr(verify, "MAX_CLASS_LOSS", 1.0)
    monkeypatch.setattr(verify, "CHECK_FORMAT", verify.CHECK_FORMAT + 1)  # not the cached verdict
    chosen = Predictor.from_pretrained(ckpt)
    assert chosen.runtime.endswith(" int8")
    assert any(n.startswith("verified: ") for n in chosen.notes)


def test_fast_paths_follow_the_kind_of_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from lrnet import zoo

    entry = zoo.ZooEntry(
        name="m",
        summary="",
        config={},
        classes=("a",),
        palette=((0, 0, 0),),
        fast_paths={"vnni": (("openvino", "int8"),), "avx2": (("onnxruntime", "fp32"),)},
    )
    assert entry.fast_paths_for("vnni") == ((("openvino", "int8"),), "vnni")
    assert entry.fast_paths_for("avx2") == ((("onnxruntime", "fp32"),), "avx2")
    assert entry.fast_paths_for("avx512") == ((("onnxruntime", "fp32"),), "avx2")
    assert entry.fast_paths_for("other") == ((), "")
    assert backends.cpu_class(("avx2", "fma")) == "avx2"
    assert backends.cpu_class(("avx2", "avx512f")) == "avx512"
    assert backends.cpu_class(("avx2", "avx_vnni")) == "vnni"
    assert backends.cpu_class(("avx2", "avx512f", "amx_int8")) == "vnni"
    assert backends.cpu_class(()) == "other"
