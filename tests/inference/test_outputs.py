"""No output replaces a file lrnet did not write, nor an input (issue 21, data loss).

One rule (``lrnet.inference.files.check_replaceable``) for every command: each case of the issue is
replayed here and must end in a one-line refusal that leaves every file as it was; lrnet's own
earlier outputs are replaced; ``--overwrite`` replaces a user's file only once the new one is
complete, and ``train --overwrite`` keeps the old run until the new one has a checkpoint.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from _helpers import TINY_CLASSES, tiny_model, write_tiny_checkpoint
from lrnet import _files as files
from lrnet._errors import LrnetError
from lrnet.cli import main as cli
from lrnet.data.synthetic import generate_synthetic

REPO = Path(__file__).resolve().parents[2]
SYNTHETIC = REPO / "configs" / "synthetic.yaml"


def digest(*roots: Path) -> dict[str, str]:
    """sha256 of every file under ``roots`` (files or folders)."""
    files = [p for r in roots for p in ([r] if r.is_file() else sorted(r.rglob("*")))]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}


def refused(argv: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    """``lrnet ARGV`` ends in exit 2 with one line naming ``needles``; returns that line."""
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    line = err.splitlines()[-1]
    assert line.startswith(f"lrnet {argv[0]}: error: "), err
    for needle in needles:
        assert needle in line, (needle, line)
    return line


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_synthetic(
        tmp_path_factory.mktemp("data") / "synthetic", num_train=4, num_val=1, size=(32, 32)
    )


def train_overrides(tmp_path: Path, run: Path, iterations: int = 2, **extra: str) -> list[str]:
    overrides = {
        "data.root": str(tmp_path / "data"),
        "data.options": "{num_train: 4, num_val: 2, size: [32, 32], seed: 1}",
        "data.crop_size": "[32, 32]",
        "data.batch_size": "2",
        "data.num_workers": "0",
        "model.width": "0.125",
        "model.skip_channels": "4",
        "optim.iterations": str(iterations),
        "optim.warmup_iters": "1",
        "run.out_dir": str(run),
        "run.val_interval": "2",
        "run.checkpoint_interval": "2",
        "run.log_interval": "1",
        "run.progress": "false",
        "run.tensorboard": "false",
    }
    overrides.update(extra)
    return [f"{k}={v}" for k, v in overrides.items()]


# ---------------------------------------------------------------- the rule and the write


def test_atomic_write_turns_disk_errors_into_one_line(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "taken"
    folder.mkdir()
    with pytest.raises(LrnetError, match=r"cannot write .*taken: .*a folder is in the way"):
        files.write_text(folder, "x")  # a folder where the file should go
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LrnetError, match=r"cannot write .*file/out.json: "):
        files.write_text(blocker / "out.json", "x")  # a file where the folder should be
    target = tmp_path / "out.json"
    target.write_text("old")

    def full(*args: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(LrnetError, match="No space left on device; the disk is full"):
        files.write_text(target, "new")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == [
        "file",
        "out.json",
        "taken",
    ]


@pytest.mark.parametrize(
    ("code", "advice"),
    [(errno.EACCES, "not writable"), (errno.EROFS, "read-only"), (errno.ENOSPC, "disk is full")],
)
def test_atomic_write_names_the_reason_and_what_to_do(
    tmp_path: Path, monkeypatch, code: int, advice: str
) -> None:
    def refuses(*args: Any, **kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(files.tempfile, "mkstemp", refuses)  # as a read-only folder does
    with pytest.raises(LrnetError, match=f"cannot write .*x.json: {os.strerror(code)}; .*{advice}"):
        files.write_text(tmp_path / "x.json", "x")
    assert not list(tmp_path.iterdir())


def test_a_write_killed_by_sigkill_leaves_a_temporary_that_the_next_write_removes(
    tmp_path: Path,
) -> None:
    """Issue 21: kill -9 during export --onnx left a hidden temporary file no later run removed.
    The next write into the folder removes it; a live writer's temporary and a user's file
    named like one stay."""
    target = tmp_path / "m.onnx"
    target.write_bytes(b"the old graph")
    dies = (
        "import os, signal, sys\n"
        "from lrnet._files import atomic_write\n"
        "def write(f):\n"
        "    f.write(b'half a graph'); f.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
        "atomic_write(sys.argv[1], write)\n"
    )
    killed = subprocess.run([sys.executable, "-c", dies, str(target)], capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    left = [p.name for p in tmp_path.iterdir() if p != target]
    assert len(left) == 1 and left[0].startswith(".m.onnx."), left  # what the kill left
    assert target.read_bytes() == b"the old graph"
    users = tmp_path / ".m.onnx.notes.tmp"
    users.write_text("the user's own file")
    live = tmp_path / f"{files.temporary_prefix(target)}abc12345.tmp"  # this process: alive
    live.write_bytes(b"being written")
    files.write_text(target, "the new graph")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([users.name, live.name, "m.onnx"]), names
    assert target.read_text() == "the new graph"


def test_check_replaceable_never_takes_an_input_even_by_another_path(tmp_path: Path) -> None:
    source = tmp_path / "model.pt"
    source.write_bytes(b"weights")
    link = tmp_path / "link.pt"
    link.symlink_to(source)
    for path in (source, link, tmp_path / "." / "model.pt"):
        with pytest.raises(LrnetError, match="never replaces an input"):
            files.check_replaceable(path, overwrite=True, inputs=[source])
    folder = tmp_path / "pretrained"
    folder.mkdir()
    with pytest.raises(LrnetError, match="is inside the input"):
        files.check_replaceable(folder / "config.json", overwrite=True, inputs=[folder])


def test_lrnet_recognises_its_own_files_and_no_others(tmp_path: Path) -> None:
    import onnx
    from onnx import helper

    def onnx_file(path: Path, meta: dict[str, str]) -> Path:
        graph = helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
        )
        model = helper.make_model(graph)
        for key, value in meta.items():
            model.metadata_props.add(key=key, value=value)
        onnx.save(model, str(path))
        return path

    ours = [
        onnx_file(tmp_path / "ours.onnx", {"lrnet": "0.1.0"}),
        tmp_path / "evaluation.json",
        tmp_path / "report.html",
    ]
    ours[1].write_text(json.dumps({"stages": [{"stage": 1, "miou": 0.5}]}))
    ours[2].write_text(f'<!DOCTYPE html>\n<html><head>{files.HTML_MARK} 0.1.0"><title>x')
    theirs = [
        onnx_file(tmp_path / "theirs.onnx", {"author": "me"}),
        tmp_path / "mine.json",
        tmp_path / "mine.html",
        tmp_path / "README.md",
        tmp_path / "config.yaml",
    ]
    theirs[1].write_text('{"stages": "mine"}')
    theirs[2].write_text("<html>my page</html>")
    theirs[3].write_text("# my model\n")
    theirs[4].write_text("model: {name: lrn}\n")
    assert [files.written_by_lrnet(p) for p in ours] == [True] * len(ours)
    assert [files.written_by_lrnet(p) for p in theirs] == [False] * len(theirs)


# ---------------------------------------------------------------- each case of the issue


def test_evaluate_never_writes_over_the_checkpoint_or_a_users_file(
    ckpt: Path, data: Path, tmp_path: Path, capsys
) -> None:
    copy = tmp_path / "model.pt"
    copy.write_bytes(ckpt.read_bytes())
    mine = tmp_path / "notes.json"
    mine.write_text('{"my": "notes"}')
    before = digest(tmp_path)
    base = ["evaluate", str(copy), "--data", str(data), "--dataset", "folder", "--split", "val"]
    base += ["--num-workers", "0", "--device", "cpu", "--backend", "torch"]
    refused([*base, "--out", str(copy)], capsys, str(copy), "input")
    refused([*base, "--out", str(copy), "--overwrite"], capsys, "input")
    refused([*base, "--out", str(mine)], capsys, str(mine), "--overwrite")
    assert digest(tmp_path) == before


def test_export_never_writes_over_the_checkpoint_or_a_users_onnx(
    ckpt: Path, tmp_path: Path, capsys
) -> None:
    copy = tmp_path / "model.pt"
    copy.write_bytes(ckpt.read_bytes())
    mine = tmp_path / "m.onnx"
    mine.write_bytes(b"the user's own graph")
    before = digest(tmp_path)
    refused(["export", str(copy), "--onnx", str(copy)], capsys, str(copy), "input")
    refused(["export", str(copy), "--onnx", str(copy), "--overwrite"], capsys, "input")
    refused(["export", str(copy), "--onnx", str(mine)], capsys, str(mine), "--overwrite")
    assert digest(tmp_path) == before


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-iteration run (config.yaml, history, last.pt, best.pt), read-only use."""
    root = tmp_path_factory.mktemp("finished")
    assert cli(["train", str(SYNTHETIC), *train_overrides(root, root / "run")]) == 0
    return root / "run"


