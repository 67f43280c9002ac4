"""Datasets on tmp_path fixtures (CamVid, VOC + SBD, SUN RGB-D, folder) and on real CamVid."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch.utils.data import DataLoader

from _helpers import make_camvid, save_index, save_rgb
from lrnet._errors import LrnetError, user_message
from lrnet.data import DATASETS, DatasetError, build_dataset, read_image
from lrnet.data.camvid import CAMVID_CLASSES
from lrnet.data.voc import VOC_PALETTE


def test_registry_names():
    assert set(DATASETS) == {"camvid", "voc", "sunrgbd", "folder", "synthetic"}


def test_camvid_split_file_resolves_segnet_paths_and_maps_void(tmp_path):
    names = ["b_0002", "a_0001", "c_0003"]  # not sorted: the split file's order must be kept
    masks = make_camvid(tmp_path, names)
    ds = build_dataset("camvid", tmp_path, "train")
    assert len(ds) == 3
    assert [p.stem for p, _ in ds.samples] == names
    assert ds.samples[0] == (tmp_path / "train/b_0002.png", tmp_path / "trainannot/b_0002.png")
    assert ds.classes == CAMVID_CLASSES and ds.num_classes == 11 and len(ds.palette) == 11
    assert ds.ignore_index == 255
    image, mask = ds[1]
    assert image.shape == (3, 12, 16) and image.dtype == torch.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    expected = np.where(masks[1] == 11, 255, masks[1])
    assert mask.dtype == torch.int64
    np.testing.assert_array_equal(mask.numpy(), expected)
    np.testing.assert_array_equal(ds.read_mask(1).numpy(), expected)
    original = np.asarray(Image.open(tmp_path / "train/a_0001.png"), dtype=np.float32) / 255
    np.testing.assert_allclose(image.permute(1, 2, 0).numpy(), original)


def test_camvid_without_split_file_pairs_folders_by_name(tmp_path):
    make_camvid(tmp_path, ["x1", "x0"], split="val")
    (tmp_path / "val.txt").unlink()
    ds = build_dataset("camvid", tmp_path, "val")
    assert [(i.name, m.parent.name) for i, m in ds.samples] == [
        ("x0.png", "valannot"),
        ("x1.png", "valannot"),
    ]


def test_missing_mask_is_an_error_naming_the_file(tmp_path):
    make_camvid(tmp_path, ["a", "b"])
    (tmp_path / "trainannot/b.png").unlink()
    with pytest.raises(DatasetError, match=r"trainannot/b\.png"):
        build_dataset("camvid", tmp_path, "train")


def test_truncated_image_is_an_error_naming_the_file(tmp_path):
    make_camvid(tmp_path, ["a", "b"], size=(64, 64))
    path = tmp_path / "train/b.png"
    path.write_bytes(path.read_bytes()[:200])
    ds = build_dataset("camvid", tmp_path, "train")
    ds[0]  # the good one still loads
    with pytest.raises(DatasetError, match=r"train/b\.png.*(corrupt|truncated)"):
        ds[1]


def test_not_an_image_is_an_error_naming_the_file(tmp_path):
    make_camvid(tmp_path, ["a"])
    (tmp_path / "train/a.png").write_text("not a png")
    with pytest.raises(DatasetError, match=r"train/a\.png"):
        build_dataset("camvid", tmp_path, "train")[0]


def test_size_mismatch_names_both_files(tmp_path):
    make_camvid(tmp_path, ["a"])
    save_index(tmp_path / "trainannot/a.png", np.zeros((10, 16)))
    with pytest.raises(
        DatasetError, match=r"train/a\.png.*\(12, 16\).*trainannot/a\.png.*\(10, 16\)"
    ):
        build_dataset("camvid", tmp_path, "train")[0]


@pytest.mark.parametrize("bad_value", [12, 200])
def test_out_of_range_label_names_the_mask(tmp_path, bad_value):
    make_camvid(tmp_path, ["a"])
    mask = np.zeros((12, 16))
    mask[3, 4] = bad_value
    save_index(tmp_path / "trainannot/a.png", mask)
    ds = build_dataset("camvid", tmp_path, "train")
    with pytest.raises(DatasetError, match=rf"trainannot/a\.png.*values {bad_value}\b"):
        ds[0]
    with pytest.raises(DatasetError, match=r"trainannot/a\.png"):
        ds.read_mask(0)


def test_rgb_mask_is_an_error_naming_the_file(tmp_path):
    make_camvid(tmp_path, ["a"])
    save_rgb(tmp_path / "trainannot/a.png", np.zeros((12, 16, 3)))
    with pytest.raises(DatasetError, match=r"trainannot/a\.png is a colour \(RGB\).*class indices"):
        build_dataset("camvid", tmp_path, "train")[0]


def test_error_in_a_dataloader_worker_reaches_the_user_as_one_line(tmp_path):
    make_camvid(tmp_path, ["a"])
    mask = np.full((12, 16), 40)
    save_index(tmp_path / "trainannot/a.png", mask)
    loader = DataLoader(build_dataset("camvid", tmp_path, "train"), batch_size=1, num_workers=1)
    with pytest.raises(DatasetError) as info:
        next(iter(loader))
    message = user_message(info.value)
    assert "Traceback" not in message and "\n" not in message
    assert str(tmp_path / "trainannot/a.png") in message


def test_camvid_folds_hold_one_sequence_out(tmp_path):
    make_camvid(tmp_path, ["0001TP_006690", "0006R0_f02400", "0016E5_00390"])
    make_camvid(tmp_path, ["0016E5_07959", "0016E5_07961"], split="val")

    def stems(split):
        return sorted(p[0].stem for p in build_dataset("camvid", tmp_path, split).samples)

    assert stems("trainval") == sorted(
        ["0001TP_006690", "0006R0_f02400", "0016E5_00390", "0016E5_07959", "0016E5_07961"]
    )
    assert stems("fold-a-val") == ["0006R0_f02400"]
    assert stems("fold-a-train") == [s for s in stems("trainval") if not s.startswith("0006R0")]
    assert stems("fold-b-val") == ["0001TP_006690"]
    assert stems("fold-b-train") == [s for s in stems("trainval") if not s.startswith("0001TP")]
    assert build_dataset("camvid", tmp_path, "fold-a-train").samples[-1][0].parent.name == "val"


def test_build_dataset_errors(tmp_path):
    make_camvid(tmp_path, ["a"])
    with pytest.raises(LrnetError, match=r"unknown dataset 'cityscapes'.*camvid"):
        build_dataset("cityscapes", tmp_path, "train")
    with pytest.raises(LrnetError, match="does not exist"):
        build_dataset("camvid", tmp_path / "nowhere", "train")
    with pytest.raises(LrnetError, match=r"no split 'fold-c-val'.*train, val, test, trainval"):
        build_dataset("camvid", tmp_path, "fold-c-val")
    with pytest.raises(LrnetError, match=r"no option.*sbd_root"):
        build_dataset("camvid", tmp_path, "train", sbd_root=tmp_path)


# ---------------------------------------------------------------- VOC + SBD


def write_voc(root: Path, splits: dict[str, list[str]], size=(10, 14)) -> dict[str, np.ndarray]:
    voc = root / "VOCdevkit/VOC2012"
    rng = np.random.default_rng(1)
    masks = {}
    for ids in splits.values():
        for i in ids:
            save_rgb(voc / "JPEGImages" / f"{i}.jpg", rng.integers(0, 256, (*size, 3)))
            mask = rng.integers(0, 21, size)
            mask[0, :] = 255  # the void border
            save_index(voc / "SegmentationClass" / f"{i}.png", mask, VOC_PALETTE)
            masks[i] = mask
    for split, ids in splits.items():
        (voc / "ImageSets/Segmentation").mkdir(parents=True, exist_ok=True)
        (voc / "ImageSets/Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return masks


def write_sbd(root: Path, splits: dict[str, list[str]], size=(10, 14)) -> dict[str, np.ndarray]:
    scipy_io = pytest.importorskip("scipy.io")
    sbd = root / "dataset"
    rng = np.random.default_rng(2)
    masks = {}
    for split, ids in splits.items():
        for i in ids:
            save_rgb(sbd / "img" / f"{i}.jpg", rng.integers(0, 256, (*size, 3)))
            mask = rng.integers(0, 21, size).astype(np.uint8)
            (sbd / "cls").mkdir(parents=True, exist_ok=True)
            scipy_io.savemat(
                sbd / "cls" / f"{i}.mat",
                {"GTcls": {"Segmentation": mask, "CategoriesPresent": np.unique(mask)}},
            )
            masks[i] = mask
        (sbd / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return masks


def test_voc_reads_palette_indices_not_colours(tmp_path):
    masks = write_voc(tmp_path, {"train": ["2007_000001", "2007_000002"], "val": ["2007_000003"]})
    ds = build_dataset("voc", tmp_path, "train")
    assert len(ds) == 2 and ds.num_classes == 21 and ds.palette[1] == (128, 0, 0)
    assert Image.open(ds.samples[0][1]).mode == "P"
    image, mask = ds[0]
    assert image.shape == (3, 10, 14)
    np.testing.assert_array_equal(mask.numpy(), masks["2007_000001"])
    assert (mask[0] == 255).all()
    assert len(build_dataset("voc", tmp_path / "VOCdevkit", "val")) == 1  # root may be VOCdevkit


def test_voc_trainaug_joins_sbd_and_leaves_out_voc_val(tmp_path):
    voc_masks = write_voc(tmp_path / "voc", {"train": ["a", "b"], "val": ["c"]})
    sbd_masks = write_sbd(tmp_path / "sbd", {"train": ["c", "d", "a"], "val": ["e"]})
    ds = build_dataset("voc", tmp_path / "voc", "trainaug", sbd_root=tmp_path / "sbd")
    stems = {image.stem: mask for image, mask in ds.samples}
    assert sorted(stems) == ["a", "b", "d", "e"]  # c is in VOC val
    assert stems["a"].suffix == ".png" and stems["d"].suffix == ".mat"
    by_stem = {image.stem: k for k, (image, _) in enumerate(ds.samples)}
    np.testing.assert_array_equal(ds[by_stem["a"]][1].numpy(), voc_masks["a"])
    np.testing.assert_array_equal(ds[by_stem["d"]][1].numpy(), sbd_masks["d"])
    np.testing.assert_array_equal(ds.read_mask(by_stem["e"]).numpy(), sbd_masks["e"])
    assert ds[by_stem["e"]][0].shape == (3, 10, 14)


def test_voc_trainaug_needs_sbd_root_and_scipy(tmp_path, monkeypatch):
    write_voc(tmp_path / "voc", {"train": ["a"], "val": ["c"]})
    write_sbd(tmp_path / "sbd", {"train": ["d"], "val": []})
    with pytest.raises(DatasetError, match="sbd_root"):
        build_dataset("voc", tmp_path / "voc", "trainaug")
    ds = build_dataset("voc", tmp_path / "voc", "trainaug", sbd_root=tmp_path / "sbd" / "dataset")
    monkeypatch.setitem(sys.modules, "scipy.io", None)  # import scipy.io now fails
    d = next(k for k, (_, m) in enumerate(ds.samples) if m.suffix == ".mat")
    with pytest.raises(DatasetError, match=r"d\.mat needs scipy: pip install lrnet\[sbd\]"):
        ds[d]


def test_sbd_mat_without_gtcls_names_the_file(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    write_voc(tmp_path / "voc", {"train": ["a"], "val": []})
    write_sbd(tmp_path / "sbd", {"train": ["d"], "val": []})
    scipy_io.savemat(tmp_path / "sbd/dataset/cls/d.mat", {"other": np.zeros((2, 2))})
    ds = build_dataset("voc", tmp_path / "voc", "trainaug", sbd_root=tmp_path / "sbd")
    assert ds.samples[1][1].name == "d.mat"
    with pytest.raises(DatasetError, match=r"d\.mat has no GTcls\.Segmentation"):
        ds[1]


# ---------------------------------------------------------------- SUN RGB-D


@pytest.mark.parametrize("train_numbers", [(1, 2), (5051, 5052)])
def test_sunrgbd_layout_label_offset_and_void(tmp_path, train_numbers):
    rng = np.random.default_rng(3)
    labels = {}
    for n in [1, 2, 3, 5051, 5052]:
        mask = rng.integers(0, 38, (8, 10))
        save_index(tmp_path / "sunrgbd_train_test_labels" / f"img-{n:06d}.png", mask)
        labels[n] = mask
    for n in [1, 2, 3]:
        save_rgb(tmp_path / "SUNRGBD-test_images" / f"img-{n:06d}.jpg", np.zeros((8, 10, 3)))
    for n in train_numbers:
        save_rgb(tmp_path / "SUNRGBD-train_images" / f"img-{n:06d}.jpg", np.zeros((8, 10, 3)))
    train = build_dataset("sunrgbd", tmp_path, "train")
    test = build_dataset("sunrgbd", tmp_path, "test")
    assert train.num_classes == 37 and train.classes[0] == "wall" and train.classes[-1] == "bag"
    assert [m.name for _, m in train.samples] == ["img-005051.png", "img-005052.png"]
    assert [m.name for _, m in test.samples] == [
        "img-000001.png",
        "img-000002.png",
        "img-000003.png",
    ]
    raw = labels[5052]
    np.testing.assert_array_equal(train[1][1].numpy(), np.where(raw == 0, 255, raw - 1))
    assert train[1][1].max() <= 255 and (train[1][1][raw != 0] <= 36).all()
    with pytest.raises(LrnetError, match="no split 'val'"):
        build_dataset("sunrgbd", tmp_path, "val")


def test_sunrgbd_missing_labels_names_the_folders(tmp_path):
    save_rgb(tmp_path / "SUNRGBD-test_images/img-000001.jpg", np.zeros((8, 10, 3)))
    save_rgb(tmp_path / "SUNRGBD-test_images/img-000002.jpg", np.zeros((8, 10, 3)))
    save_index(tmp_path / "sunrgbd_train_test_labels/img-000001.png", np.zeros((8, 10)))
    with pytest.raises(DatasetError, match=r"2 images in .*SUNRGBD-test_images but 1 labels"):
        build_dataset("sunrgbd", tmp_path, "test")


# ---------------------------------------------------------------- folder


def write_folder(root: Path, stems: list[str], classes: dict, *, subfolder: str | None = None):
    rng = np.random.default_rng(4)
    (root).mkdir(parents=True, exist_ok=True)
    (root / "classes.yaml").write_text(yaml.safe_dump(classes))
    masks = {}
    for stem in stems:
        sub = Path(subfolder) if subfolder else Path()
        save_rgb(root / "images" / sub / f"{stem}.jpg", rng.integers(0, 256, (9, 11, 3)))
        mask = rng.integers(0, len(classes["names"]), (9, 11))
        mask[0, 0] = classes.get("ignore_index", 255)
        save_index(root / "masks" / sub / f"{stem}.png", mask)
        masks[stem] = mask
    return masks


def test_folder_with_split_lists_and_custom_void(tmp_path):
    classes = {
        "names": ["bg", "fg", "edge"],
        "palette": [[0, 0, 0], [9, 9, 9], [1, 2, 3]],
        "ignore_index": 99,
    }
    masks = write_folder(tmp_path, ["p", "q", "r"], classes)
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits/train.txt").write_text("r\np\n")
    (tmp_path / "splits/val.txt").write_text("q\n")
    ds = build_dataset("folder", tmp_path, "train")
    assert ds.classes == ["bg", "fg", "edge"] and ds.palette[2] == (1, 2, 3)
    assert [i.stem for i, _ in ds.samples] == ["r", "p"]
    mask = ds[0][1].numpy()
    assert mask[0, 0] == 255
    np.testing.assert_array_equal(mask, np.where(masks["r"] == 99, 255, masks["r"]))
    assert len(build_dataset("folder", tmp_path, "val")) == 1
    with pytest.raises(LrnetError, match=r"no split 'test'.*train, val"):
        build_dataset("folder", tmp_path, "test")


def test_folder_with_split_subfolders_and_json_classes(tmp_path):
    write_folder(tmp_path, ["a", "b"], {"names": ["x", "y"]}, subfolder="train")
    (tmp_path / "classes.yaml").unlink()
    (tmp_path / "classes.json").write_text('{"names": ["x", "y"]}')
    ds = build_dataset("folder", tmp_path, "train")
    assert len(ds) == 2 and ds.num_classes == 2
    assert ds.palette == VOC_PALETTE[:2]  # default palette


def test_folder_missing_mask_and_bad_class_file(tmp_path):
    write_folder(tmp_path, ["a", "b"], {"names": ["x", "y"]}, subfolder="train")
    (tmp_path / "masks/train/b.png").unlink()
    with pytest.raises(
        DatasetError, match=r"1 file\(s\) listed .* do not exist: .*masks/train/b\.png"
    ):
        build_dataset("folder", tmp_path, "train")
    (tmp_path / "classes.yaml").write_text("names: [x, y]\ncolours: [[1, 2, 3]]\n")
    with pytest.raises(DatasetError, match=r"classes\.yaml: unknown key\(s\) colours"):
        build_dataset("folder", tmp_path, "train")
    (tmp_path / "classes.yaml").write_text("names: [x, y]\nignore_index: 1\n")
    with pytest.raises(DatasetError, match=r"classes\.yaml: 'ignore_index'"):
        build_dataset("folder", tmp_path, "train")


# ---------------------------------------------------------------- read_image


def test_read_image_modes(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray, mode="L").save(tmp_path / "gray.png")
    out = read_image(tmp_path / "gray.png")
    assert out.shape == (3, 3, 4) and out.dtype == torch.float32
    np.testing.assert_allclose(out[1].numpy(), gray / 255, atol=1e-6)

    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    out = read_image(tmp_path / "rgba.png")
    assert out.shape == (3, 3, 4)
    np.testing.assert_allclose(out[0].numpy(), 200 / 255, atol=1e-6)

    deep = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    out = read_image(tmp_path / "deep.png")
    np.testing.assert_allclose(out[2, 0].numpy(), [0, 32768 / 65535, 1.0], atol=1e-6)

    save_index(tmp_path / "pal.png", np.array([[1, 2]]), VOC_PALETTE)
    out = read_image(tmp_path / "pal.png")
    np.testing.assert_allclose(out[:, 0, 1].numpy() * 255, VOC_PALETTE[2], atol=1e-4)


def test_read_image_applies_exif_rotation(tmp_path):
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, :20] = 255  # white left half
    img = Image.fromarray(array)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    out = read_image(tmp_path / "phone.jpg")
    assert out.shape == (3, 40, 20)
    assert out[:, :15].mean() > 0.9 and out[:, 25:].mean() < 0.1  # white half now on top


# ---------------------------------------------------------------- colour masks (folder)

COLOURS = [(128, 128, 128), (128, 0, 0), (0, 128, 192)]


def write_colour_folder(root: Path, classes: dict, masks: dict[str, np.ndarray]) -> None:
    """A folder dataset whose masks are RGB: class k drawn in COLOURS[k], 255 in (0, 0, 0)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.yaml").write_text(yaml.safe_dump(classes))
    table = np.array([*COLOURS, *[(0, 0, 0)] * (256 - len(COLOURS))], np.uint8)
    for stem, mask in masks.items():
        save_rgb(root / "images" / "train" / f"{stem}.png", np.zeros((*mask.shape, 3)))
        save_rgb(root / "masks" / "train" / f"{stem}.png", table[mask])


