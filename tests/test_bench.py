"""The benchmark harness: graders, resume, bootstrap intervals, the report command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ponder.backends.scripted import ScriptedBackend
from ponder.bench.report import bootstrap_ci, markdown_table, summarize
from ponder.bench.runner import RunDir, StrategySystem, parse_systems, run_bench
from ponder.bench.tasks import Example, Gsm8k, HumanEval, JsonlTask, load_task
from ponder.cli import main
from ponder.types import GenerationRequest


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


async def test_gsm8k_grader(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "g.jsonl", [{"question": "q", "answer": "work\n#### 1,080"}])
    (example,) = Gsm8k().load(data)
    assert example.answer == "1080"
    assert await Gsm8k().grade(example, "so The answer is: $1,080.00", None)
    assert await Gsm8k().grade(example, "", "1080")
    assert not await Gsm8k().grade(example, "The answer is 108", None)


async def test_jsonl_grader_numbers_and_text(tmp_path: Path) -> None:
    task = JsonlTask()
    number = Example("1", "q", "42")
    word = Example("2", "q", "Paris")
    assert await task.grade(number, "The answer is: 42.0", None)
    assert await task.grade(word, "The answer is: paris.", "paris")
    assert not await task.grade(word, "", "london")


async def test_humaneval_grader_runs_the_unit_tests() -> None:
    example = Example(
        "HumanEval/x",
        "def add(a, b):\n",
        "add",
        meta={"prompt": "def add(a, b):\n", "test": "def check(f):\n    assert f(2, 3) == 5\n"},
    )
    task = HumanEval()
    assert await task.grade(example, "```python\ndef add(a, b):\n    return a + b\n```", None)
    assert not await task.grade(example, "```python\ndef add(a, b):\n    return a - b\n```", None)


def test_user_task_by_import_path() -> None:
    assert isinstance(load_task("ponder.bench.tasks:Gsm8k"), Gsm8k)
    with pytest.raises(Exception, match="unknown task"):
        load_task("nope")


def test_bootstrap_interval_is_reproducible() -> None:
    outcomes = [True] * 7 + [False] * 3
    assert bootstrap_ci(outcomes) == bootstrap_ci(outcomes)
    low, high = bootstrap_ci(outcomes)
    assert low < 0.7 < high
    assert bootstrap_ci([True] * 5) == (1.0, 1.0)


async def test_run_resumes_without_repeating_work(tmp_path: Path) -> None:
    def script(request: GenerationRequest, index: int) -> str:
        question = request.messages[-1].content
        return f"The answer is: {len(question)}"

    backend = ScriptedBackend(script)
    examples = [Example(str(i), "x" * (i + 1), str(i + 1)) for i in range(4)]
    systems = [
        StrategySystem(label, spec, backend)
        for label, spec in parse_systems("cot,self-consistency;n=3")
    ]
    run_dir = RunDir(tmp_path / "run")
    await run_bench(Gsm8k(), examples[:2], systems, run_dir)
    assert len(backend.calls) == 4
    records = await run_bench(Gsm8k(), examples, systems, run_dir)
    assert len(backend.calls) == 8  # only the two new examples, for both systems
    assert len(records) == 8 and all(r.correct for r in records)
    summary = summarize(records)
    assert [s.system for s in summary] == ["cot", "self-consistency;n=3"]
    assert summary[1].completion_tokens == 3 * summary[0].completion_tokens
    assert "| cot | 4 | 100.0%" in markdown_table(summary)


def test_report_command_rerenders_from_records(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    from ponder.bench.runner import Record

    run.append(Record("cot", "0", True, "1", "1", 10, 20, 0, 1, 1.0))
    run.append(Record("cot", "1", False, "2", "3", 10, 30, 0, 1, 1.0))
    result = CliRunner().invoke(main, ["bench", "report", str(run.path)])
    assert result.exit_code == 0, result.output
    assert "| cot | 2 | 50.0%" in result.output
    assert (run.path / "report.md").exists()
