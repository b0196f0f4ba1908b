"""The architecture's rules, read from the source with ``ast``: layers import only downward,
strategies never import each other, only the engine touches llama.cpp, and there is no
import cycle. A change that breaks a rule fails here, naming the import."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
FOUNDATION = ("ponder.types", "ponder.errors", "ponder.config", "ponder.protocol")
STRATEGIES = "ponder.reasoning.strategies"
# What a strategy may never reach: it sees a Backend and shared reasoning pieces, nothing of
# how requests arrive, are routed or are served.
ABOVE_STRATEGIES = (
    "ponder.gateway",
    "ponder.server",
    "ponder.cli",
    "ponder.bench",
    "ponder.engine",
    "ponder.routing",
    "ponder.backends.embedded",
    "ponder.backends.remote",
    "ponder.reasoning.runner",
    "ponder.reasoning.registry",
    "ponder.reasoning.selection",
)


@dataclass(frozen=True, slots=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module
    line: int
    top_level: bool  # at import time (not in a function, not under TYPE_CHECKING)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in SRC.rglob("*.py")}


def imports(name: str, source: str, known: set[str]) -> Iterator[Import]:
    tree = ast.parse(source)

    def visit(node: ast.AST, top: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                yield from visit_body(child.body, top=False)
                yield from visit_body(child.orelse, top)
                continue
            inner = top and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(name, alias.name, child.lineno, inner)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                for alias in child.names:
                    candidate = f"{child.module}.{alias.name}"
                    target = candidate if candidate in known else child.module
                    yield Import(name, target, child.lineno, inner)
            yield from visit(child, inner)

    def visit_body(body: list[ast.stmt], top: bool) -> Iterator[Import]:
        holder = ast.Module(body=body, type_ignores=[])
        yield from visit(holder, top)

    yield from visit(tree, True)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def all_imports() -> list[Import]:
    found = modules()
    known = set(found)
    return [i for name, path in found.items() for i in imports(name, path.read_text(), known)]


def within(module: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_foundation_imports_nothing_above_it() -> None:
    broken = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in all_imports()
        if within(i.source, FOUNDATION)
        and i.top_level
        and within(i.target, "ponder")
        and not within(i.target, FOUNDATION)
        and i.target != "ponder"
    ]
    assert broken == []


def test_strategies_import_only_shared_pieces() -> None:
    broken = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in all_imports()
        if within(i.source, STRATEGIES)
        and (
            (within(i.target, STRATEGIES) and i.target not in (STRATEGIES, i.source))
            or within(i.target, ABOVE_STRATEGIES)
        )
    ]
    assert broken == []


def test_only_the_engine_touches_llama_cpp() -> None:
    broken = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in all_imports()
        if within(i.target, "llama_cpp") and not within(i.source, "ponder.engine")
    ]
    assert broken == []


def test_there_is_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {name: set() for name in modules()}
    for i in all_imports():
        if i.top_level and i.target in graph and i.target != i.source:
            graph[i.source].add(i.target)
    cycle = _find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := walk(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := walk(start)) is not None:
            return found
    return None


def test_the_rules_see_a_break() -> None:
    """The checker itself: an import at module level, one in a function and one under
    TYPE_CHECKING are told apart."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "from ponder.reasoning.strategies.cot import ChainOfThought\n"
        "if TYPE_CHECKING:\n    from ponder.server import app\n"
        "def f():\n    import llama_cpp\n"
    )
    found = [
        (i.target, i.top_level)
        for i in imports("probe", source, set(modules()))
        if i.target != "typing"
    ]
    assert found == [
        ("ponder.reasoning.strategies.cot", True),
        ("ponder.server.app", False),
        ("llama_cpp", False),
    ]
