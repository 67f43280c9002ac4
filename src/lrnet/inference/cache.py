"""The graph cache under ``$LRNET_HOME`` kept usable: an entry cut short or overwritten is found
without reading it through onnx (``whole``), removed and made again, and where the cache cannot
be written this run's graphs go to a temporary folder (``writable``), each said in one line.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

# Top-level fields (onnx.proto's ModelProto) of every graph lrnet caches; one missing: cut short.
_FIELDS = {7: "graph", 8: "opset", 14: "metadata"}

# Cache folders that could not be written -> this run's temporary folder for them.
_fallback: dict[Path, Path] = {}


def say(message: str) -> None:
    print(f"lrnet: {message}", file=sys.stderr)


def current(folder: Path) -> Path:
    """Where ``folder``'s graphs are in this run: itself, or its temporary stand-in."""
    return _fallback.get(folder, folder)


def graph_problem(path: Path) -> str | None:
    """What makes a cached ``.onnx`` file unusable, or ``None`` when it is whole.

    Reads only the protobuf framing of the top-level fields (no onnx import): a file cut short
    ends a field past its end or lacks the graph, opset or metadata; another kind of file breaks
    the framing. Damage inside a field is left to the runtime that loads it.
    """
    seen: set[int] = set()
    try:
        with open(path, "rb") as f:
            end = os.fstat(f.fileno()).st_size
            while f.tell() < end:
                tag = _varint(f)
                kind = tag & 7  # the wire type: varint, 64-bit, length-delimited or 32-bit
                if kind not in (0, 1, 2, 5) or tag >> 3 == 0:
                    return "not an ONNX file"
                if kind == 0:
                    _varint(f)
                else:
                    f.seek(_varint(f) if kind == 2 else {1: 8, 5: 4}[kind], os.SEEK_CUR)
                seen.add(tag >> 3)
            if f.tell() > end:
                return "cut short"
    except EOFError:
        return "cut short"
    except ValueError:
        return "not an ONNX file"
    except OSError as exc:
        return f"unreadable: {exc.strerror or type(exc).__name__}"
    missing = [name for number, name in _FIELDS.items() if number not in seen]
    return f"cut short: no {', '.join(missing)}" if missing else None


def _varint(f: IO[bytes]) -> int:
    value = shift = 0
    while byte := f.read(1):
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 10 bytes")
    raise EOFError


def whole(path: Path, *entry: Path) -> bool:
    """Whether the cached graph ``path`` is there and whole; a damaged one is ``discard``-ed."""
    if not path.is_file():
        return False
    problem = graph_problem(path)
    if problem is not None:
        discard(path, problem, *entry)
    return problem is None


def read_record(path: Path) -> dict[str, Any] | None:
    """A cached JSON record (``int8.json``) as a dict; ``None`` when there is none or it is
    damaged (then ``discard``-ed)."""
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # a cut file: JSONDecodeError, UnicodeDecodeError
        discard(path, type(exc).__name__)
        return None
    if not isinstance(stored, dict):
        discard(path, f"a JSON {type(stored).__name__}, not a mapping")
        return None
    return stored


def discard(path: Path, problem: str, *entry: Path) -> None:
    """Remove a damaged cache file (and the rest of its ``entry``), saying so in one line."""
    removed = True
    for file in (path, *entry):
        try:
            file.unlink(missing_ok=True)
        except OSError:  # a read-only cache: left, and the graph is made elsewhere
            removed = False
    done = "removed, to be made again" if removed else "left in place (read-only), made elsewhere"
    say(f"{path} in the graph cache is damaged ({problem}): {done}")


def writable(folder: Path) -> Path:
    """``folder`` (made if missing) when graphs can be written into it; else a temporary folder
    for this run, removed at exit, with one line on stderr saying why."""
    if folder in _fallback:
        return _fallback[folder]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # nameless where it can be: a kill leaves none
            return folder
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    stand_in = _fallback[folder] = Path(tempfile.mkdtemp(prefix="lrnet-graphs-"))
    atexit.register(shutil.rmtree, stand_in, ignore_errors=True)
    say(
        f"cannot write the graph cache {folder} ({reason}); this run's graphs go to {stand_in} "
        "and are made again next time: set LRNET_HOME to a folder you can write to keep them"
    )
    return stand_in
