"""lrnet save-pretrained: a fine-tuned run's card carries its command, scores and parent's terms."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from lrnet import zoo
from lrnet.checkpoint import load_checkpoint
from lrnet.cli import main as cli
from lrnet.config import from_dict
from lrnet.pretrained import data_licence, load_model, save_pretrained
from test_train import SYNTHETIC, read_history, tiny_overrides


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-iteration run on the synthetic data started from camvid-lite, through the CLI."""
    tmp_path = tmp_path_factory.mktemp("finetune")
    camvid_lite = {"model.init": "camvid-lite", "model.width": "0.25", "model.skip_channels": "32"}
    overrides = tiny_overrides(tmp_path, iterations=6, **camvid_lite)
    assert cli(["train", str(SYNTHETIC), *overrides]) == 0
    return tmp_path / "run"


def test_the_card_of_a_model_fine_tuned_from_camvid_lite(
    finetuned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = load_checkpoint(finetuned / "best.pt")
    command = state["command"]
    assert shlex.split(command)[:3] == ["lrnet", "train", str(SYNTHETIC)]
    assert "model.init=camvid-lite" in shlex.split(command)

    out = tmp_path / "my-model"
    assert cli(["save-pretrained", str(finetuned / "best.pt"), str(out)]) == 0
    assert f"-> {out}/" in capsys.readouterr().out
    card = (out / "README.md").read_text()
    assert f"```\n{command}\n```" in card
    # The run's scores at best.pt's iteration, stage by stage, from its history.
    (record,) = [r for r in read_history(finetuned) if r["kind"] == "val" and r["iteration"] == 6]
    row = " | ".join(f"{100 * s['miou']:.1f}" for s in record["stages"])
    assert f"| {row} |" in card and "at iteration 6 (its history.jsonl)" in card
    # camvid-lite's terms travel with anything started from it.
    assert "Fine-tuned from `camvid-lite`" in card
    assert f"started from camvid-lite, whose terms it keeps: {zoo.CAMVID_LICENCE}" in card
    meta = json.loads((out / "config.json").read_text())
    assert meta["init"] == "camvid-lite" and "CC BY-NC 4.0" in meta["licence"]
    assert meta["val_miou"] == [100 * s["miou"] for s in record["stages"]]
    assert load_model(out).classes == state["classes"]


def test_licences_follow_the_model_a_run_started_from(tmp_path: Path) -> None:
    camvid = {"dataset": "camvid"}
    assert data_licence(from_dict({"data": camvid})) == zoo.CAMVID_LICENCE
    from_lite = from_dict({"data": camvid, "model": {"init": "camvid-lite"}})
    assert data_licence(from_lite) == zoo.CAMVID_LICENCE  # the same terms, said once
    assert data_licence(from_dict({"data": {"dataset": "folder"}})) == zoo.UNKNOWN_LICENCE
    # Two generations: a folder model fine-tuned from one fine-tuned from camvid-lite.
    child = from_dict({"data": {"dataset": "folder"}, "model": {"init": "camvid-lite"}})
    model = load_model("camvid-lite").model
    folder = save_pretrained(model, child, tmp_path / "child", classes=list(zoo.CAMVID.classes))
    grandchild = from_dict({"data": {"dataset": "folder"}, "model": {"init": str(folder)}})
    text = data_licence(grandchild)
    assert text.startswith(f"started from {folder}, whose terms it keeps: started from camvid-lite")
    assert zoo.CAMVID_LICENCE in text and "Its own training data: not recorded" in text
    missing = from_dict({"model": {"init": str(tmp_path / "gone.pt")}})
    assert "gone.pt cannot be read here" in data_licence(missing)


def test_save_pretrained_refuses_what_is_not_a_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["save-pretrained", str(tmp_path / "missing.pt"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "missing.pt is not a checkpoint file" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_save_pretrained_command_never_replaces_a_users_card(
    finetuned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "shared"
    out.mkdir()
    (out / "README.md").write_text("my own notes\n")
    args = ["save-pretrained", str(finetuned / "best.pt"), str(out)]
    assert cli(args) == 2
    assert "README.md" in capsys.readouterr().err
    assert (out / "README.md").read_text() == "my own notes\n"
    assert cli([*args, "--overwrite"]) == 0
    assert (out / "README.md").read_text() != "my own notes\n"


@pytest.mark.parametrize("kind", ["a file", "read-only", "inside read-only"])
def test_save_pretrained_where_it_cannot_write_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Issue 21: a folder that is a file, or one inside a read-only folder, ended in a raw
    FileExistsError or PermissionError traceback."""
    from _helpers import TINY_CLASSES, read_only, tiny_model
    from lrnet._errors import LrnetError
    from lrnet.config import load_config

    config = load_config(None, [f"model.num_classes={len(TINY_CLASSES)}", "model.width=0.125"])
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    target = {"a file": shelf / "model", "read-only": shelf, "inside read-only": shelf / "model"}
    if kind == "a file":
        target[kind].write_text("a file of the user's")
    else:
        read_only(shelf, monkeypatch)
    with pytest.raises(LrnetError, match=rf"^cannot write {shelf}") as caught:
        save_pretrained(tiny_model(), config, target[kind], classes=TINY_CLASSES)
    assert "\n" not in str(caught.value)
    left = {p.name: p.read_text() for p in shelf.iterdir()}
    assert left == ({"model": "a file of the user's"} if kind == "a file" else {}), left
