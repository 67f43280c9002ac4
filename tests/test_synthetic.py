"""Synthetic data: deterministic, cached by its manifest, read by the folder loader, learnable."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from lrnet.data import build_dataset
from lrnet.data.synthetic import (
    POLE,
    SIGN,
    SYNTHETIC_CLASSES,
    SYNTHETIC_PALETTE,
    generate_synthetic,
)


def files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_written_in_folder_layout_and_read_back(tmp_path):
    root = generate_synthetic(tmp_path / "syn", num_train=5, num_val=3, size=(64, 80), seed=1)
    classes = yaml.safe_load((root / "classes.yaml").read_text())
    assert classes["names"] == SYNTHETIC_CLASSES and len(SYNTHETIC_CLASSES) >= 6
    assert [tuple(c) for c in classes["palette"]] == SYNTHETIC_PALETTE
    train = build_dataset("folder", root, "train")
    val = build_dataset("folder", root, "val")
    assert (len(train), len(val)) == (5, 3)
    assert train.classes == SYNTHETIC_CLASSES and train.palette == SYNTHETIC_PALETTE
    image, mask = train[0]
    assert image.shape == (3, 64, 80) and mask.shape == (64, 80)
    assert int(mask.max()) < len(SYNTHETIC_CLASSES)


def test_deterministic_in_seed(tmp_path):
    a = files(generate_synthetic(tmp_path / "a", num_train=3, num_val=1, size=(48, 64), seed=7))
    b = files(generate_synthetic(tmp_path / "b", num_train=3, num_val=1, size=(48, 64), seed=7))
    c = files(generate_synthetic(tmp_path / "c", num_train=3, num_val=1, size=(48, 64), seed=8))
    assert a == b
    assert a.keys() == c.keys() and a != c
    image = a[next(k for k in a if str(k).startswith("images/train"))]
    assert image != a[next(k for k in a if str(k).startswith("images/val"))]


def test_manifest_skips_regeneration_and_detects_changes(tmp_path):
    root = generate_synthetic(tmp_path, num_train=3, num_val=1, size=(48, 64))
    first = root / "images/train_00000.png"
    stamp = first.stat().st_mtime_ns
    time.sleep(0.01)
    generate_synthetic(tmp_path, num_train=3, num_val=1, size=(48, 64))
    assert first.stat().st_mtime_ns == stamp  # untouched
    generate_synthetic(tmp_path, num_train=2, num_val=1, size=(48, 64))
    assert len(build_dataset("folder", root, "train")) == 2
    assert not (root / "images/train_00002.png").exists()  # stale files are removed


def test_scenes_have_large_regions_thin_poles_and_small_signs(tmp_path):
    root = generate_synthetic(tmp_path, num_train=40, num_val=0, size=(128, 160))
    masks = np.stack([np.asarray(Image.open(p)) for p in sorted((root / "masks").glob("*.png"))])
    freq = np.bincount(masks.ravel(), minlength=len(SYNTHETIC_CLASSES)) / masks.size
    assert (freq > 0).all()
    assert np.sort(freq)[-3:].sum() > 0.6  # three large regions cover most of the image
    # Poles are 1-2 px wide: horizontal runs of pole pixels.
    runs = []
    for row in (masks == POLE).reshape(-1, masks.shape[-1]).astype(np.int8):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], row, [0]])))
        runs += (edges[1::2] - edges[::2]).tolist()
    assert runs and np.percentile(runs, 90) <= 2
    assert 0 < freq[SIGN] < 0.01 and 0 < freq[POLE] < 0.03


def test_generation_is_fast(tmp_path):
    start = time.perf_counter()
    generate_synthetic(tmp_path, num_train=100, num_val=0, size=(128, 160))
    assert time.perf_counter() - start < 10.0  # about 0.2 s on one core


@pytest.mark.slow
def test_small_lrn_learns_it_and_the_fine_stage_beats_the_coarse_one(tmp_path):
    """A quarter-width LRN, 250 steps on CPU: mIoU per stage on val.

    About 3 minutes on 2 idle cores; 9 minutes when other jobs share them.
    """
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from lrnet.data.class_weights import compute_class_weights
    from lrnet.data.transforms import train_transforms
    from lrnet.loss import StageLoss
    from lrnet.models import build_model

    torch.manual_seed(0)
    root = generate_synthetic(tmp_path, num_train=300, num_val=60)
    train = build_dataset("folder", root, "train", train_transforms((128, 160), (0.75, 1.25)))
    val = build_dataset("folder", root, "val")
    model = build_model("lrn", len(SYNTHETIC_CLASSES), width=0.25)
    loss_fn = StageLoss(class_weights=compute_class_weights(train))
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    steps = 0
    while steps < 250:
        for images, masks in DataLoader(train, batch_size=8, shuffle=True):
            loss, _ = loss_fn(model(images), masks)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
            if steps == 250:
                break
    model.eval()
    num = len(SYNTHETIC_CLASSES)
    confusion = torch.zeros(6, num, num, dtype=torch.long)
    with torch.no_grad():
        for images, masks in DataLoader(val, batch_size=20):
            for k, logits in enumerate(model(images)):
                pred = F.interpolate(logits, size=masks.shape[-2:], mode="bilinear").argmax(1)
                confusion[k] += torch.bincount(
                    (masks * num + pred).flatten(), minlength=num * num
                ).view(num, num)
    c = confusion.double()
    diag = c.diagonal(dim1=1, dim2=2)
    iou = diag / (c.sum(1) + c.sum(2) - diag)
    miou = iou.nanmean(1)
    assert miou[-1] > 0.6
    assert miou[-1] > miou[0] + 0.2
    assert iou[-1, POLE] > iou[0, POLE] + 0.3  # thin objects need the fine stages


# Data loss (issue 13): only ever remove or replace what the manifest says lrnet wrote.


def tree(root):
    """Every file under ``root`` with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_users_folder_is_refused_and_left_as_it_was(tmp_path):
    from lrnet._errors import LrnetError

    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "photo.jpg").write_bytes(b"my holiday")
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "photo.png").write_bytes(b"my mask")
    (tmp_path / "notes.txt").write_text("do not lose")
    before = tree(tmp_path)
    with pytest.raises(LrnetError, match="not a synthetic dataset") as error:
        generate_synthetic(tmp_path, num_train=2, num_val=1, size=(32, 32))
    assert str(tmp_path) in str(error.value)
    assert tree(tmp_path) == before


