"""check-dataset and class-weights: hand-computed weights, problem reports, real CamVid figures."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from lrnet._errors import LrnetError
from lrnet.cli import main as cli
from lrnet.data import build_dataset
from lrnet.data.class_weights import (
    compute_class_weights,
    pixel_statistics,
    weights_from_statistics,
)
from lrnet.data.synthetic import SYNTHETIC_PALETTE, generate_synthetic


def write_pairs(root: Path, masks: dict[str, np.ndarray], names: list[str]) -> None:
    (root / "images/train").mkdir(parents=True)
    (root / "masks/train").mkdir(parents=True)
    (root / "classes.yaml").write_text(yaml.safe_dump({"names": names}))
    for stem, mask in masks.items():
        Image.fromarray(np.zeros((*mask.shape, 3), np.uint8)).save(
            root / f"images/train/{stem}.png"
        )
        Image.fromarray(mask.astype(np.uint8)).save(root / f"masks/train/{stem}.png")


@pytest.fixture
def counted(tmp_path):
    """Two 4x5 masks with known counts: A = 10 x c0, 6 x c1, 4 void; B = 5 x c0, 15 x c2."""
    a = np.array([0] * 10 + [1] * 6 + [255] * 4).reshape(4, 5)
    b = np.array([0] * 5 + [2] * 15).reshape(4, 5)
    write_pairs(tmp_path, {"a": a, "b": b}, ["c0", "c1", "c2", "never"])
    return build_dataset("folder", tmp_path, "train")


def test_median_frequency_by_hand(counted):
    # freq = pixels / pixels of the images containing the class: 15/40, 6/20, 15/20.
    freq = np.array([15 / 40, 6 / 20, 15 / 20])
    weights = compute_class_weights(counted, "median_frequency")
    np.testing.assert_allclose(weights, [*(0.375 / freq), 0.0])  # median 0.375; absent class 0
    # SegNet's variant: void's frequency 4/20 joins the median: median(0.2, 0.3, 0.375, 0.75).
    stats = pixel_statistics(counted)
    with_void = weights_from_statistics(stats, "median_frequency", void_in_median=True)
    np.testing.assert_allclose(with_void, [*(0.3375 / freq), 0.0])


def test_inverse_frequency_and_enet_by_hand(counted):
    np.testing.assert_allclose(
        compute_class_weights(counted, "inverse_frequency"), [36 / 60, 36 / 24, 36 / 60, 0.0]
    )
    expected = [1 / math.log(1.02 + p) for p in (15 / 36, 6 / 36, 15 / 36)]
    np.testing.assert_allclose(compute_class_weights(counted, "enet"), [*expected, 0.0])
    with pytest.raises(LrnetError, match="unknown class-weight method 'median'"):
        compute_class_weights(counted, "median")


def test_class_weights_command_prints_a_pasteable_yaml(counted, capsys):
    assert cli(["class-weights", "folder", str(counted.samples[0][0].parents[2])]) == 0
    out = capsys.readouterr().out
    config = yaml.safe_load(
        "\n".join(line for line in out.splitlines() if not line.startswith("#"))
    )
    np.testing.assert_allclose(config["data"]["class_weights"], [1.0, 1.25, 0.5, 0.0], atol=1e-4)
    assert "c1" in out


def test_check_dataset_clean(tmp_path, capsys):
    root = generate_synthetic(tmp_path, num_train=4, num_val=2, size=(48, 64))
    assert cli(["check-dataset", "folder", str(root)]) == 0
    out = capsys.readouterr().out
    assert "== folder train" in out and "== folder val" in out and "all 2 split(s) clean" in out
    assert "samples: 4" in out and "pole" in out
    # Its classes.yaml gives the mask colours: colour masks are information, not a problem.
    assert f"masks: class indices, or RGB colours read through the palette of {root}" in out
    assert "instead of class indices" not in out and "palette cannot read: 0" in out


def test_check_dataset_reports_every_problem_with_its_file(tmp_path, capsys):
    root = generate_synthetic(tmp_path, num_train=6, num_val=1, size=(48, 64))
    images, masks = root / "images", root / "masks"
    truncated = images / "train_00001.png"
    truncated.write_bytes(truncated.read_bytes()[:300])
    rgb = np.zeros((48, 64, 3), np.uint8)  # a colour mask, 3 pixels of an unknown colour
    rgb[:] = SYNTHETIC_PALETTE[0]
    rgb[0, :3] = (1, 2, 3)
    Image.fromarray(rgb).save(masks / "train_00002.png")
    (masks / "train_00005.png").unlink()  # missing: the rest of the split is still checked
    Image.fromarray(np.zeros((40, 64), np.uint8)).save(masks / "train_00003.png")  # size mismatch
    bad = np.asarray(Image.open(masks / "train_00004.png")).copy()
    bad[5, 5] = 42
    Image.fromarray(bad).save(masks / "train_00004.png")  # label 42 of 7 classes
    assert cli(["check-dataset", "folder", str(root), "--splits", "train", "test"]) == 1
    out = capsys.readouterr().out
    assert "missing files: 1" in out and str(masks / "train_00005.png") in out
    assert "unreadable files: 1" in out and str(truncated) in out
    assert "size mismatches: 1" in out and str(masks / "train_00003.png") in out
    assert "outside the classes and void: 2" in out
    assert f"{masks / 'train_00004.png'}: values 42" in out
    assert f"mask {masks / 'train_00002.png'} holds colours" in out
    assert "(1, 2, 3) in 3 pixels" in out
    assert "== folder test\n  error: folder has no split 'test'" in out  # requested, missing
    assert "6 problem(s) in 2 split(s)" in out


def test_check_dataset_reports_colour_masks_without_colours_in_classes_yaml(tmp_path, capsys):
    root = generate_synthetic(tmp_path / "syn", num_train=2, num_val=1, size=(32, 32))
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (copy / "classes.yaml").write_text("names: [a, b, c, d, e, f, g]\n")  # no palette
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(copy / "masks" / "train_00001.png")
    assert cli(["check-dataset", "folder", str(copy), "--splits", "train"]) == 1
    out = capsys.readouterr().out
    assert "masks with colours instead of class indices: 1" in out
    assert str(copy / "masks" / "train_00001.png") in out and "gives no colours" in out


def test_check_dataset_workers_must_not_be_negative(tmp_path, capsys):
    root = generate_synthetic(tmp_path, num_train=1, num_val=1, size=(32, 32))
    assert cli(["check-dataset", "folder", str(root), "--workers", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--workers" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_check_dataset_reports_every_missing_camvid_file_and_checks_the_rest(tmp_path, capsys):
    rng = np.random.default_rng(0)
    lines = []
    for name in ["a", "b", "c", "d"]:
        (tmp_path / "train").mkdir(exist_ok=True)
        (tmp_path / "trainannot").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), np.uint8)).save(
            tmp_path / f"train/{name}.png"
        )
        Image.fromarray(rng.integers(0, 12, (8, 8), np.uint8)).save(
            tmp_path / f"trainannot/{name}.png"
        )
        lines.append(f"/SegNet/CamVid/train/{name}.png /SegNet/CamVid/trainannot/{name}.png\n")
    (tmp_path / "train.txt").write_text("".join(lines))
    (tmp_path / "train" / "b.png").unlink()
    (tmp_path / "trainannot" / "d.png").unlink()
    mask = np.asarray(Image.open(tmp_path / "trainannot" / "c.png")).copy()
    mask[0, 0] = 77
    Image.fromarray(mask).save(tmp_path / "trainannot" / "c.png")
    assert cli(["check-dataset", "camvid", str(tmp_path), "--splits", "train"]) == 1
    out = capsys.readouterr().out
    assert "samples: 4" in out and "missing files: 2" in out
    assert (
        str(tmp_path / "train" / "b.png") in out and str(tmp_path / "trainannot" / "d.png") in out
    )
    assert f"{tmp_path / 'trainannot' / 'c.png'}: values 77" in out  # found in the same pass
    assert "masks with colours instead of class indices: 0" in out  # CamVid's masks are indices


def test_check_dataset_unknown_root_is_a_one_line_error(tmp_path, capsys):
    assert cli(["check-dataset", "camvid", str(tmp_path / "missing"), "--splits", "train"]) == 1
    assert "does not exist" in capsys.readouterr().out


# ---------------------------------------------------------------- real CamVid (skipped when absent)

# The "void in median" weights recomputed in alexgkendall/caffe-segnet issue #37 from the same counts
# (docs/datasets.md); SegNet's published ones differ from them, at SignSymbol by 2.7x.
ISSUE_37_WEIGHTS = [
    0.2565, 0.1853, 4.3963, 0.1369, 0.9185, 0.3873, 3.5331, 1.8127, 0.7246, 5.8550, 8.1365,
]  # fmt: skip


def test_real_camvid_counts_match_an_independent_count(camvid: Path):
    # Pixel and image counts of trainannot/ published in alexgkendall/caffe-segnet issue #37.
    stats = pixel_statistics(build_dataset("camvid", camvid, "train"))
    assert stats.pixels.tolist() == [
        10682767, 14750079, 623349, 20076880, 2845085, 6166762,
        743859, 714595, 3719877, 405385, 184967,
    ]  # fmt: skip
    assert stats.images.tolist() == [366, 365, 366, 367, 349, 319, 351, 173, 360, 317, 201]
    assert stats.void_pixels == 2503995


def test_real_camvid_weights_equal_an_independent_recomputation(camvid: Path):
    stats = pixel_statistics(build_dataset("camvid", camvid, "train"))
    ours = weights_from_statistics(stats, "median_frequency", void_in_median=True)
    assert ours == pytest.approx(ISSUE_37_WEIGHTS, abs=5e-5)  # published to 4 decimals


def test_real_camvid_val_is_clean(camvid: Path, capsys):
    assert cli(["check-dataset", "camvid", str(camvid), "--splits", "val"]) == 0
    assert "samples: 101" in capsys.readouterr().out
