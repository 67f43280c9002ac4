"""The config schema: YAML, overrides, validation, and every shipped config."""

from __future__ import annotations

import typing
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
    ("override", "key"),
    [
        ("optim.lrr=1", "optim.lrr"),
        ("nope.x=1", "nope"),
        ("optim.lr=fast", "optim.lr"),
        ("optim.lr=.nan", "optim.lr"),
        ("model.name=unet", "model.name"),
        ("data.crop_size=[16, 16]", "data.crop_size"),
        ("optim.iterations=0", "optim.iterations"),
        ("run.compile=maybe", "run.compile"),
        ("data.ignore_index=11", "data.ignore_index"),
        ("data.class_weights=median_freq", "data.class_weights"),
        # Values that would silently change what is computed (issue 13, section 2).
        ("optim.grad_clip=-1", "optim.grad_clip"),
        ("optim.warmup_factor=-1", "optim.warmup_factor"),
        ("optim.gamma=-1", "optim.gamma"),
        ("optim.power=-1", "optim.power"),
        ("optim.milestones=[300, 100]", "optim.milestones"),
        ("data.class_weights=[-1, 1]", "data.class_weights"),
        ("data.class_weights=[0, 0]", "data.class_weights"),
        ("optim.weight_decay=-0.1", "optim.weight_decay"),
        ("data.color_jitter=-1", "data.color_jitter"),
        ("optim.momentum=-1", "optim.momentum"),
        ("model.skip_channels=0", "model.skip_channels"),
        ("loss.stage_weights=[1, -1]", "loss.stage_weights"),
        ("data.num_workers=-1", "data.num_workers"),
        ("data.scale_range=[2, 1]", "data.scale_range"),
    ],
)
def test_bad_values_are_errors_naming_the_key(override: str, key: str) -> None:
    with pytest.raises(LrnetError) as info:
        load_config(None, [override])
    assert key in str(info.value)


@pytest.mark.parametrize("override", ["justtext", "=3", "optim.lr=[1, 2"])
def test_malformed_overrides_are_named(override: str) -> None:
    with pytest.raises(LrnetError) as info:
        load_config(None, [override])
    assert repr(override) in str(info.value)


def test_skip_channels_is_an_lrn_option() -> None:
    assert load_config(None, ["model.skip_channels=8"]).model.skip_channels == 8
    with pytest.raises(LrnetError, match=r"model\.skip_channels"):
        load_config(None, ["model.name=segnet", "model.skip_channels=8"])


def test_choices_come_from_what_they_choose_between() -> None:
    from lrnet.config import Config, choices
    from lrnet.data import DATASETS
    from lrnet.data.class_weights import METHODS
    from lrnet.loss import LOSS_MODES
    from lrnet.models import MODELS
    from lrnet.models.encoder import ENCODERS

    hints = {
        section: typing.get_type_hints(type(getattr(Config(), section)))
        for section in ("model", "data", "loss")
    }
    assert set(choices(hints["model"]["name"])) == set(MODELS)
    assert set(choices(hints["model"]["encoder"])) == set(ENCODERS)
    assert set(choices(hints["data"]["dataset"])) == set(DATASETS)
    assert set(choices(hints["data"]["class_weights"])) == set(METHODS)
    assert set(choices(hints["loss"]["mode"])) == set(LOSS_MODES)


def test_reference_page_is_current() -> None:
    from lrnet.config import reference

    page = Path(__file__).resolve().parents[1] / "docs" / "config.md"
    assert page.read_text() == reference(), "regenerate docs/config.md (see its first lines)"


def test_shipped_configs_are_found_by_name(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # far from the checkout
    assert load_config("camvid_cpu").data.dataset == "camvid"
    with pytest.raises(LrnetError, match="camvid_cpu"):  # the message lists what ships
        load_config("camvid_cpux")


def test_options_can_be_cleared() -> None:
    for value in ("{}", "null"):
        assert load_config("synthetic", [f"data.options={value}"]).data.options == {}


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