def test_regeneration_removes_only_what_lrnet_wrote(tmp_path):
    generate_synthetic(tmp_path, num_train=3, num_val=1, size=(32, 32))
    (tmp_path / "images" / "mine.jpg").write_bytes(b"my photo")
    (tmp_path / "notes.txt").write_text("keep me")
    generate_synthetic(tmp_path, num_train=2, num_val=1, size=(48, 32), seed=3)
    assert (tmp_path / "images" / "mine.jpg").read_bytes() == b"my photo"
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert not (tmp_path / "images" / "train_00002.png").exists()
    assert Image.open(tmp_path / "images" / "train_00000.png").size == (32, 48)


def test_a_users_file_where_a_new_generation_would_write_is_refused(tmp_path):
    from lrnet._errors import LrnetError

    generate_synthetic(tmp_path, num_train=1, num_val=1, size=(32, 32))
    (tmp_path / "images" / "train_00001.png").write_bytes(b"mine, same name")
    before = tree(tmp_path)
    with pytest.raises(LrnetError, match=r"train_00001\.png"):
        generate_synthetic(tmp_path, num_train=2, num_val=1, size=(32, 32))
    assert tree(tmp_path) == before


def test_a_generation_killed_half_way_is_completed_by_the_next_call(tmp_path, monkeypatch):
    from lrnet.data import synthetic

    calls = 0
    real = synthetic.synthetic_scene

    def dies_on_the_third(*args):
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(synthetic, "synthetic_scene", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        generate_synthetic(tmp_path, num_train=4, num_val=1, size=(32, 32))
    monkeypatch.setattr(synthetic, "synthetic_scene", real)
    generate_synthetic(tmp_path, num_train=4, num_val=1, size=(32, 32))
    assert len(build_dataset("folder", tmp_path, "train")) == 4
    fresh = generate_synthetic(tmp_path / "fresh", num_train=4, num_val=1, size=(32, 32))
    assert {k: v for k, v in tree(tmp_path).items() if not k.startswith("fresh")} == tree(fresh)


def test_a_folder_of_the_earlier_options_only_manifest_is_still_ours(tmp_path):
    """lrnet 0.1 wrote ``synthetic.json`` (options only); its file names follow from them."""
    import json

    root = generate_synthetic(tmp_path / "old", num_train=3, num_val=1, size=(32, 32))
    manifest = root / "lrnet_synthetic.json"
    options = json.loads(manifest.read_text())["options"]
    manifest.unlink()
    (root / "synthetic.json").write_text(json.dumps(options))
    (root / "images" / "mine.jpg").write_bytes(b"my photo")
    generate_synthetic(root, num_train=2, num_val=1, size=(32, 32))
    assert not (root / "synthetic.json").exists()
    assert not (root / "images" / "train_00002.png").exists()
    assert (root / "images" / "mine.jpg").read_bytes() == b"my photo"


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"num_train": 2.5}, TypeError, "num_train must be a whole number >= 0, got float 2.5"),
        ({"num_val": True}, TypeError, "num_val must be a whole number"),
        ({"num_train": -1}, ValueError, "num_train must be a whole number >= 0, got -1"),
        ({"size": (-32, 64)}, ValueError, r"size\[0\] must be a whole number >= 32, got -32"),
        ({"size": (32.5, 64)}, TypeError, r"size\[0\] must be a whole number"),
        ({"size": 64}, TypeError, r"size must be \(H, W\)"),
        ({"size": (100_000, 100_000)}, Exception, "needs at least"),
    ],
)
def test_bad_generation_options_are_refused_by_name(tmp_path, options, error, message) -> None:
    """Issue 21: 2.5 images were int()-ed to 2 and True to 1 without a word."""
    with pytest.raises(error, match=message):
        generate_synthetic(tmp_path / "data", **options)
    assert not (tmp_path / "data").exists()
