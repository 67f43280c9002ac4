"""The ``lrnet`` command: every subcommand has --help; summary prints every model."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lrnet.cli import COMMANDS, main


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: lrnet {command}") and COMMANDS[command][1] in out


def test_top_level_help_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lrnet", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


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
    assert "missing.yaml does not exist" in err and "Traceback" not in err
