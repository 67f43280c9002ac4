"""The shape of the package, read from its source: no import circle (imports inside functions
count), no module over 450 lines, no function over 60, and the commands kept in ``lrnet.cli``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


def module_name(path: Path, root: Path = SRC) -> str:
    name = ".".join(path.relative_to(root).with_suffix("").parts)
    return name.removesuffix(".__init__")


def modules(root: Path = SRC) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted((root / "lrnet").rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its file (at the top, inside
    functions), except under ``if TYPE_CHECKING:``, which never runs."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    unrun = {
        id(node)
        for guard in ast.walk(tree)
        if isinstance(guard, ast.If) and "TYPE_CHECKING" in ast.unparse(guard.test)
        for node in ast.walk(guard)
    }
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in unrun:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in known else base)
    return (found & known) - {name}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every circle a depth-first walk of ``graph`` meets, as the modules along it."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []
    found: list[list[str]] = []

    def walk(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module)
    return found


def import_graph(root: Path = SRC) -> dict[str, set[str]]:
    found = modules(root)
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def test_no_import_circle() -> None:
    graph = import_graph()
    assert sum(len(targets) for targets in graph.values()) > 100  # the walk sees the imports
    assert circles(graph) == []


def test_a_circle_is_found(tmp_path: Path) -> None:
    """The check can fail: a circle made through an import inside a function is reported."""
    package = tmp_path / "lrnet"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from lrnet.b import f\n")
    (package / "b.py").write_text("def f():\n    from lrnet import c\n")
    (package / "c.py").write_text("import lrnet.a\nif TYPE_CHECKING:\n    from lrnet import b\n")
    assert circles(import_graph(tmp_path)) == [["lrnet.a", "lrnet.b", "lrnet.c", "lrnet.a"]]


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_and_function_sizes(name: str) -> None:
    source = modules()[name].read_text(encoding="utf-8")
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{name}: split it"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == [], f"{name}: {', '.join(long)}"


def test_every_command_is_a_module_of_the_cli_package() -> None:
    """One module per command, each with ``add_arguments`` and ``main``; none elsewhere."""
    from lrnet.cli import COMMANDS

    for name, (module, _) in COMMANDS.items():
        assert module.startswith("lrnet.cli."), (name, module)
        tree = ast.parse(modules()[module].read_text(encoding="utf-8"))
        defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert {"add_arguments", "main"} <= defined, module
    outside = [
        name
        for name, path in modules().items()
        if not name.startswith("lrnet.cli")
        and any(
            isinstance(node, ast.FunctionDef) and node.name == "main"
            for node in ast.parse(path.read_text(encoding="utf-8")).body
        )
    ]
    assert outside == []
