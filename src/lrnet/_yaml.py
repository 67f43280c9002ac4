"""YAML read within bounds (no alias bombs, no duplicate keys) and values quoted within bounds."""

from __future__ import annotations

import reprlib
from typing import Any

import yaml

MAX_QUOTE = 80  # characters of a value an error message shows
MAX_YAML_VALUES = 100_000  # values a config may hold once its aliases are expanded

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, MAX_QUOTE, MAX_QUOTE, MAX_QUOTE
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8


def quote(value: Any) -> str:
    """``repr(value)`` for a message, at most ``MAX_QUOTE`` characters, in bounded time (a
    value may be huge: a list built of YAML aliases, a long string)."""
    text = _REPR.repr(value)
    return text if len(text) <= MAX_QUOTE else text[: MAX_QUOTE - 3] + "..."


class _Refused(yaml.YAMLError):
    """A document ``BoundedLoader`` refuses."""


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases that expand to more than ``MAX_YAML_VALUES`` values
    (a 400-byte "billion laughs" reaches 10**9) or refer to themselves, and a key given twice in
    one mapping (PyYAML would keep the last one without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        lines: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key, line = (key_node.tag, key_node.value), key_node.start_mark.line + 1
            if key in lines:
                raise _Refused(
                    f"key {quote(key_node.value)} appears twice in one mapping (lines "
                    f"{lines[key]} and {line}); PyYAML would keep the last alone: merge them"
                )
            lines[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_document(self, node: yaml.Node) -> Any:
        if _expanded_size(node, {}, set()) > MAX_YAML_VALUES:
            raise _Refused(
                f"its aliases (*name) expand to more than {MAX_YAML_VALUES:,} values; write "
                "the values out"
            )
        return super().construct_document(node)


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Values under ``node`` with every alias expanded (each node counted once per use)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise _Refused("an alias refers to the value that holds it; write the values out")
    open_nodes.add(key)
    children: list[yaml.Node] = []
    if isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    total = 1
    for child in children:
        total += _expanded_size(child, sizes, open_nodes)
        if total > MAX_YAML_VALUES:
            break
    open_nodes.discard(key)
    sizes[key] = total
    return total


def read_yaml(text: str) -> Any:
    """``yaml.safe_load`` with ``BoundedLoader``: a bounded amount of data, or a YAMLError."""
    return yaml.load(text, Loader=BoundedLoader)