def test_folder_reads_colour_masks_in_the_class_colours(tmp_path):
    rng = np.random.default_rng(3)
    masks = {s: rng.choice([0, 1, 2, 255], (9, 11)) for s in ("a", "b")}
    classes = {
        "names": ["road", "car", "sky"],
        "palette": [list(c) for c in COLOURS],
        "void_colors": [[0, 0, 0]],
    }
    write_colour_folder(tmp_path, classes, masks)
    # Colour and index masks may be mixed: "b" is stored as indices.
    save_index(tmp_path / "masks/train/b.png", masks["b"])
    ds = build_dataset("folder", tmp_path, "train")
    assert ds.palette == COLOURS and ds.mask_colors == COLOURS
    for k, stem in enumerate(["a", "b"]):
        np.testing.assert_array_equal(ds[k][1].numpy(), masks[stem])


def test_folder_colour_mask_with_an_unknown_colour_names_the_file_colour_and_count(tmp_path):
    mask = np.zeros((6, 7), np.int64)
    write_colour_folder(tmp_path, {"names": ["a", "b", "c"], "palette": COLOURS}, {"m": mask})
    rgb = np.full((6, 7, 3), COLOURS[0], np.uint8)
    rgb[0, :4] = (10, 20, 30)
    rgb[5, 6] = (1, 1, 1)
    save_rgb(tmp_path / "masks/train/m.png", rgb)
    with pytest.raises(DatasetError) as error:
        build_dataset("folder", tmp_path, "train")[0]
    message = str(error.value)
    assert str(tmp_path / "masks/train/m.png") in message
    assert "(10, 20, 30) in 4 pixels, (1, 1, 1) in 1 pixels" in message  # most frequent first
    assert "void_colors" in message and "\n" not in message


