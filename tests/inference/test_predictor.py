"""Prediction: images of any size and mode, the four output files, checkpoints and their errors."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _helpers import TINY_CLASSES, TINY_PALETTE, tiny_model, write_tiny_checkpoint
from lrnet import LrnetError, checkpoint, pretrained
from lrnet.cli import main
from lrnet.config import load_config
from lrnet.data import LABEL_MAPS
from lrnet.data.transforms import resize_image
from lrnet.inference.image import run_size
from lrnet.inference.outputs import OUTPUT_SUFFIXES, read_ground_truth
from lrnet.inference.predictor import Predictor

NUM_CLASSES, CLASSES, PALETTE = len(TINY_CLASSES), TINY_CLASSES, TINY_PALETTE


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt")


def _final_argmax(model: torch.nn.Module, pixels: np.ndarray) -> np.ndarray:
    """Argmax of the final logits for ``(H, W, 3)`` uint8 or float pixels, computed here."""
    if pixels.dtype == np.uint8:
        pixels = pixels.astype(np.float32) / 255.0
    images = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    with torch.no_grad():
        return model(images)[-1][0].argmax(0).numpy()


def _rgb(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _write_inputs(folder: Path) -> dict[str, tuple[tuple[int, int], np.ndarray | None]]:
    """Images of several modes and odd sizes; stem -> ((H, W) as displayed, RGB the model sees)."""
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, tuple[tuple[int, int], np.ndarray | None]] = {}

    rgb = _rgb(45, 71, 1)
    Image.fromarray(rgb).save(folder / "odd_rgb.png")
    expected["odd_rgb"] = ((45, 71), rgb)

    gray = _rgb(33, 50, 2)[:, :, 0]
    Image.fromarray(gray).save(folder / "gray.png")
    expected["gray"] = ((33, 50), np.repeat(gray[:, :, None], 3, axis=2))

    rgba = np.concatenate([_rgb(40, 37, 3), np.full((40, 37, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba).save(folder / "rgba.png")
    expected["rgba"] = ((40, 37), rgba[:, :, :3])

    deep = np.random.default_rng(4).integers(0, 65536, (50, 39), dtype=np.uint16)
    Image.fromarray(deep).save(folder / "deep16.png")
    with Image.open(folder / "deep16.png") as check:
        assert check.mode.startswith("I"), check.mode  # really stored as 16 bits
    scaled = deep.astype(np.float32) / 65535.0
    expected["deep16"] = ((50, 39), np.repeat(scaled[:, :, None], 3, axis=2))

    # A phone photo: stored 40 high x 64 wide, EXIF orientation 6 = shown rotated 90° clockwise.
    stored = Image.fromarray(_rgb(40, 64, 5))
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(folder / "phone.jpg", exif=exif.tobytes(), quality=95)
    with Image.open(folder / "phone.jpg") as decoded:
        upright = np.rot90(np.asarray(decoded.convert("RGB")), k=-1)  # clockwise
    expected["phone"] = ((64, 40), np.ascontiguousarray(upright))

    # Under 32 pixels on a side: scaled up for the network, labels at the input's size.
    Image.fromarray(_rgb(20, 27, 6)).save(folder / "tiny.png")
    expected["tiny"] = ((20, 27), None)
    return expected


@pytest.fixture(scope="module")
def predicted(ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """``lrnet predict`` run once on a folder of the test images."""
    root = tmp_path_factory.mktemp("predict")
    expected = _write_inputs(root / "in")
    out = root / "out"
    assert main(["predict", str(ckpt), str(root / "in"), "--out", str(out), "--device", "cpu"]) == 0
    return out, expected


@pytest.mark.parametrize("stem", ["odd_rgb", "gray", "rgba", "deep16", "phone", "tiny"])
def test_predict_writes_four_outputs_at_the_input_size(
    ckpt: Path, predicted: tuple[Path, dict], stem: str
) -> None:
    out, expected = predicted
    (height, width), pixels = expected[stem]
    label_img, color, over, stages = (Image.open(out / f"{stem}{s}") for s in OUTPUT_SUFFIXES)
    assert label_img.mode == "L"
    assert label_img.size == color.size == over.size == (width, height)
    assert color.mode == over.mode == stages.mode == "RGB"
    assert stages.width > 3 * stages.height  # a row of seven tiles: input, s_1 .. s_6
    labels = np.asarray(label_img)
    assert labels.max() < NUM_CLASSES
    colors = np.asarray(color).reshape(-1, 3)
    assert {tuple(c) for c in colors} <= set(PALETTE)  # the checkpoint's palette is used
    if pixels is not None:
        model = pretrained.load_model(ckpt).model
        np.testing.assert_array_equal(labels, _final_argmax(model, pixels))


def test_predictions_are_not_constant(predicted: tuple[Path, dict]) -> None:
    # Otherwise the argmax comparisons above would prove little.
    out, _ = predicted
    assert len(np.unique(np.asarray(Image.open(out / "odd_rgb_label.png")))) > 1


def test_stage_maps_have_their_own_resolution_and_probabilities_sum_to_one(ckpt: Path) -> None:
    predictor = Predictor.from_pretrained(ckpt)
    image = torch.rand(3, 45, 71)
    result = predictor.predict(image, probabilities=True)
    shapes = [tuple(s.shape) for s in result.stage_labels]
    assert shapes == [(2, 3), (3, 5), (6, 9), (12, 18), (23, 36), (45, 71)]
    assert result.labels.shape == (45, 71) and result.labels.dtype == np.int64
    assert result.probabilities is not None and result.probabilities.shape == (NUM_CLASSES, 45, 71)
    np.testing.assert_allclose(result.probabilities.sum(0), np.ones((45, 71)), rtol=0, atol=1e-5)
    assert np.array_equal(result.probabilities.argmax(0), result.labels)
    assert np.array_equal(result.stage_labels[-1], result.labels)  # native size: same map
    # a PIL image of the same pixels gives the same labels
    pil = Image.fromarray((image * 255).round().byte().permute(1, 2, 0).numpy())
    again = predictor.predict(torch.from_numpy(np.asarray(pil, np.float32) / 255).permute(2, 0, 1))
    assert np.array_equal(predictor.predict(pil).labels, again.labels)


class Recorder:
    """A backend that runs a PyTorch model as is and keeps every batch it was given."""

    name = "torch"
    precision = "fp32"

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.inputs: list[torch.Tensor] = []
        self.outputs: list[list[torch.Tensor]] = []

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        batch = torch.from_numpy(np.array(images))  # backends are handed numpy arrays
        self.inputs.append(batch)
        with torch.no_grad():
            self.outputs.append([s.float() for s in self.model(batch)])
        return [s.numpy() for s in self.outputs[-1]]


def test_eval_size_fits_the_image_inside_pads_and_maps_labels_back() -> None:
    recorder = Recorder(tiny_model())
    predictor = Predictor(recorder, eval_size=(64, 96), num_classes=NUM_CLASSES)
    image = torch.rand(3, 45, 71)
    result = predictor.predict(image)
    # 45 x 71 scaled by min(64 / 45, 96 / 71) = 1.352 keeps its aspect: 61 x 96, then 3 rows of 0
    (batch,) = recorder.inputs
    assert batch.shape == (1, 3, 64, 96)
    torch.testing.assert_close(batch[0, :, :61], resize_image(image, (61, 96)))
    assert batch[0, :, 61:].abs().max() == 0
    assert result.labels.shape == (45, 71)
    assert tuple(result.stage_labels[-1].shape) == (61, 96)  # the padding is cut off
    assert tuple(result.stage_labels[0].shape) == (2, 3)  # ceil(61 / 32) rows of s_1 cover it
    logits = recorder.outputs[0][-1][:, :, :61, :96]
    expected = resize_image(logits, (45, 71)).argmax(1)[0]
    assert np.array_equal(result.labels, expected.numpy())


def test_a_portrait_image_is_not_squashed_into_a_landscape_run_size() -> None:
    recorder = Recorder(tiny_model())
    predictor = Predictor(recorder, eval_size=(64, 96), num_classes=NUM_CLASSES)
    result = predictor.predict(torch.rand(3, 100, 40))
    (batch,) = recorder.inputs
    assert batch.shape == (1, 3, 64, 96)
    # 100 x 40 -> 64 x 26 (aspect 0.4 kept), the other 70 columns are padding
    assert batch[0, :, :, 26:].abs().max() == 0 and batch[0, :, :, 25].abs().max() > 0
    assert result.labels.shape == (100, 40)
    assert tuple(result.stage_labels[-1].shape) == (64, 26)


def test_memory_is_bounded_without_a_run_size_too() -> None:
    recorder = Recorder(tiny_model())
    predictor = Predictor(recorder, num_classes=NUM_CLASSES)
    result = predictor.predict(torch.rand(3, 60, 2100))
    # longer side to MAX_SIDE (1024): 29 x 1024, padded to the network's minimum of 32 rows
    assert recorder.inputs[0].shape == (1, 3, 32, 1024)
    assert result.labels.shape == (60, 2100)


@pytest.mark.parametrize(
    ("size", "expected"), [((45, 71), (45, 71)), ((20, 27), (32, 43)), ((10, 300), (32, 960))]
)
def test_run_size_scales_small_inputs_up_keeping_the_aspect(size: tuple, expected: tuple) -> None:
    assert run_size(*size) == expected
    assert run_size(*size, eval_size=[360, 480]) == (360, 480)


def test_camvid_image_with_ground_truth(ckpt: Path, tmp_path: Path, camvid: Path) -> None:
    image = sorted((camvid / "val").glob("*.png"))[0]
    with_gt, without = tmp_path / "gt", tmp_path / "plain"
    # --gt as a folder, matched by stem
    gt_args = ["--gt", str(camvid / "valannot")]
    assert main(["predict", str(ckpt), str(image), "--out", str(with_gt), *gt_args]) == 0
    assert main(["predict", str(ckpt), str(image), "--out", str(without), "--device", "cpu"]) == 0
    for suffix in OUTPUT_SUFFIXES:
        assert (with_gt / f"{image.stem}{suffix}").is_file()
    assert Image.open(with_gt / f"{image.stem}_label.png").size == (480, 360)
    panel = Image.open(with_gt / f"{image.stem}_stages.png")
    plain = Image.open(without / f"{image.stem}_stages.png")
    # one more tile (the ground truth): input + 6 stages + GT = 8 equal tiles plus padding
    tile = panel.width - plain.width
    assert tile > 100 and abs(panel.width - 8 * tile) <= 8


def test_ground_truth_file_of_another_size_skips_the_image(
    ckpt: Path, tmp_path: Path, capsys
) -> None:
    Image.fromarray(_rgb(40, 50, 7)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((41, 50), np.uint8)).save(tmp_path / "a_gt.png")
    args = ["predict", str(ckpt), str(tmp_path / "a.png"), "--out", str(tmp_path / "out")]
    assert main([*args, "--gt", str(tmp_path / "a_gt.png")]) == 2
    assert "a_gt.png is 41x50" in capsys.readouterr().err


def test_ground_truth_in_a_datasets_encoding_is_translated(tmp_path: Path) -> None:
    raw = np.array([[0, 1, 2], [37, 38, 255]], np.uint8)  # SUN RGB-D: 0 void, 1..37 classes
    Image.fromarray(raw).save(tmp_path / "gt.png")
    as_classes = read_ground_truth(tmp_path / "gt.png", (2, 3), LABEL_MAPS["sunrgbd"])
    assert as_classes.tolist() == [[255, 0, 1], [36, 255, 255]]
    assert read_ground_truth(tmp_path / "gt.png", (2, 3)).tolist() == raw.tolist()


def test_a_colour_ground_truth_is_read_through_the_models_palette(tmp_path: Path) -> None:
    palette = [(128, 128, 128), (128, 0, 0), (192, 192, 128)]
    colours = np.array([[palette[2], palette[0], (0, 0, 0)], [palette[1], (1, 2, 3), palette[2]]])
    Image.fromarray(colours.astype(np.uint8)).save(tmp_path / "gt.png")
    mask = read_ground_truth(tmp_path / "gt.png", (2, 3), palette=palette)
    assert mask.tolist() == [[2, 0, 255], [1, 255, 2]]  # colours outside the palette: void
    with pytest.raises(LrnetError, match=r"gt\.png is a colour \(RGB\) image"):
        read_ground_truth(tmp_path / "gt.png", (2, 3))
    with pytest.raises(LrnetError, match=r"gt\.png is 2x3"):
        read_ground_truth(tmp_path / "gt.png", (3, 2), palette=palette)


def test_predictor_takes_the_label_map_of_the_checkpoints_dataset(tmp_path: Path) -> None:
    overrides = [f"model.num_classes={NUM_CLASSES}", "model.width=0.125"]
    for dataset, expected in (("sunrgbd", LABEL_MAPS["sunrgbd"]), ("folder", None)):
        config = load_config(None, [*overrides, f"data.dataset={dataset}"])
        path = tmp_path / f"{dataset}.pt"
        checkpoint.save_checkpoint(path, checkpoint.training_state(tiny_model(), config))
        label_map = Predictor.from_pretrained(path, backend="torch", precision="fp32").label_map
        if expected is None:
            assert label_map is None
        else:
            assert label_map is not None and np.array_equal(label_map, expected)


def test_pretrained_round_trip_gives_identical_outputs(ckpt: Path, tmp_path: Path) -> None:
    loaded = pretrained.load_model(ckpt)
    folder = pretrained.save_pretrained(
        loaded.model,
        loaded.config,
        tmp_path / "pretrained",
        classes=loaded.classes,
        palette=PALETTE,
    )
    image = torch.rand(3, 37, 53)
    first = Predictor.from_pretrained(ckpt).predict(image, probabilities=True)
    second = Predictor.from_pretrained(folder).predict(image, probabilities=True)
    assert np.array_equal(first.labels, second.labels)
    assert first.probabilities is not None and second.probabilities is not None
    assert np.array_equal(first.probabilities, second.probabilities)
    assert pretrained.load_model(folder).classes == CLASSES


def test_truncated_checkpoint_is_refused_with_its_name(ckpt: Path, tmp_path: Path, capsys) -> None:
    broken = tmp_path / "broken.pt"
    data = ckpt.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(LrnetError, match=r"broken\.pt"):
        pretrained.load_model(broken)
    Image.fromarray(_rgb(40, 40, 8)).save(tmp_path / "x.png")
    rc = main(["predict", str(broken), str(tmp_path / "x.png"), "--out", str(tmp_path / "out")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "broken.pt" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "x_label.png").exists()


def test_unreadable_image_is_skipped_and_the_rest_written(
    ckpt: Path, tmp_path: Path, capsys
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(_rgb(40, 40, 9)).save(inputs / "good.png")
    good = (inputs / "good.png").read_bytes()
    (inputs / "bad.png").write_bytes(good[: len(good) // 3])
    out = tmp_path / "out"
    # a glob pattern as input
    assert main(["predict", str(ckpt), str(inputs / "*.png"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad.png" in err and "1 of 2 images were skipped" in err
    assert (out / "good_label.png").is_file() and not (out / "bad_label.png").exists()


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (["missing.png"], "does not exist"),
        (["empty"], "holds no image"),
        (["*.nothing"], "holds no"),
    ],
)
def test_bad_inputs_are_named(
    ckpt: Path, tmp_path: Path, capsys, inputs: list, message: str
) -> None:
    (tmp_path / "empty").mkdir()
    paths = [str(tmp_path / i) for i in inputs]
    assert main(["predict", str(ckpt), *paths, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err


def test_single_gt_file_with_several_inputs_is_an_error(ckpt: Path, tmp_path: Path, capsys) -> None:
    for name in ("a", "b"):
        Image.fromarray(_rgb(40, 40, 10)).save(tmp_path / f"{name}.png")
    args = [str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--gt", str(tmp_path / "a.png")]
    assert main(["predict", str(ckpt), *args, "--out", str(tmp_path / "out")]) == 2
    assert "single mask" in capsys.readouterr().err


def test_predict_help_lists_its_options(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--gt" in out and "--out" in out and "_stages.png" in out


def test_rerun_into_the_input_folder_skips_earlier_outputs(ckpt: Path, tmp_path: Path) -> None:
    Image.fromarray(_rgb(40, 40, 11)).save(tmp_path / "scene.png")
    for _ in range(2):
        assert main(["predict", str(ckpt), str(tmp_path), "--out", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["scene.png", *(f"scene{s}" for s in OUTPUT_SUFFIXES)])


@pytest.fixture(scope="module")
def torch_predictor(ckpt: Path) -> Predictor:
    return Predictor.from_pretrained(ckpt, backend="torch", precision="fp32")


def test_numpy_uint8_float_and_pil_inputs_give_the_same_labels(torch_predictor: Predictor) -> None:
    rgb = _rgb(37, 53, 12)  # (H, W, 3) uint8 RGB, as video decoders hand frames over
    as_float = torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)
    expected = torch_predictor.predict(as_float).labels
    inputs = [
        rgb,
        rgb.astype(np.float32) / 255,  # numpy float in [0, 1]
        torch.from_numpy(rgb).permute(2, 0, 1),  # uint8 (3, H, W)
        Image.fromarray(rgb),
        np.ascontiguousarray(rgb[..., ::-1])[..., ::-1],  # a flipped view (negative strides)
    ]
    for image in inputs:
        result = torch_predictor.predict(image)
        assert np.array_equal(result.labels, expected), type(image)
        assert np.array_equal(result.image, as_float.numpy())


def test_read_only_numpy_images_give_no_warning(torch_predictor: Predictor) -> None:
    rgb = _rgb(37, 53, 12)
    expected = torch_predictor.predict(rgb).labels
    for image in (rgb.copy(), rgb.astype(np.float32) / 255):
        image.flags.writeable = False  # as np.frombuffer, memory maps and some decoders give
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # torch.from_numpy's "not writable" UserWarning
            result = torch_predictor.predict(image)
        assert np.array_equal(result.labels, expected) and not image.flags.writeable


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (torch.full((3, 40, 40), 255.0), r"from 255 to 255; float images must be in \[0, 1\]"),
        (torch.full((3, 40, 40), -0.5), r"from -0.5 to -0.5; float images must be in \[0, 1\]"),
        (torch.full((3, 40, 40), float("nan")), "NaN"),
        (np.full((40, 40, 3), 2.0, np.float32), r"must be in \[0, 1\] \(divide"),
        (torch.zeros(3, 40, 40, dtype=torch.int32), "uint8 or float"),
        (torch.zeros(4, 40, 40), r"\(3, H, W\)"),
        (torch.zeros(2, 3, 40, 40), r"as a list \(list\(images\)"),
        (np.zeros((40, 40, 4), np.uint8), r"\(H, W, 3\)"),
        (np.zeros((40, 40, 3), np.int64), "uint8 or float numpy"),
        (42, "cannot predict on a int"),
    ],
)
def test_bad_inputs_are_refused_with_the_reason(
    torch_predictor: Predictor, image: object, message: str
) -> None:
    with pytest.raises(LrnetError, match=message):
        torch_predictor.predict(image)  # type: ignore[arg-type]


@pytest.mark.parametrize("image", [None, {"path": "x.png"}, 42, b"\x89PNG"])
def test_an_image_of_another_type_is_a_type_error_naming_it(
    torch_predictor: Predictor, image: object
) -> None:
    """Issue 21: None, a dict or bytes were a plain LrnetError that did not name the argument."""
    with pytest.raises(TypeError, match=r"^image: cannot predict on a \w+; give a path"):
        torch_predictor.predict(image)  # type: ignore[arg-type]


def test_a_closed_or_truncated_pil_image_is_a_value_error_naming_it(
    torch_predictor: Predictor, tmp_path: Path
) -> None:
    closed = Image.new("RGB", (40, 40))
    closed.close()
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (9, 99, 199)).save(buffer, "PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    for image in (closed, Image.open(cut)):
        with pytest.raises(ValueError, match=r"^image: cannot read .*give an open, complete PIL"):
            torch_predictor.predict(image)


def test_a_stem_too_long_for_a_file_name_is_a_value_error(
    torch_predictor: Predictor, tmp_path: Path
) -> None:
    """Issue 21: save(prediction, folder, "x" * 250) raised the file system's raw OSError."""
    prediction = torch_predictor.predict(torch.rand(3, 40, 40))
    with pytest.raises(ValueError, match="at most 243 bytes"):
        torch_predictor.save(prediction, tmp_path, "x" * 250)
    assert list(tmp_path.iterdir()) == []
    assert len(torch_predictor.save(prediction, tmp_path, "x" * 243)) == 4


