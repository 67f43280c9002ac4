"""How lrnet recognises its own files, so that a rerun may replace them and nothing else.

By a marker where the format has room for one (``MARK`` as a PNG text chunk, an ONNX
``metadata_props`` key, a JSON key, safetensors metadata, the MP4 comment, an HTML ``generator``
meta tag, a YAML comment, the model card's front matter), else by the layout lrnet writes (an
``lrnet evaluate`` JSON, a run's ``history.jsonl``, a file of a run folder or of a
``save_pretrained`` folder).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

MARK = "lrnet"  # the marker's key in every format that has one; the value says what wrote it
HTML_MARK = '<meta name="generator" content="lrnet'
YAML_MARK = "# lrnet:"
CARD_MARK = "---\nlibrary_name: lrnet\n"
RUN_FILES = ("config.yaml", "history.jsonl", "last.pt", "best.pt", "class_weights.json")
_MAX_JSON = 64 << 20  # bytes: a larger .json is not one lrnet wrote (its are kilobytes)


def written_by_lrnet(path: str | Path) -> bool:
    """Whether the file at ``path`` carries lrnet's marker or has the layout lrnet writes.

    A symbolic link, a folder or an unreadable file is never lrnet's.
    """
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