def test_folder_colour_mask_without_colours_in_classes_yaml_says_what_to_add(tmp_path):
    write_colour_folder(tmp_path, {"names": ["a", "b", "c"]}, {"m": np.zeros((4, 4), np.int64)})
    with pytest.raises(DatasetError, match=r"m\.png is a colour \(RGB\) image .*gives no colours"):
        build_dataset("folder", tmp_path, "train")[0]


@pytest.mark.parametrize(
    ("classes", "problem"),
    [
        ({"names": ["a", "b"], "palette": [[1, 2, 3], [1, 2, 3]]}, r"\(1, 2, 3\) to two entries"),
        (
            {"names": ["a", "b"], "palette": [[1, 2, 3], [4, 5, 6]], "void_colors": [[4, 5, 6]]},
            r"\(4, 5, 6\) to two entries",
        ),
    ],
)
def test_folder_colours_must_be_unambiguous(tmp_path, classes, problem):
    write_colour_folder(tmp_path, classes, {"m": np.zeros((4, 4), np.int64)})
    with pytest.raises(DatasetError, match=problem):
        build_dataset("folder", tmp_path, "train")[0]


@pytest.mark.parametrize(
    ("classes", "problem"),
    [
        ({"names": ["a"], "void_colors": [[0, 0, 0]]}, "need 'palette' too"),
        ({"names": ["a"], "palette": [[0, 0, 0]], "void_colors": [[0, 0, 256]]}, "void_colors"),
        ({"names": ["a"], "palette": [[0, 0, True]]}, "palette"),
    ],
)
def test_folder_colour_keys_are_validated(tmp_path, classes, problem):
    write_colour_folder(tmp_path, classes, {"m": np.zeros((4, 4), np.int64)})
    with pytest.raises(DatasetError, match=problem):
        build_dataset("folder", tmp_path, "train")