def test_a_stem_that_is_not_utf8_is_measured_in_bytes(tmp_path: Path) -> None:
    """A Latin-1 file name (surrogate escapes in its stem) is a name like any other."""
    from lrnet.inference.outputs import image_output_paths, video_output_paths

    stem = os.fsdecode(b"caf\xe9")
    assert image_output_paths(tmp_path, stem)[0].name == f"{stem}_label.png"
    assert video_output_paths(tmp_path, stem)[0].name == f"{stem}_overlay.mp4"
    with pytest.raises(ValueError, match="at most 243 bytes"):
        video_output_paths(tmp_path, os.fsdecode(b"\xe9" * 250))


def test_a_list_of_any_sizes_is_batched_where_sizes_allow() -> None:
    recorder = Recorder(tiny_model())
    predictor = Predictor(recorder, num_classes=NUM_CLASSES, batch_size=2)
    images = [torch.rand(3, 40, 48), torch.rand(3, 33, 70), torch.rand(3, 40, 48)]
    images.append(images[0].clone())
    results = predictor.predict(images)
    assert [tuple(r.labels.shape) for r in results] == [(40, 48), (33, 70), (40, 48), (40, 48)]
    # same sizes share a call (at most batch_size at a time), the odd one runs on its own
    assert sorted(tuple(b.shape) for b in recorder.inputs) == [
        (1, 3, 33, 70),
        (1, 3, 40, 48),
        (2, 3, 40, 48),
    ]
    for image, result in zip(images, results, strict=True):
        alone = predictor.predict(image)
        assert (alone.labels == result.labels).mean() > 0.999  # batched: float rounding
    assert np.array_equal(results[0].image, images[0].numpy())
    # with a run size every image shares one canvas, so the whole list is one batch
    recorder = Recorder(tiny_model())
    fitted = Predictor(recorder, eval_size=(64, 64), num_classes=NUM_CLASSES)
    assert len(fitted.predict(list(torch.rand(3, 3, 50, 70)))) == 3
    assert len(fitted.predict(tuple(images[:3]))) == 3
    assert [tuple(b.shape) for b in recorder.inputs] == [(3, 3, 64, 64), (3, 3, 64, 64)]


