"""``lrnet app``: serve the Gradio page of ``lrnet.app`` until Ctrl-C, then remove its files."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lrnet._checks import port_number
from lrnet._errors import LrnetError
from lrnet.cli.common import (
    MODEL_SOURCE,
    add_backend_arguments,
    add_device_argument,
    device_of,
    predictor_for,
)

DEFAULT_MODEL = "camvid-lite"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
MAX_UPLOAD = "64mb"  # any file, checked by Gradio before it is stored
QUEUE_SIZE = 16  # waiting requests; more are told the app is busy


def free_port(host: str) -> int:
    """A port nobody listens on at ``host`` now (``--port 0``: Gradio itself needs a number)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``lrnet app``."""
    parser.epilog = (
        "Needs pip install 'lrnet[app]'. Uploads and results live in a temporary folder removed "
        "when the app stops (Ctrl-C), or when the next app starts if this one was killed."
    )
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"{MODEL_SOURCE} (default: %(default)s)"
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to bind (default: %(default)s, this machine only; 0.0.0.0: the network)",
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=DEFAULT_PORT,
        help="port, 0 (any free one) to 65535 (default: %(default)s)",
    )
    add_device_argument(parser)
    add_backend_arguments(parser)


WORKDIR_PREFIX = "lrnet-app-"  # then the pid of the app that owns it: lrnet-app-<pid>-<random>
WORKDIR_MARK = ".lrnet-app"  # written into each upload folder: only marked folders are removed


def remove_stale_workdirs(folder: str | Path | None = None) -> list[Path]:
    """Remove the marked ``lrnet-app-<pid>-*`` folders of this user whose app no longer runs
    (killed with -9, or a crashed machine); returns the folders removed."""
    removed = []
    for path in Path(folder or tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*-*"):
        pid = path.name.removeprefix(WORKDIR_PREFIX).split("-", 1)[0]
        try:
            ours = pid.isdigit() and not path.is_symlink() and path.stat().st_uid == os.getuid()
            marked = ours and path.is_dir() and (path / WORKDIR_MARK).is_file()  # lrnet made it
        except OSError:
            continue
        if marked and int(pid) != os.getpid() and not _running(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or a number no process has: leave it be
    return True


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _page(args: argparse.Namespace, workdir: Path) -> Any:
    """The page of ``--model`` with its examples, the model run once on the first of them."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise LrnetError("lrnet app needs Gradio: pip install 'lrnet[app]'") from None
    from lrnet.app import App, build_page, examples_for, model_notes, write_examples
    from lrnet.sources import read_config

    app = App(predictor_for(args, args.model, device_of(args)), workdir, model_name=str(args.model))
    dataset = read_config(args.model).data.dataset
    examples, examples_label = examples_for(dataset, workdir / "examples")
    warm_up = examples[0] if examples else write_examples(workdir / "warm_up")[0]
    num_stages = len(app.label_image(warm_up).stage_labels)  # also warms the model up
    page = build_page(app, examples, num_stages, examples_label, model_notes(args.model))
    page.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return page


def _launch(page: Any, args: argparse.Namespace, workdir: Path) -> None:
    """Serve ``page`` on ``--host``:``--port`` (0: a free one) without blocking."""
    try:
        page.launch(
            server_name=args.host,
            server_port=args.port or free_port(args.host),
            prevent_thread_lock=True,
            quiet=True,
            share=False,
            inbrowser=False,
            ssr_mode=False,
            max_file_size=MAX_UPLOAD,
            footer_links=[],
            allowed_paths=[str(workdir / "examples")],
        )
    except OSError:
        raise LrnetError(
            f"cannot serve on {args.host}:{args.port}: the port is taken (another app?) or "
            "the address is not this machine's; pass another --port or --host"
        ) from None


def main(args: argparse.Namespace) -> int:
    """Serve the page until Ctrl-C or SIGTERM; 0 when stopped."""
    remove_stale_workdirs()
    workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-"))
    (workdir / WORKDIR_MARK).touch()
    # Gradio reads these on import and page build: no telemetry or version check, and uploads
    # in the app's own folder.
    os.environ["GRADIO_TEMP_DIR"] = str(workdir / "gradio")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    page = None
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` cleans up too
    try:
        page = _page(args, workdir)
        _launch(page, args, workdir)
        host = "localhost" if args.host in ("0.0.0.0", "::") else args.host
        print(
            f"lrnet app: serving {args.model} at http://{host}:{page.server_port}/ "
            f"(bound to {args.host}; Ctrl-C stops it)",
            flush=True,
        )
        while page.is_running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("lrnet app: stopped", file=sys.stderr)
    finally:
        if page is not None:
            page.close()
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0