def test_camvid_original_32_class_colour_labels_read_as_a_folder(tmp_path):
    """CamVid's original labels: 32 classes, each a colour, "Void" (0, 0, 0) left out."""
    names = [f"class{k}" for k in range(32)]
    palette = [((k * 37) % 256, (k * 91) % 256, (k * 53 + 1) % 256) for k in range(32)]
    assert len(set(palette)) == 32 and (0, 0, 0) not in palette
    mask = np.arange(32 * 3).reshape(8, 12) % 33  # 32 = void
    table = np.array([*palette, (0, 0, 0)], np.uint8)
    (tmp_path / "classes.yaml").write_text(
        yaml.safe_dump(
            {"names": names, "palette": [list(c) for c in palette], "void_colors": [[0, 0, 0]]}
        )
    )
    save_rgb(tmp_path / "images/train/0001TP_006690.png", np.zeros((8, 12, 3)))
    save_rgb(tmp_path / "masks/train/0001TP_006690.png", table[mask])
    ds = build_dataset("folder", tmp_path, "train")
    np.testing.assert_array_equal(ds[0][1].numpy(), np.where(mask == 32, 255, mask))


# ---------------------------------------------------------------- pixel limit, split text


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares ``width x height`` RGB pixels and that holds no pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize(("width", "height"), [(8000, 6000), (20000, 20000)])
def test_an_image_over_the_pixel_limit_is_refused_from_its_header(tmp_path, width, height):
    from lrnet.data._io import MAX_PIXELS, read_index_png

    path = png_header_only(tmp_path / "huge.png", width, height)
    for reader in (read_image, read_index_png):
        with pytest.raises(DatasetError) as error:
            reader(path)
        message = str(error.value)
        assert str(path) in message and f"{MAX_PIXELS:,} pixels" in message
        assert "LRNET_MAX_PIXELS" in message and "corrupt" not in message
        assert f"{width * height:,} pixels" in message or f"{width}x{height}" in message


