"""How lrnet writes files: what an output may replace, one atomic write, and lrnet's own files.

A file lrnet did not write is replaced only with ``overwrite``, an input never
(``check_replaceable``); a write lands whole or not at all (``atomic_write``). lrnet knows its
own files by a marker where the format has room for one, else by the layout it writes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from lrnet._errors import LrnetError

MARK = "lrnet"  # the marker's key in every format that has one; the value says what wrote it
HTML_MARK = '<meta name="generator" content="lrnet'
YAML_MARK = "# lrnet:"
CARD_MARK = "---\nlibrary_name: lrnet\n"
RUN_FILES = ("config.yaml", "history.jsonl", "last.pt", "best.pt", "class_weights.json")
# The advice of a refused output of a command writing into an --out folder.
OVERWRITE_ADVICE = "choose another --out folder, move the file, or give --overwrite"
_MAX_JSON = 64 << 20  # bytes: a larger .json is not one lrnet wrote (its are kilobytes)


def written_by_lrnet(path: str | Path) -> bool:
    """Whether the file at ``path`` carries lrnet's marker or has the layout lrnet writes (a
    symbolic link, a folder or an unreadable file never does)."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return False
    check = _CHECKS.get(path.suffix.lower())
    try:
        marked = bool(check and check(path))
    except Exception:  # damaged, another format, unreadable: not marked (a torn run file: below)
        marked = False
    return marked or in_run_folder(path)


def _png(path: Path) -> bool:
    with Image.open(path) as img:
        return img.format == "PNG" and MARK in img.info


def save_marked_png(picture: Image.Image, file: Any, writer: str) -> None:
    """Save ``picture`` as PNG to a path or binary file, marked as lrnet's ``writer``'s."""
    info = PngInfo()
    info.add_text(MARK, writer)
    picture.save(file, format="PNG", pnginfo=info)


def _onnx(path: Path) -> bool:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(p.key == MARK for p in model.metadata_props)


def _json_value(path: Path) -> Any:
    if path.stat().st_size > _MAX_JSON:
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _json(path: Path) -> bool:
    value = _json_value(path)
    if not isinstance(value, dict):
        return False
    if MARK in value or value.get("format") == "lrnet-pretrained":
        return True
    stages = value.get("stages")  # an `lrnet evaluate --out` record written before the marker
    if isinstance(stages, list) and stages and all(isinstance(s, dict) for s in stages):
        return all({"stage", "miou"} <= s.keys() for s in stages)
    return path.name == "class_weights.json" and {"source", "weights"} == value.keys()


def _history(path: Path) -> bool:
    """A run's ``history.jsonl``: every line lrnet's record (an empty one: a run just begun)."""
    with path.open(encoding="utf-8") as f:
        lines = [line for _, line in zip(range(50), f, strict=False) if line.strip()]
    records = [json.loads(line) for line in lines]
    return all(
        isinstance(r, dict) and r.get("kind") in ("train", "val") and "iteration" in r
        for r in records
    ) and (bool(records) or _yaml(path.with_name("config.yaml")))


def _head(path: Path, size: int = 4096) -> str:
    with path.open("rb") as f:
        return f.read(size).decode("utf-8", errors="replace")


def _yaml(path: Path) -> bool:
    return path.is_file() and _head(path).startswith(YAML_MARK)


def _html(path: Path) -> bool:
    head = _head(path)
    return HTML_MARK in head or "<title>lrnet report:" in head  # reports before the marker


def _markdown(path: Path) -> bool:
    return _head(path).startswith(CARD_MARK)


