"""The README's shell commands: each names a real subcommand and flags, and the cheap ones run."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from lrnet.cli import COMMANDS
from lrnet.cli import add_arguments as declare

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
VENV_LRNET = ".venv/bin/lrnet"


def shell_lines(markdown: str) -> list[str]:
    """The commands of the ```bash blocks, continuation lines joined, comments kept."""
    lines: list[str] = []
    for block in re.findall(r"^```(?:bash|sh|shell)\n(.*?)^```", markdown, re.M | re.S):
        text = block.replace("\\\n", " ")
        lines += [line.strip() for line in text.splitlines() if line.strip()]
    return lines


def lrnet_argv(line: str) -> list[str] | None:
    """The arguments after ``lrnet`` of a command line that runs lrnet, else ``None``."""
    words = shlex.split(line, comments=True)
    if not words:
        return None
    if words[0].endswith("lrnet"):
        return words[1:]
    if "-m" in words and words[words.index("-m") + 1 :][:1] == ["lrnet"]:  # torchrun -m lrnet
        return words[words.index("-m") + 2 :]
    return None


def parse(argv: list[str]) -> argparse.Namespace:
    """``argv`` through the parser ``lrnet.cli.main`` builds for its command, without running it."""
    name = argv[0]
    assert name in COMMANDS, f"lrnet {name}: no such command (lrnet.cli.COMMANDS)"
    parser = argparse.ArgumentParser(prog=f"lrnet {name}")
    declare(name, parser)
    try:
        return parser.parse_intermixed_args(argv[1:])
    except SystemExit as exc:  # argparse prints why and exits; --help exits 0
        if exc.code == 0:
            return argparse.Namespace(help=True)
        raise ValueError(f"lrnet {' '.join(argv)}: refused by lrnet's parser") from None


def readme_commands() -> list[tuple[str, list[str]]]:
    commands = []
    for line in shell_lines(README.read_text()):
        argv = lrnet_argv(line)
        if argv is not None:
            commands.append((line, argv))
    return commands


def test_the_readme_runs_lrnet_from_the_venv_make_creates() -> None:
    commands = readme_commands()
    assert len(commands) >= 15, commands  # the quick start, "Using it", video, app
    for line, _ in commands:
        program = shlex.split(line, comments=True)[0]
        assert program in (VENV_LRNET, ".venv/bin/torchrun"), line
    # The first command after `make` is the quick start's, on a sample that ships in the package.
    first = next(argv for _, argv in commands if argv[0] == "predict")
    assert _inputs(parse(first)) == ["src/lrnet/samples/camvid_0006R0_f02640.jpg"], first


def test_the_readme_installs_no_extra_that_make_installs() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -q -e '.[dev]'" in makefile  # what `make` (any target) installs
    made = {re.split(r"[<>=\[]", r)[0] for r in project["optional-dependencies"]["dev"]}
    for line in shell_lines(README.read_text()):
        for extras in re.findall(r"pip install .*\[([\w,]+)\]", line):
            for extra in extras.split(","):
                needs = {
                    re.split(r"[<>=\[]", r)[0] for r in project["optional-dependencies"][extra]
                }
                assert not needs <= made, f"{line}: `make` installs these already"


@pytest.mark.parametrize("line, argv", readme_commands(), ids=lambda v: str(v)[:60])
def test_every_readme_command_parses(line: str, argv: list[str]) -> None:
    parse(argv)


def test_the_parse_check_refuses_what_lrnet_refuses() -> None:
    with pytest.raises(ValueError, match="refused"):
        parse(["predict", "--model", "camvid-lite", "x.jpg", "--out", "o", "--bogus"])
    with pytest.raises(ValueError, match="refused"):  # --out is required
        parse(["predict", "--model", "camvid-lite", "x.jpg"])
    with pytest.raises(ValueError, match="refused"):
        parse(["models", "--size", "3"])
    with pytest.raises(AssertionError, match="no such command"):
        parse(["segment", "x.jpg"])


def _inputs(args: argparse.Namespace) -> list[str]:
    """The images of a parsed ``lrnet predict``: with --model the positional model is one."""
    return [args.checkpoint, *args.inputs] if args.model else list(args.inputs)


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lrnet", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cheap_readme_commands_run(tmp_path: Path) -> None:
    ran = []
    for line, argv in readme_commands():
        args = parse(argv)
        if argv[0] == "models" or "--help" in argv:
            result = _run(argv)
        elif argv[0] == "predict" and all((ROOT / p).is_file() for p in _inputs(args)):
            # The quick start: the shipped sample through the shipped model, into tmp_path.
            out = tmp_path / str(args.out)
            argv = [*argv[: argv.index("--out") + 1], str(out), *argv[argv.index("--out") + 2 :]]
            result = _run(argv)
            stem = Path(_inputs(args)[0]).stem
            for suffix in ("label", "color", "overlay", "stages"):
                assert (out / f"{stem}_{suffix}.png").is_file(), (line, list(out.iterdir()))
        else:
            continue
        assert result.returncode == 0, (line, result.stderr[-2000:])
        ran.append(argv[0])
    assert {"models", "predict"} <= set(ran) and len(ran) >= 3, ran
