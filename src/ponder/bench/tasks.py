"""Benchmark tasks: how to load examples, what to ask, and how to grade an answer.

Built-in tasks are registered by name; a user's own task is named as ``module:Class`` and
imported, so nobody has to edit Ponder to add one.
"""

from __future__ import annotations

import gzip
import importlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ponder.errors import ConfigError
from ponder.reasoning.answers import extract_number, normalize_number, normalize_text
from ponder.reasoning.base import AnswerFormat
from ponder.sandbox import ProgramSandbox, Sandbox, SandboxLimits
from ponder.types import Message


@dataclass(frozen=True, slots=True)
class Example:
    id: str
    question: str
    answer: str  # the reference answer, normalised by the task
    meta: Mapping[str, Any] = field(default_factory=dict)


class Task(Protocol):
    name: ClassVar[str]
    answer_format: ClassVar[AnswerFormat]

    def load(self, path: Path) -> list[Example]: ...

    def messages(self, example: Example) -> tuple[Message, ...]: ...

    async def grade(self, example: Example, text: str, answer: str | None) -> bool: ...


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def numbers_equal(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    try:
        return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(b)))
    except ValueError:
        return a == b


class Gsm8k:
    """GSM8K: the reference is the number after ``####``; graded by numeric equality."""

    name: ClassVar[str] = "gsm8k"
    answer_format: ClassVar[AnswerFormat] = "number"

    def load(self, path: Path) -> list[Example]:
        out = []
        for i, row in enumerate(read_jsonl(path)):
            reference = normalize_number(str(row["answer"]).split("####")[-1]) or ""
            out.append(
                Example(id=str(row.get("id", i)), question=str(row["question"]), answer=reference)
            )
        return out

    def messages(self, example: Example) -> tuple[Message, ...]:
        return (Message("user", example.question),)

    async def grade(self, example: Example, text: str, answer: str | None) -> bool:
        return numbers_equal(answer if answer is not None else extract_number(text), example.answer)


class Svamp(Gsm8k):
    """SVAMP: ``Body`` + ``Question`` with a numeric ``Answer``."""

    name: ClassVar[str] = "svamp"

    def load(self, path: Path) -> list[Example]:
        out = []
        for i, row in enumerate(read_jsonl(path)):
            question = (
                f"{row.get('Body', '')} {row.get('Question', row.get('question', ''))}".strip()
            )
            reference = normalize_number(str(row.get("Answer", row.get("answer", "")))) or ""
            out.append(Example(id=str(row.get("ID", i)), question=question, answer=reference))
        return out


class JsonlTask:
    """Any JSONL with ``question`` and ``answer``: numeric equality when both are numbers,
    else normalised exact match."""

    name: ClassVar[str] = "jsonl"
    answer_format: ClassVar[AnswerFormat] = "auto"

    def load(self, path: Path) -> list[Example]:
        return [
            Example(
                id=str(row.get("id", i)),
                question=str(row["question"]),
                answer=str(row["answer"]).strip(),
            )
            for i, row in enumerate(read_jsonl(path))
        ]

    def messages(self, example: Example) -> tuple[Message, ...]:
        return (Message("user", example.question),)

    async def grade(self, example: Example, text: str, answer: str | None) -> bool:
        reference_number = normalize_number(example.answer)
        if (
            reference_number is not None
            and normalize_text(example.answer).replace(" ", "").replace(".", "").isdigit()
        ):
            return numbers_equal(
                answer if answer is not None else extract_number(text), reference_number
            )
        got = normalize_text(answer if answer is not None else text)
        return got == normalize_text(example.answer)


class HumanEval:
    """HumanEval: complete the function; graded by its unit tests in the sandbox."""

    name: ClassVar[str] = "humaneval"
    answer_format: ClassVar[AnswerFormat] = "text"

    def __init__(self, sandbox: ProgramSandbox | None = None) -> None:
        self.sandbox = sandbox or Sandbox()

    def load(self, path: Path) -> list[Example]:
        return [
            Example(
                id=str(row["task_id"]),
                question=str(row["prompt"]),
                answer=str(row["entry_point"]),
                meta={"test": row["test"], "prompt": row["prompt"]},
            )
            for row in read_jsonl(path)
        ]

    def messages(self, example: Example) -> tuple[Message, ...]:
        ask = (
            "Complete this Python function. Reply with the whole function in one ```python code "
            f"block.\n\n```python\n{example.question}```"
        )
        return (Message("user", ask),)

    async def grade(self, example: Example, text: str, answer: str | None) -> bool:
        from ponder.reasoning.programs import extract_code

        code = extract_code(text) or text
        if f"def {example.answer}" not in code:
            code = str(example.meta["prompt"]) + code
        program = f"{code}\n\n{example.meta['test']}\n\ncheck({example.answer})\n"
        result = await self.sandbox.run(program, SandboxLimits(wall_seconds=10.0, cpu_seconds=10))
        return result.ok


TASKS: Mapping[str, type[Task]] = {cls.name: cls for cls in (Gsm8k, Svamp, JsonlTask, HumanEval)}


def load_task(name: str, sandbox: ProgramSandbox | None = None) -> Task:
    """A built-in task by name, or ``package.module:Class`` for a user's own. A task that
    grades by running code (it has a ``sandbox``) runs it in ``sandbox`` when given."""
    if name in TASKS:
        builtin = TASKS[name]()
        if sandbox is not None and hasattr(builtin, "sandbox"):
            builtin.sandbox = sandbox
        return builtin
    module_name, sep, attr = name.partition(":")
    if not sep:
        raise ConfigError(
            f"unknown task {name!r}; built in: {', '.join(TASKS)}; or give module:Class"
        )
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load task {name!r}: {exc}") from exc
    task: Task = cls()
    return task