def _safetensors(path: Path) -> bool:
    with path.open("rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size)) if 0 < size <= _MAX_JSON else {}
    if MARK in (header.get("__metadata__") or {}):
        return True
    config = path.with_name("config.json")  # a save_pretrained folder's weights
    return config.is_file() and (_json_value(config) or {}).get("format") == "lrnet-pretrained"


def _mp4(path: Path) -> bool:
    import av

    with av.open(str(path)) as container:
        return str(container.metadata.get("comment", "")).startswith(MARK)


_CHECKS: dict[str, Callable[[Path], bool]] = {
    ".png": _png,
    ".onnx": _onnx,
    ".json": _json,
    ".jsonl": _history,
    ".yaml": _yaml,
    ".html": _html,
    ".md": _markdown,
    ".safetensors": _safetensors,
    ".mp4": _mp4,
}


def in_run_folder(path: Path) -> bool:
    """Whether ``path`` is one of ``RUN_FILES`` in a folder that holds lrnet's run layout: a
    ``config.yaml`` with lrnet's marker or a ``history.jsonl`` of lrnet's records."""
    folder = path.parent
    if path.name not in RUN_FILES:
        return False
    try:
        history = folder / "history.jsonl"
        return _yaml(folder / "config.yaml") or (history.is_file() and _history(history))
    except Exception:
        return False


_ADVICE = {
    errno.ENOSPC: "the disk is full: free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is used up: free some space or write elsewhere",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.EACCES: "the folder is not writable: choose one you can write to",
    errno.EPERM: "the folder is not writable: choose one you can write to",
    errno.EISDIR: "a folder is in the way: move it or choose another name",
    errno.ENOTDIR: "a file is in the way of a folder on the path: move it or choose another path",
    errno.EEXIST: "a file is in the way of a folder on the path: move it or choose another path",
}


def cannot_write(path: Path | str, exc: OSError, advice: str | None = None) -> LrnetError:
    """The one-line error for an ``OSError`` met writing ``path``: the reason and what to do."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    todo = advice or _ADVICE.get(exc.errno or 0, "check the path and the disk, then run again")
    return LrnetError(f"cannot write {path}: {reason}; {todo}")


def atomic_write(
    path: str | Path,
    write: Callable[[Any], Any],
    *,
    by_path: bool = False,
    mode: int = 0o644,
    advice: str | None = None,
) -> Path:
    """Write ``path`` through a temporary file in its folder, renamed over it once complete.

    A kill, a full disk or an error in ``write`` leaves the old file as it was. The folder is made
    if missing; the file gets ``mode`` (mkstemp's are 0600). An ``OSError`` is a LrnetError
    naming the file and what to do (``advice``, default by the error's kind).

    Args:
        write: called with the open binary file, or with the temporary file's path when
            ``by_path`` (for writers that take a file name, such as ``torch.onnx.export``).
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".tmp")
        tmp = Path(name)
        with os.fdopen(fd, "wb") as f:
            if not by_path:
                write(f)
                f.flush()
        if by_path:
            write(tmp)
        with open(tmp, "rb+") as f:  # the file ``write`` left there, whichever way it wrote
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        raise cannot_write(path, exc, advice) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return path


# atomic_write's temporary files: ``.<name>.lrnet-<host>-<pid>-<random>.tmp``. The host and the
# process id tell a file whose writer was killed (kill -9, a power cut) from one being written.
_HOST = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:40] or "host"
_TEMPORARY = re.compile(rf"^\..+\.lrnet-{re.escape(_HOST)}-(\d+)-[a-z0-9_]+\.tmp$")
_swept: set[Path] = set()


def temporary_prefix(path: Path) -> str:
    """The start of this process's temporary files for ``path``, its name cut to 120 bytes (so
    that a name near the 255-byte limit has one too)."""
    name = os.fsencode(path.name)[:120].decode("utf-8", "ignore") or "file"
    return f".{name}.lrnet-{_HOST}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process; a pid past the limit
        return True
    return True


def temporary_path(path: Path) -> Path:
    """A hidden, unused name beside ``path`` for a writer other than ``atomic_write`` (a video
    encoder, a folder of frames), named as its temporaries so that a killed run's are removed."""
    remove_stale_temporaries(path.parent)
    return path.with_name(f"{temporary_prefix(path)}{secrets.token_hex(4)}.tmp")


def remove_stale_temporaries(folder: str | Path) -> None:
    """Remove the temporary files and folders of ``atomic_write`` in ``folder`` whose writer on
    this host is dead; once per folder and process. A live process's, or another machine's, are
    left alone."""
    folder = Path(folder)
    key = folder.resolve()
    if key in _swept:
        return
    _swept.add(key)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        found = _TEMPORARY.match(entry.name)
        if found and not _alive(int(found.group(1))):
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)


def write_text(path: str | Path, text: str, **kwargs: Any) -> Path:
    """``atomic_write`` of UTF-8 text."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")), **kwargs)


def read_utf8(path: Path, what: str, advice: str, error: type[LrnetError] = LrnetError) -> str:
    """The UTF-8 text of ``path``; ``error`` naming ``what``, the file and the first bad byte,
    then ``advice``, when it is not UTF-8 (an unreadable file raises OSError)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(
            f"{what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
            + advice
        ) from None


def same_file(a: Path | str, b: Path | str) -> bool:
    """Whether ``a`` and ``b`` are the same file (by any path, links included)."""
    try:
        return Path(a).resolve() == Path(b).resolve() or os.path.samefile(a, b)
    except OSError:
        return False


def _input_hit(path: Path, inputs: Iterable[Path | str]) -> Path | None:
    """The input ``path`` is, or lies inside, if any."""
    resolved = path.resolve()
    for given in inputs:
        source = Path(given)
        if same_file(path, source) or (source.is_dir() and source.resolve() in resolved.parents):
            return source
    return None


def check_replaceable(
    path: str | Path,
    *,
    overwrite: bool = False,
    inputs: Iterable[Path | str] = (),
    advice: str = "choose another name, move the file, or give --overwrite",
) -> None:
    """Refuse an output ``path`` that is an input (or inside an input folder), a folder, or a
    file lrnet did not write (unless ``overwrite``); ``advice`` ends the message.

    Raises:
        LrnetError: naming ``path`` and why it may not be replaced.
    """
    path = Path(path)
    hit = _input_hit(path, inputs)
    if hit is not None:
        where = "is" if same_file(path, hit) else "is inside"
        raise LrnetError(
            f"the output {path} {where} the input {hit}; an output never replaces an input: "
            "choose another output name"
        )
    if path.is_dir() and not path.is_symlink():
        raise LrnetError(f"the output {path} is a folder; give a file name, or move the folder")
    if overwrite or not (path.exists() or path.is_symlink()) or written_by_lrnet(path):
        return
    raise LrnetError(
        f"{path} exists and was not written by lrnet; refusing to replace it: {advice}"
    )
