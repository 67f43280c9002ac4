"""Reading a run's history.jsonl and an ``lrnet evaluate --out`` JSON, with their shapes checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lrnet._errors import LrnetError
from lrnet._files import read_utf8
from lrnet.report.tables import METRICS


def _numbered_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` of each JSON object line (see ``read_records``)."""
    if not path.is_file():
        raise LrnetError(f"history file {path} does not exist")
    text = read_utf8(path, "history file", "it is not a history lrnet wrote, or it is damaged")
    lines = text.splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines) and not text.endswith("\n"):
                break  # torn by a kill
            raise LrnetError(
                f"{path}:{number} is not valid JSON ({exc.msg}); the file is damaged"
            ) from None
        if not isinstance(record, dict):
            raise LrnetError(f"{path}:{number} is not a JSON object")
        if not _is_number(record.get("iteration")):
            raise LrnetError(f"{path}:{number} has no iteration number; the file is damaged")
        records.append((number, record))
    return records


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines history file, in file order, blank lines skipped and a last
    line torn by a kill left out.

    Raises:
        LrnetError: the file is missing or not UTF-8, or a whole line is not a JSON object with
            an ``iteration`` number (naming the line).
    """
    return [record for _, record in _numbered_records(Path(path))]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers_or_null(*values: Any) -> bool:
    return all(v is None or _is_number(v) for v in values)


def _shape_problem(record: dict[str, Any]) -> str | None:
    """What is wrong with the shape of a train or val record of a history, if anything."""
    if record.get("kind") == "train":
        if not _numbers_or_null(record.get("loss")):
            return "its loss is not a number"
        losses = record.get("stage_losses")
        if not (losses is None or (isinstance(losses, list) and _numbers_or_null(*losses))):
            return "its stage_losses are not a list of numbers"
    elif record.get("kind") == "val":
        return _stages_problem(record.get("stages"))
    return None


def _stages_problem(stages: Any) -> str | None:
    """What is wrong with a ``stages`` list (of a val record or an evaluation), if anything."""
    if not isinstance(stages, list) or not all(isinstance(s, dict) for s in stages):
        return "its stages are not a list of objects"
    for k, stage in enumerate(stages):
        for key, _ in METRICS:
            if not _numbers_or_null(stage.get(key)):
                return f"stage {k + 1}'s {key} is not a number"
        size = stage.get("size")
        if size is not None and not (
            isinstance(size, list) and len(size) == 2 and all(_is_number(v) for v in size)
        ):
            return f"stage {k + 1}'s size is not [h, w]"
    return None


def read_history(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(train, val)``: the records of a history file (``read_records``) of kind train and val,
    shapes checked (a LrnetError naming the line); other kinds are ignored."""
    records = _numbered_records(Path(path))
    for number, record in records:
        problem = _shape_problem(record)
        if problem:
            raise LrnetError(f"{path}:{number} is not a history record lrnet wrote: {problem}")
    train = [r for _, r in records if r.get("kind") == "train"]
    return train, [r for _, r in records if r.get("kind") == "val"]


def check_evaluation(evaluation: Any, path: Path | str) -> dict[str, Any]:
    """``evaluation`` if it has the shape of an ``lrnet evaluate --out`` JSON, else an error
    naming ``path`` and what is wrong."""
    advice = "write it with `lrnet evaluate --out`"
    if not isinstance(evaluation, dict) or not isinstance(evaluation.get("stages"), list):
        raise LrnetError(f"{path} has no 'stages' list; {advice}")
    problem = _stages_problem(evaluation["stages"])
    per_class = evaluation.get("per_class")
    if problem is None and per_class is not None:
        rows = per_class if isinstance(per_class, list) else [None]
        for row in rows:
            if not (isinstance(row, dict) and _numbers_or_null(row.get("iou"), row.get("acc"))):
                problem = "its per_class is not a list of {name, iou, acc} objects"
                break
    if problem:
        raise LrnetError(f"{path} is not an `lrnet evaluate --out` JSON: {problem}; {advice}")
    return evaluation
