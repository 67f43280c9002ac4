"""Cold start: the wall clock from a command to its result, as a new user meets it.

    .venv/bin/python -m bench.cold_start                      # this checkout only
    .venv/bin/python -m bench.cold_start --before OTHER/src   # and another checkout, run by run

Three commands, each a fresh process (imports, model loading and backend start included; the
network itself is milliseconds of it):

- ``predict``: ``lrnet predict --model camvid-lite PHOTO --out DIR``, command to written files;
- ``video``: the same on a one-frame clip (command to the first frame written and the clip closed);
- ``app``: ``lrnet app --port 0``, command to the line that gives the page's address, then the
  page's HTML fetched once (the page served).

``--before SRC`` runs the same commands with ``PYTHONPATH=SRC`` (another checkout's ``src``, e.g.
``git worktree add /tmp/before <commit>``) in alternating order, so both meet the same machine.
Every run has a warm ``$LRNET_HOME`` (made once per checkout before the timed rounds: the graph
cache and the first-use check), as on a user's second day; the first use is printed separately.
Run it on a quiet machine; the medians go into docs/benchmarks.md with the CPU they came from.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "src" / "lrnet" / "samples" / "camvid_0016E5_04410.jpg"
ADDRESS = re.compile(r"http://[^\s/]+:\d+/")


def one_frame_clip(folder: Path) -> Path:
    """``SAMPLE`` as a one-frame H.264 clip (PyAV, through lrnet's own writer)."""
    from lrnet.inference.video import VideoWriter

    clip = folder / "one_frame.mp4"
    rate = Fraction(25)
    with VideoWriter(clip, rate, 1 / rate) as writer:
        writer.write(np.asarray(Image.open(SAMPLE).convert("RGB")), 0)
        writer.close()
    return clip


def lrnet(src: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        f"import sys; sys.path.insert(0, {str(src)!r}); "
        "from lrnet.cli import main; sys.exit(main())",
        *args,
    ]


def timed_command(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[3:])} failed:\n{result.stderr[-2000:]}")
    return seconds


def timed_app(cmd: list[str], env: dict[str, str]) -> float:
    """Seconds from starting the app to its page's HTML fetched (on a port free now: before
    2026-12-07 the app could not take ``--port 0``)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    cmd = [
        port if previous == "--port" else arg
        for previous, arg in zip(["", *cmd[:-1]], cmd, strict=True)
    ]
    start = time.perf_counter()
    process = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            found = ADDRESS.search(line)
            if found:
                with urllib.request.urlopen(found.group(0), timeout=60) as page:
                    page.read()
                return time.perf_counter() - start
        raise SystemExit(f"the app ended without serving (exit {process.wait()})")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def commands(src: Path, work: Path, clip: Path) -> dict[str, list[str]]:
    model = ["--model", "camvid-lite"]
    return {
        "predict": lrnet(
            src, "predict", *model, str(SAMPLE), "--out", str(work / "photo"), "--overwrite"
        ),
        "video": lrnet(
            src, "predict", *model, str(clip), "--out", str(work / "clip"), "--overwrite"
        ),
        "app": lrnet(src, "app", *model, "--port", "0"),
    }


def measure(name: str, cmd: list[str], env: dict[str, str]) -> float:
    return timed_app(cmd, env) if name == "app" else timed_command(cmd, env)


def cpu_flags() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.+)", text)
    flags = sorted(
        set(re.findall(r"\b(avx512_vnni|avx_vnni|avx512_bf16|amx_int8|avx512f|avx2)\b", text))
    )
    return f"{model.group(1) if model else platform.processor()} ({', '.join(flags) or 'none'})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, metavar="SRC", help="another checkout's src")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", nargs="+", choices=["predict", "video", "app"])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    variants = {"this": REPO / "src"}
    if args.before is not None:
        variants = {"before": args.before.resolve(), **variants}
    with tempfile.TemporaryDirectory(prefix="lrnet-cold-") as tmp:
        work = Path(tmp)
        clip = one_frame_clip(work)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        plans = {}
        for label, src in variants.items():
            home = work / f"home-{label}"
            plans[label] = (commands(src, work / label, clip), {**env, "LRNET_HOME": str(home)})
        names = args.only or ["predict", "video", "app"]
        first = {
            label: round(measure("predict", cmds["predict"], run_env), 2)
            for label, (cmds, run_env) in plans.items()
        }
        print(f"first use (empty LRNET_HOME), predict: {first}", flush=True)
        times: dict[str, dict[str, list[float]]] = {v: {n: [] for n in names} for v in variants}
        for round_ in range(args.rounds):
            order = list(plans) if round_ % 2 == 0 else list(plans)[::-1]
            for name in names:
                for label in order:
                    cmds, run_env = plans[label]
                    times[label][name].append(measure(name, cmds[name], run_env))
            print(f"round {round_ + 1}/{args.rounds} done", flush=True)
    result = {
        "cpu": cpu_flags(),
        "rounds": args.rounds,
        "first_use_predict_s": first,
        "median_s": {
            v: {n: round(statistics.median(t), 2) for n, t in d.items()} for v, d in times.items()
        },
        "all_s": {v: {n: [round(x, 2) for x in t] for n, t in d.items()} for v, d in times.items()},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
