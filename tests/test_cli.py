"""The ``lrnet`` command: --help shows the COMMANDS table and each module's arguments; summary."""

from __future__ import annotations

import argparse
import errno
import os
import re
import subprocess
import sys

import pytest

from lrnet.cli import COMMANDS, main
from lrnet.cli import add_arguments as declare


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_subcommand_help_shows_its_modules_arguments(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # no wrapping, so texts compare whole
    help_text = COMMANDS[command][1]
    own = argparse.ArgumentParser()  # the arguments declared for the table's command
    declare(command, own)
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: lrnet {command} ") and f"\n\n{help_text}\n\n" in out
    for action in own._actions:
        names = action.option_strings or [action.metavar or action.dest]
        assert all(str(name) in out for name in names), (command, names)


def test_top_level_help_lists_the_table() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lrnet", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert result.returncode == 0
    listed = dict(re.findall(r"^    (\S+)\s{2,}(\S.*)$", result.stdout, re.M))
    assert listed == {name: help_text for name, (_, help_text) in COMMANDS.items()}


def test_summary_prints_each_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "--width", "0.125", "--size", "64", "96", "--num-classes", "5"]) == 0
    out = capsys.readouterr().out
    for name in ("lrn", "lrn_gated", "segnet", "segnet_ds"):
        assert f"| {name} |" in out
    assert "2x3, 4x6, 8x12, 16x24, 32x48, 64x96" in out


def test_user_errors_print_one_line_and_exit_2(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert "missing.yaml" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_help_needs_no_torch() -> None:
    # `lrnet --help` and every `lrnet COMMAND --help` answer without importing torch (seconds).
    code = (
        "import sys\n"
        "from lrnet.cli import COMMANDS, main\n"
        "for argv in [['--help'], *[[c, '--help'] for c in COMMANDS]]:\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "    assert 'torch' not in sys.modules, argv\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_reader_that_goes_away_ends_quietly_with_141() -> None:
    """`lrnet models | head -1`: the pipe closes before lrnet writes; no BrokenPipeError."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lrnet", "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before the first line
    err = process.stderr.read().decode()
    assert process.wait(120) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_a_broken_pipe_in_process_is_exit_141(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import lrnet.cli.summary

    def writes_into_a_closed_pipe(args: argparse.Namespace) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(lrnet.cli.summary, "main", writes_into_a_closed_pipe)
    assert main(["summary"]) == 141
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        (errno.ENOSPC, "the disk is full"),
        (errno.EDQUOT, "quota"),
        (errno.EROFS, "read-only"),
        (errno.EACCES, "not writable"),
        (errno.EISDIR, "a folder is in the way"),
        (errno.ENOTDIR, "a file is in the way"),
    ],
)
def test_an_os_error_on_a_path_is_one_line_in_every_command(
    monkeypatch: pytest.MonkeyPatch, capsys, code: int, advice: str
) -> None:
    """One handler in the entry: wherever a command meets a disk error about a path, it says
    "cannot write PATH: <reason>; <what to do>" (exit 2), not a traceback."""
    import lrnet.cli.summary

    def fails(args: argparse.Namespace) -> int:
        raise OSError(code, os.strerror(code), "/somewhere/out.json")

    monkeypatch.setattr(lrnet.cli.summary, "main", fails)
    assert main(["summary"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [
        f"lrnet summary: error: cannot write /somewhere/out.json: {os.strerror(code)}; "
        + err.split("; ", 1)[1]
    ]
    assert advice in err


def test_an_os_error_without_a_path_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import lrnet.cli.summary

    def fails(args: argparse.Namespace) -> int:
        raise OSError(errno.EIO, "Input/output error")  # no path: a bug or the hardware

    monkeypatch.setattr(lrnet.cli.summary, "main", fails)
    with pytest.raises(OSError, match="Input/output"):
        main(["summary"])