def test_the_pixel_limit_is_set_by_the_environment(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    save_rgb(tmp_path / "small.png", np.zeros((10, 10, 3)))
    save_rgb(tmp_path / "big.png", np.zeros((10, 11, 3)))
    monkeypatch.setenv("LRNET_MAX_PIXELS", "100")
    assert read_image(tmp_path / "small.png").shape == (3, 10, 10)
    with pytest.raises(DatasetError, match=r"big\.png is 11x10, over lrnet's limit of 100 pixels"):
        read_image(tmp_path / "big.png")
    # Above Pillow's own bomb limit (179 M pixels): the header is read, the missing data found.
    monkeypatch.setenv("LRNET_MAX_PIXELS", "500000000")
    pillow_limit = PILImage.MAX_IMAGE_PIXELS
    with pytest.raises(DatasetError, match="corrupt or truncated"):
        read_image(png_header_only(tmp_path / "huge.png", 20000, 20000))
    assert pillow_limit == PILImage.MAX_IMAGE_PIXELS  # restored
    monkeypatch.setenv("LRNET_MAX_PIXELS", "lots")
    with pytest.raises(LrnetError, match="LRNET_MAX_PIXELS='lots'"):
        read_image(tmp_path / "small.png")


@pytest.mark.parametrize("dataset", ["camvid", "folder", "voc"])
def test_a_split_file_that_is_not_utf8_is_an_error_naming_it(tmp_path, dataset):
    if dataset == "camvid":
        make_camvid(tmp_path, ["a"])
        list_file = tmp_path / "train.txt"
    elif dataset == "folder":
        write_folder(tmp_path, ["a"], {"names": ["x", "y"]})
        list_file = tmp_path / "splits" / "train.txt"
        list_file.parent.mkdir()
    else:
        write_voc(tmp_path, {"train": ["a"]})
        list_file = next(tmp_path.rglob("ImageSets/Segmentation/train.txt"))
    list_file.write_bytes(b"a\n\xff\xfeb\n")
    with pytest.raises(DatasetError, match=rf"{list_file}.*not UTF-8.*byte 0xff on line 2"):
        build_dataset(dataset, tmp_path, "train")


# ---------------------------------------------------------------- real CamVid (skipped when absent)


def test_real_camvid_counts_and_label_values(camvid: Path):
    train = build_dataset("camvid", camvid, "train")
    val = build_dataset("camvid", camvid, "val")
    assert (len(train), len(val)) == (367, 101)
    assert train.samples[0][0] == camvid / "train/0001TP_006690.png"
    image, mask = train[0]
    assert image.shape == (3, 360, 480) and mask.shape == (360, 480)
    for ds in (train, val):
        for k in range(len(ds)):
            # read_mask raises on any value outside 0..10 and void; check what it returns too.
            values = np.flatnonzero(np.bincount(ds.read_mask(k).numpy().ravel(), minlength=256))
            assert set(values.tolist()) <= {*range(11), 255}, ds.samples[k][1]


def test_empty_split_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "classes.yaml").write_text("names: [a, b]\n")
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "masks" / "train").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"folder split 'train' in .* has no samples"):
        build_dataset("folder", tmp_path, "train")
