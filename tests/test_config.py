"""The config schema: YAML, overrides, validation, and every shipped config."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrnet import LrnetError
from lrnet.config import from_dict, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_file_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 1e-3\n  iterations: 10\ndata:\n  crop_size: [64, 96]\n")
    config = load_config(path, ["optim.lr=0.02", "model.name=segnet", "data.class_weights=[1, 2]"])
    assert config.optim.lr == 0.02 and config.optim.iterations == 10
    assert config.data.crop_size == [64, 96] and config.model.name == "segnet"
    assert config.data.class_weights == [1.0, 2.0]
    assert from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=1", "unknown config key 'optim.lrr'"),
        ("nope.x=1", "unknown config key 'nope'"),
        ("optim.lr=fast", "optim.lr must be a number"),
        ("model.name=unet", "model.name='unet' is not one of"),
        ("data.crop_size=[16, 16]", "data.crop_size must be"),
        ("optim.iterations=0", "optim.iterations must be positive"),
        ("run.compile=maybe", "run.compile must be true or false"),
        ("justtext", "not of the form"),
        ("data.ignore_index=11", "data.ignore_index=11"),
        ("data.class_weights=median_freq", "'median_freq' is not one of"),
    ],
)
def test_bad_values_are_named(override: str, message: str) -> None:
    with pytest.raises(LrnetError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config(None, [override])


def test_unknown_key_in_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  widht: 0.5\n")
    with pytest.raises(LrnetError, match=r"bad.yaml: unknown config key 'model.widht'"):
        load_config(path)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_parse(path: Path) -> None:
    assert path.read_text().startswith("#"), "a shipped config opens with the command that runs it"
    assert "lrnet " in path.read_text().splitlines()[1]
    load_config(path)


def test_paper_camvid_recipe() -> None:
    c = load_config(Path(__file__).resolve().parents[1] / "configs" / "camvid_paper.yaml")
    assert (c.optim.optimizer, c.optim.lr, c.optim.momentum, c.optim.weight_decay) == (
        "sgd",
        1e-3,
        0.9,
        5e-4,
    )
    assert (c.data.batch_size, c.optim.iterations, c.optim.milestones) == (10, 80_000, [50_000])
    assert c.data.crop_size == [360, 480] and c.data.class_weights == "median_frequency"
    assert c.model.encoder.startswith("vgg16") and c.model.width == 1.0


def test_dotted_override_into_options_keeps_the_other_options(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  options: {num_train: 10, seed: 3}\n")
    config = load_config(path, ["data.options.seed=4"])
    assert config.data.options == {"num_train": 10, "seed": 4}
