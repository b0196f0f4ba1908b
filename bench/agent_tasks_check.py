"""Checks bench/agent_tasks.jsonl: every task is well formed and its answer is what its own
``solution`` computes.

Each line is one task: ``id``, ``kind`` (``arithmetic``, ``files`` or ``mcp``), ``prompt``,
``answer`` (a number or a short string), ``tools`` (the tools it is meant for: ``python``,
``calculator``, ``mcp:lookup``), and optionally ``files`` (name to content, put in the
python tool's working directory) and ``lookup_table`` (what the bench's MCP server's
``lookup(key)`` returns, for ``mcp`` tasks). ``solution`` is a Python snippet that sets
``result`` from ``files`` and ``table``.

The solutions are run with ``exec`` here and only here: they are this repository's own
data, written and reviewed with the tasks, never a model's output (a model's answer is only
ever compared, never run).

    python bench/agent_tasks_check.py [bench/agent_tasks.jsonl]
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any

TASKS = Path(__file__).with_name("agent_tasks.jsonl")
KINDS = {"arithmetic": 20, "files": 10, "mcp": 10}  # the least of each kind
TOOLS = {"python", "calculator", "mcp:lookup"}
FIELDS = {"id", "kind", "prompt", "answer", "tools", "solution", "files", "lookup_table"}


def problems(task: dict[str, Any]) -> list[str]:
    """What is wrong with one task; empty when its answer is its solution's result."""
    found = [f"unknown field {name!r}" for name in sorted(set(task) - FIELDS)]
    if task.get("kind") not in KINDS:
        found.append(f"kind {task.get('kind')!r}")
    answer = task.get("answer")
    if not isinstance(answer, int | float | str) or isinstance(answer, bool):
        found.append(f"answer {answer!r} is not a number or a string")
    tools = task.get("tools")
    if not tools or not set(tools) <= TOOLS:
        found.append(f"tools {tools!r}")
    if task.get("kind") == "files" and not task.get("files"):
        found.append("a files task without files")
    if task.get("kind") == "mcp" and (
        "mcp:lookup" not in (tools or ()) or not task.get("lookup_table")
    ):
        found.append("an mcp task without mcp:lookup or its lookup_table")
    namespace: dict[str, Any] = {
        "files": dict(task.get("files") or {}),
        "table": dict(task.get("lookup_table") or {}),
    }
    try:
        exec(task["solution"], namespace)  # our own data: see the module's docstring
    except Exception as exc:
        return [*found, f"solution fails: {exc!r}"]
    if not same(namespace.get("result"), answer):
        found.append(f"solution gives {namespace.get('result')!r}, answer is {answer!r}")
    return found


def same(result: object, answer: object) -> bool:
    """Exact for integers and strings; floats up to their last printed digit."""
    if isinstance(answer, float) or isinstance(result, float):
        if not isinstance(result, int | float) or not isinstance(answer, int | float):
            return False
        return math.isclose(result, answer, rel_tol=0, abs_tol=1e-9)
    return type(result) is type(answer) and result == answer


def main(path: Path) -> int:
    tasks = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    failures = 0
    for task in tasks:
        for problem in problems(task):
            failures += 1
            print(f"{task.get('id')}: {problem}")
    ids = Counter(t.get("id") for t in tasks)
    for duplicate in sorted(str(i) for i, k in ids.items() if k > 1):
        failures += 1
        print(f"{duplicate}: id used more than once")
    kinds = Counter(t.get("kind") for t in tasks)
    for kind, least in KINDS.items():
        if kinds[kind] < least:
            failures += 1
            print(f"{kind}: {kinds[kind]} tasks, want at least {least}")
    print(f"{len(tasks)} tasks ({', '.join(f'{k} {kinds[k]}' for k in KINDS)}): ", end="")
    print("all answers check" if not failures else f"{failures} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else TASKS))