@pytest.mark.parametrize("name", ["best.pt", "history.jsonl", "last.pt", "config.yaml"])
def test_report_never_writes_over_a_file_of_the_run(finished_run: Path, name: str, capsys) -> None:
    before = digest(finished_run)
    for out in (name, str(finished_run / name)):
        for extra in ([], ["--overwrite"]):
            argv = ["report", str(finished_run), "--out", out, "--panels", "0", *extra]
            refused(argv, capsys, name, "input")
    assert digest(finished_run) == before


def test_report_replaces_its_own_page_but_not_a_users(
    finished_run: Path, tmp_path: Path, capsys
) -> None:
    page = tmp_path / "page.html"
    argv = ["report", str(finished_run), "--out", str(page), "--panels", "0"]
    for _ in range(2):  # an earlier report is lrnet's: replaced
        assert cli(argv) == 0
    page.write_text("<html>my own page</html>")
    refused(argv, capsys, str(page), "--overwrite")
    assert page.read_text() == "<html>my own page</html>"
    assert cli([*argv, "--overwrite"]) == 0
    assert files.written_by_lrnet(page)


def test_demo_never_replaces_a_users_files_in_its_folder(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    out.mkdir()
    for name, text in (
        ("report.html", "<html>mine</html>"),
        ("evaluation.json", '{"mine": 1}'),
        ("config.yaml", "model: {name: lrn}\n"),
    ):
        (out / name).write_text(text)
        before = digest(tmp_path)
        tiny = train_overrides(tmp_path, out, **{"data.options": "{num_train: 4, num_val: 2}"})
        refused(["demo", "--out", str(out), *tiny], capsys, name)
        assert digest(tmp_path) == before  # refused before anything ran or was written
        (out / name).unlink()


def test_save_pretrained_never_replaces_a_users_card_or_config(tmp_path: Path) -> None:
    from lrnet.config import load_config
    from lrnet.pretrained import load_model, save_pretrained

    model = tiny_model()
    config = load_config(None, [f"model.num_classes={len(TINY_CLASSES)}", "model.width=0.125"])
    folder = tmp_path / "share"
    save_pretrained(model, config, folder, classes=TINY_CLASSES)
    save_pretrained(model, config, folder, classes=TINY_CLASSES)  # its own files: replaced
    for name in ("README.md", "config.json"):
        mine = tmp_path / f"mine_{name.replace('.', '_')}"
        mine.mkdir()
        (mine / name).write_text("the user's own\n")
        with pytest.raises(LrnetError, match=f"{name} exists and was not written by lrnet"):
            save_pretrained(model, config, mine, classes=TINY_CLASSES)
        assert [p.name for p in mine.iterdir()] == [name]  # nothing else written either
        assert (mine / name).read_text() == "the user's own\n"
        save_pretrained(model, config, mine, classes=TINY_CLASSES, overwrite=True)
        assert load_model(mine).config.model.num_classes == len(TINY_CLASSES)


@pytest.mark.parametrize("name", ["config.yaml", "class_weights.json"])
def test_train_never_replaces_a_users_file_in_its_out_dir(
    tmp_path: Path, name: str, capsys
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / name).write_text("the user's own\n")
    overrides = train_overrides(tmp_path, run, **{"data.class_weights": "enet"})
    refused(["train", str(SYNTHETIC), *overrides], capsys, name)
    assert [p.name for p in run.iterdir()] == [name]
    assert (run / name).read_text() == "the user's own\n"


def test_train_never_replaces_its_own_config_file(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    config = run / "config.yaml"
    config.write_text(SYNTHETIC.read_text())
    before = config.read_text()
    for extra in ([], ["--overwrite"]):
        refused(["train", str(config), *train_overrides(tmp_path, run), *extra], capsys, "input")
    assert config.read_text() == before


def test_train_overwrite_keeps_the_old_run_until_the_new_one_has_a_checkpoint(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    from lrnet.train import loop as training

    run = tmp_path / "run"
    assert cli(["train", str(SYNTHETIC), *train_overrides(tmp_path, run)]) == 0
    before = digest(run)
    assert {"last.pt", "best.pt", "history.jsonl", "config.yaml"} <= {Path(p).name for p in before}
    # The new run fails in its setup (no batch fits) ...
    bad = train_overrides(tmp_path, run, **{"data.batch_size": "64"})
    refused(["train", str(SYNTHETIC), *bad, "--overwrite"], capsys, "batch")
    assert digest(run) == before and sorted(p.name for p in run.iterdir()) == sorted(
        Path(p).name for p in before
    )

    # ... or in its first step: the old run is back, whole.
    def dies(*args: Any) -> None:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(training, "train_step", dies)
    with pytest.raises(RuntimeError, match="out of memory"):
        cli(["train", str(SYNTHETIC), *train_overrides(tmp_path, run), "--overwrite"])
    assert digest(run) == before
    monkeypatch.undo()
    # A new run that gets to its first checkpoint replaces the old one, which is gone.
    longer = train_overrides(tmp_path, run, iterations=4)
    assert cli(["train", str(SYNTHETIC), *longer, "--overwrite"]) == 0
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["iteration"] for h in history if h["kind"] == "train"] == [1, 2, 3, 4]
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------- video


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    av = pytest.importorskip("av")
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(10))
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for index in range(3):
            pixels = np.full((32, 32, 3), 40 * index, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def test_video_never_replaces_a_users_videos_or_label_folder(
    ckpt: Path, clip: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    argv = ["predict", str(ckpt), str(clip), "--out", str(out), "--backend", "torch"]
    argv += ["--device", "cpu", "--mask-video", "--frames"]
    for name in ("clip_overlay.mp4", "clip_mask.mp4"):
        (out / name).write_bytes(b"the user's own video")
        before = digest(out)
        refused(argv, capsys, name, "--overwrite")
        assert digest(out) == before
        (out / name).unlink()
    labels = out / "clip_labels"
    labels.mkdir()
    for index in range(2):  # digit-named PNGs that lrnet did not write
        Image.fromarray(np.full((8, 8), index, np.uint8)).save(labels / f"{index:06d}.png")
    before = digest(out)
    refused(argv, capsys, "clip_labels", "--overwrite")
    assert digest(out) == before and sorted(p.name for p in out.iterdir()) == ["clip_labels"]


def test_video_replaces_its_own_outputs_and_with_overwrite_a_users(
    ckpt: Path, clip: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    argv = ["predict", str(ckpt), str(clip), "--out", str(out), "--backend", "torch"]
    argv += ["--device", "cpu", "--mask-video", "--frames"]
    for _ in range(2):  # the second run replaces the first's files: they carry lrnet's mark
        assert cli(argv) == 0
    assert all(files.written_by_lrnet(out / n) for n in ("clip_overlay.mp4", "clip_mask.mp4"))
    assert all(files.written_by_lrnet(p) for p in (out / "clip_labels").iterdir())
    (out / "clip_mask.mp4").write_bytes(b"the user's own video")
    assert cli([*argv, "--overwrite"]) == 0
    assert files.written_by_lrnet(out / "clip_mask.mp4")


def test_video_never_writes_into_its_input_folder_of_frames(
    ckpt: Path, tmp_path: Path, capsys
) -> None:
    frames = tmp_path / "shots"
    frames.mkdir()
    for index in range(2):
        Image.fromarray(np.full((32, 32, 3), index, np.uint8)).save(frames / f"{index}.png")
    before = digest(frames)
    argv = ["predict", str(ckpt), str(frames), "--fps", "5", "--out", str(frames / "..")]
    argv += ["--backend", "torch", "--device", "cpu", "--frames", "--overwrite"]
    (tmp_path / "shots_labels").symlink_to(frames)  # the label folder is the input, by a link
    refused(argv, capsys, "input")
    assert digest(frames) == before


def test_the_config_a_run_writes_carries_the_mark_and_still_loads(finished_run: Path) -> None:
    from lrnet.config import load_config

    text = (finished_run / "config.yaml").read_text()
    assert text.startswith(files.YAML_MARK) and yaml.safe_load(text)["model"]["name"] == "lrn"
    assert load_config(finished_run / "config.yaml", []).run.out_dir == str(finished_run)
