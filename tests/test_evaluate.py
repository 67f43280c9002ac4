"""Evaluation: every stage scored at the labels' resolution, test-time augmentation, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from lrnet.checkpoint import save_checkpoint, training_state
from lrnet.cli import main
from lrnet.config import load_config
from lrnet.evaluate import evaluate, stage_probabilities
from lrnet.models import build_model


class Oracle(nn.Module):
    """Reads the class off the image (channel 0 > 0.5 is class 1): an exact full-size stage and a
    4x4-pooled coarse stage. It follows flips and resizes as a real model would."""

    def __init__(self) -> None:
        super().__init__()
        self.seen_sizes: list[tuple[int, int]] = []

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.seen_sizes.append(tuple(images.shape[-2:]))
        is_one = (images[:, :1] > 0.5).float()
        full = torch.cat([1 - is_one, is_one], 1) * 10
        return nn.functional.avg_pool2d(full, 4), full


def image_of(target: torch.Tensor) -> torch.Tensor:
    return (target == 1).float()[:, None].expand(-1, 3, -1, -1).clone()


def test_stages_scored_against_original_labels() -> None:
    target = torch.zeros(1, 32, 32, dtype=torch.long)  # models run at 32 px or more
    target[0, :, 16:] = 1
    image = image_of(target)
    target[0, 0, 0] = 255  # void: ignored whatever is predicted there
    results = evaluate(Oracle(), [(image, target)], 2)
    assert len(results) == 2
    assert results[1]["miou"] == pytest.approx(1.0)  # the full-size stage is exact
    assert results[0]["global_acc"] == pytest.approx(
        1.0
    )  # block-aligned boundary survives 4x pooling
    target[0, 5, 5] = (
        1  # a lone pixel, away from the boundary: the coarse stage cannot represent it
    )
    results = evaluate(Oracle(), [(image_of(target), target)], 2)
    assert results[1]["miou"] == pytest.approx(1.0) and results[0]["miou"] < 1.0


def test_eval_size_runs_small_and_scores_at_full_size() -> None:
    target = torch.zeros(1, 64, 64, dtype=torch.long)
    target[0, :, 40:] = 1
    model = Oracle()
    probs = stage_probabilities(
        model, image_of(target), eval_size=(32, 32), flip=True, scales=(1.0, 1.5)
    )
    assert model.seen_sizes == [(32, 32), (32, 32), (48, 48), (48, 48)]
    assert all(p.shape == (1, 2, 64, 64) for p in probs)
    torch.testing.assert_close(probs[1].sum(1), torch.ones(1, 64, 64))
    assert (probs[1].argmax(1) == target).float().mean() > 0.95


def test_flip_averages_a_flipped_pass() -> None:
    model = build_model("lrn", 3, width=0.125).eval()
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        plain = stage_probabilities(model, image)[-1]
        mirrored = stage_probabilities(model, image.flip(-1))[-1].flip(-1)
        both = stage_probabilities(model, image, flip=True)[-1]
    torch.testing.assert_close(both, (plain + mirrored) / 2)


def test_evaluate_command_writes_every_stage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config(
        None,
        [
            "data.dataset=synthetic",
            f"data.root={tmp_path / 'data'}",
            "data.options={num_train: 2, num_val: 3, size: [40, 56], seed: 3}",
            "model.width=0.125",
        ],
    )
    from lrnet import data

    val = data.build(config.data, "val", generate=True)
    config.model.num_classes = len(val.classes)  # type: ignore[attr-defined]
    model = build_model("lrn", config.model.num_classes, width=0.125)
    ckpt = tmp_path / "model.pt"
    save_checkpoint(ckpt, training_state(model, config, classes=list(val.classes)))  # type: ignore[attr-defined]
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "evaluate",
                str(ckpt),
                "--split",
                "val",
                "--num-workers",
                "0",
                "--flip",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert [s["stage"] for s in result["stages"]] == [1, 2, 3, 4, 5, 6]
    assert result["samples"] == 3 and result["flip"] is True
    assert [c["name"] for c in result["per_class"]] == list(val.classes)  # type: ignore[attr-defined]
    assert "| s_6 |" in capsys.readouterr().out


def test_evaluate_refuses_a_dataset_with_another_class_count(tmp_path: Path) -> None:
    config = load_config(
        None,
        [
            "data.dataset=synthetic",
            f"data.root={tmp_path / 'data'}",
            "data.options={num_train: 2, num_val: 2, size: [40, 56]}",
            "model.num_classes=3",
            "model.width=0.125",
        ],
    )
    ckpt = tmp_path / "model.pt"
    save_checkpoint(ckpt, training_state(build_model("lrn", 3, width=0.125), config))
    assert main(["evaluate", str(ckpt), "--num-workers", "0"]) == 2


def _synthetic_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    """A random-weight checkpoint of a synthetic config, and its data root (written once)."""
    root = tmp_path / "data"
    config = load_config(
        None,
        [
            "data.dataset=synthetic",
            f"data.root={root}",
            "data.options={num_train: 2, num_val: 2, size: [40, 56], seed: 3}",
            "model.width=0.125",
            "data.eval_size=[32, 48]",
        ],
    )
    from lrnet import data

    val = data.build(config.data, "val", generate=True)
    config.model.num_classes = len(val.classes)
    torch.manual_seed(0)
    model = build_model("lrn", config.model.num_classes, width=0.125)
    ckpt = tmp_path / "model.pt"
    save_checkpoint(ckpt, training_state(model, config, classes=list(val.classes)))
    return ckpt, root


def test_evaluate_options_change_what_is_run(tmp_path: Path, monkeypatch) -> None:
    ckpt, root = _synthetic_checkpoint(tmp_path)
    seen: list[dict] = []
    import lrnet.evaluate as module

    real = module.evaluate

    def spy(model, loader, num_classes, **kwargs):  # type: ignore[no-untyped-def]
        seen.append({"samples": len(loader.dataset), **kwargs})
        return real(model, loader, num_classes, **kwargs)

    monkeypatch.setattr(module, "evaluate", spy)
    moved = tmp_path / "moved"
    root.rename(moved)  # --data finds the data where the checkpoint's root no longer does
    args = ["evaluate", str(ckpt), "--data", str(moved), "--num-workers", "0"]
    assert main(args) == 0
    assert main([*args, "--eval-size", "64", "96", "--scales", "0.5", "1.5"]) == 0
    assert seen[0]["eval_size"] == [32, 48] and list(seen[0]["scales"]) == [1.0]
    assert list(seen[1]["eval_size"]) == [64, 96] and list(seen[1]["scales"]) == [0.5, 1.5]


@pytest.mark.parametrize(
    "options",
    [["--scales", "-1"], ["--scales", "0"], ["--eval-size", "0", "0"], ["--batch-size", "0"],
     ["--num-workers", "-1"], ["--device", "gpu"], ["--device", "cuda:7"]],
    ids=lambda o: " ".join(o),
)  # fmt: skip
def test_bad_evaluate_options_are_clear_errors(tmp_path: Path, options: list[str], capsys) -> None:
    if options == ["--device", "cuda:7"] and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    ckpt, _ = _synthetic_checkpoint(tmp_path)
    assert main(["evaluate", str(ckpt), "--num-workers", "0", *options]) == 2
    err = capsys.readouterr().err
    assert options[0] in err or repr(options[1]) in err
    assert "Traceback" not in err


def test_evaluate_never_generates_data(tmp_path: Path, capsys) -> None:
    ckpt, _root = _synthetic_checkpoint(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "photo.jpg").write_bytes(b"a user's file")
    assert main(["evaluate", str(ckpt), "--data", str(elsewhere), "--num-workers", "0"]) == 2
    assert sorted(p.name for p in elsewhere.iterdir()) == ["photo.jpg"]
    err = capsys.readouterr().err
    assert str(elsewhere) in err and "--dataset folder" in err  # says what to do


@pytest.mark.parametrize("size", [(60, 120), (90, 40)])  # 2:1 and a portrait, run at 64x96
def test_evaluate_scores_exactly_the_labels_predictor_gives(size: tuple[int, int]) -> None:
    """One preprocessing for both: an image of another aspect than the run size is fitted
    inside it and padded, never squashed, in evaluate as in predict (and so in the app and
    the exported graph's contract)."""
    from _helpers import tiny_model
    from lrnet.inference.backends import TorchBackend, stage_module
    from lrnet.inference.predictor import Predictor
    from lrnet.metrics import ConfusionMatrix

    generator = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, *size, generator=generator)
    images = torch.nn.functional.avg_pool2d(images, 5, 1, 2)  # some structure, not pure noise
    targets = torch.randint(0, 5, (3, *size), generator=generator)
    backend = TorchBackend(tiny_model(), "fp32")
    predictor = Predictor(backend, eval_size=(64, 96), num_classes=5)
    matrix = ConfusionMatrix(5)
    for image, target in zip(images, targets, strict=True):
        matrix.update(target[None], torch.from_numpy(predictor.predict(image).labels)[None])
    expected = matrix.compute()
    loader = [(images[i : i + 1], targets[i : i + 1]) for i in range(3)]
    final = evaluate(stage_module(backend), loader, 5, eval_size=(64, 96))[-1]
    for key in ("global_acc", "per_class_iou", "per_class_acc"):
        assert final[key] == expected[key], key


def test_a_scale_under_the_minimum_size_is_refused_not_clamped() -> None:
    """Issue 21: --scales 0.0001 ran at 32x32 (the minimum) and reported scale 0.0001."""
    from lrnet._errors import LrnetError

    model = build_model("lrn", 3, width=0.125).eval()
    images = torch.rand(1, 3, 40, 48)
    with pytest.raises(
        LrnetError,
        match=r"scale 0.5 runs 40x48 .* at 20x24, under the model's minimum of 32 .* at least 0.8",
    ):
        stage_probabilities(model, images, scales=(1.0, 0.5))
    with pytest.raises(LrnetError, match=r"scale 10000.0 .* needs at least .* of memory"):
        stage_probabilities(model, images, scales=(1e4,))
    assert len(stage_probabilities(model, images, scales=(0.8, 1.0))) == 6