def test_labels_at_full_size_equal_the_argmax_of_the_whole_resize() -> None:
    from lrnet.inference.image import labels_at, resize

    logits = np.random.default_rng(0).standard_normal((NUM_CLASSES, 23, 31)).astype(np.float32)
    whole = resize(logits, (301, 403))
    assert np.array_equal(labels_at(logits, (301, 403)), whole.argmax(0))
    # and PyTorch's bilinear resize of the same logits: equal up to float rounding at ties
    torch_labels = resize_image(torch.from_numpy(logits)[None], (301, 403))[0].argmax(0)
    assert (labels_at(logits, (301, 403)) == torch_labels.numpy()).mean() > 0.9999


def test_labels_break_ties_to_the_first_class_in_any_memory_layout() -> None:
    from lrnet.inference.image import labels_at

    # small integers make many ties; channels-last is how the backends may hand stages back
    logits = np.random.default_rng(1).integers(0, 3, (NUM_CLASSES, 17, 23)).astype(np.float32)
    last = np.ascontiguousarray(logits.transpose(1, 2, 0)).transpose(2, 0, 1)
    for stage in (logits, last):
        assert np.array_equal(labels_at(stage, (17, 23)), logits.argmax(0))
    tie = np.zeros((NUM_CLASSES, 2, 2), np.float32)
    tie[2:] = 1.0  # classes 2.. share the maximum
    assert (labels_at(tie, (2, 2)) == 2).all() and (labels_at(tie, (5, 7)) == 2).all()


def test_the_numpy_resize_equals_pytorchs_antialiased_resize() -> None:
    from lrnet.inference.image import resize

    logits = np.random.default_rng(2).standard_normal((1, NUM_CLASSES, 9, 13)).astype(np.float32)
    for size in ((40, 57), (5, 6), (9, 40)):  # enlarging, shrinking (antialiased), mixed
        expected = resize_image(torch.from_numpy(logits), size).numpy()
        np.testing.assert_allclose(resize(logits, size), expected, rtol=0, atol=1e-5)


def test_float_and_32_bit_images_read_as_the_datasets_read_them(tmp_path: Path) -> None:
    from lrnet.data._io import read_image
    from lrnet.inference.image import load_image

    ramp = np.linspace(0.0, 1.0, 12 * 16, dtype=np.float32).reshape(12, 16)
    Image.fromarray(ramp, mode="F").save(tmp_path / "ramp.tif")
    deep = (ramp * 65535).astype(np.int32)
    Image.fromarray(deep, mode="I").save(tmp_path / "deep.tif")
    for name, expected in (("ramp.tif", ramp), ("deep.tif", deep / 65535.0)):
        path = tmp_path / name
        with Image.open(path) as image:
            from_pil = load_image(image)
        assert isinstance(from_pil, np.ndarray) and from_pil.dtype == np.float32
        torch.testing.assert_close(torch.from_numpy(from_pil), read_image(path))  # one rule
        np.testing.assert_allclose(from_pil[1], expected.astype(np.float32), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("values", "mode"),
    [
        (np.float32(255.0), "F"),
        (np.float32("nan"), "F"),
        (np.int32(70000), "I"),
        (np.int32(200), "I"),  # 8-bit values in a 32-bit image: not divided by 65535
    ],
)
def test_out_of_range_float_or_32_bit_images_are_errors_not_clipped(
    tmp_path: Path, values: np.generic, mode: str
) -> None:
    from lrnet.data._io import read_image
    from lrnet.inference.image import load_image

    pixels = np.zeros((8, 8), dtype=values.dtype)
    pixels[2, 3] = values
    path = tmp_path / "odd.tif"
    Image.fromarray(pixels, mode=mode).save(path)
    with pytest.raises(LrnetError, match=rf"odd\.tif is a mode {mode}.* image.*8-bit or 16-bit"):
        read_image(path)
    with Image.open(path) as image, pytest.raises(LrnetError, match=r"odd\.tif"):
        load_image(image)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((0, 5), np.uint8),
        Image.new("RGB", (0, 3)),
        torch.zeros(3, 4, 0),
        torch.empty(3, 4, 4, device="meta"),
    ],
    ids=["numpy-0x0", "gray-0x5", "pil-3x0", "tensor-4x0", "meta"],
)
def test_an_image_without_pixels_is_a_clear_error(image: object) -> None:
    predictor = Predictor(tiny_model(), eval_size=(32, 32), num_classes=NUM_CLASSES)
    with pytest.raises(LrnetError, match=r"no pixels|empty|meta device"):
        predictor.predict(image)  # type: ignore[arg-type]
