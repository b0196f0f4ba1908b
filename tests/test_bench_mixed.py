"""bench/mixed.py's pure parts: the loaders, grading, resume, and (bench/mixed_report.py) the
report and the chat sheet, with a scripted gateway and no model."""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ponder.bench.tasks import Example
from ponder.gateway.reply import Reply
from ponder.types import Choice, Message, Usage

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# Under its own name first: bench/mixed.py imports its sibling as ``mixed_report``.
mixed_report = _load("mixed_report", BENCH / "mixed_report.py")
mixed = _load("bench_mixed", BENCH / "mixed.py")


def write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_data(tmp_path: Path) -> tuple[Path, Path]:
    """A data dir and a mixed dir, small."""
    data, sets = tmp_path / "data", tmp_path / "mixed"
    data.mkdir()
    sets.mkdir()
    write_jsonl(
        data / "gsm8k_test_calib.jsonl",
        [{"question": f"q{i}", "answer": f"work\n#### {i},000"} for i in range(215)],
    )
    with gzip.open(data / "humaneval.jsonl.gz", "wt", encoding="utf-8") as fh:
        for i in range(8):
            row = {
                "task_id": f"HumanEval/{i}",
                "prompt": f"def f{i}(x):\n",
                "test": "def check(c):\n    assert c(1) == 1\n",
                "entry_point": f"f{i}",
                "canonical_solution": "    return x\n",
            }
            fh.write(json.dumps(row) + "\n")
    write_jsonl(
        sets / "chat.jsonl",
        [{"id": f"chat-{i:02d}", "prompt": f"tell me {i}", "rubric": f"r{i}"} for i in range(3)],
    )
    write_jsonl(
        sets / "ambiguous.jsonl",
        [
            {
                "id": f"amb-{i:02d}",
                "category": "scope",
                "ambiguous": f"fix it {i}",
                "clear": f"fix the bug in line {i}",
                "readings": ["a", "b"],
            }
            for i in range(3)
        ],
    )
    return data, sets


# -- loaders ---------------------------------------------------------------------------------
def test_gsm8k_takes_rows_160_to_209_with_their_references(tmp_path: Path) -> None:
    data, _ = write_data(tmp_path)
    prompts = mixed.load_gsm8k(data / "gsm8k_test_calib.jsonl")
    assert [p.id for p in prompts] == [f"gsm8k-calib-{i}" for i in range(160, 210)]
    first = prompts[0]
    assert first.kind == "checkable"
    assert first.messages == (Message("user", "q160"),)
    assert first.example.answer == "160000"  # "#### 160,000"


def test_humaneval_takes_odd_tasks_gzipped_asked_as_humaneval_asks(tmp_path: Path) -> None:
    data, _ = write_data(tmp_path)
    prompts = mixed.load_humaneval(data / "humaneval.jsonl.gz")
    assert [p.id for p in prompts] == ["HumanEval/1", "HumanEval/3", "HumanEval/5", "HumanEval/7"]
    assert mixed.load_humaneval(data / "humaneval.jsonl.gz", count=2)[-1].id == "HumanEval/3"
    (message,) = prompts[0].messages
    assert message.content.startswith("Complete this Python function.")
    assert "def f1(x):" in message.content
    assert prompts[0].kind == "code" and prompts[0].example.answer == "f1"


def test_chat_and_ambiguity_sets(tmp_path: Path) -> None:
    _, sets = write_data(tmp_path)
    chat = mixed.load_chat(sets / "chat.jsonl")
    assert (chat[0].id, chat[0].kind, chat[0].rubric) == ("chat-00", "chat", "r0")
    pairs = mixed.load_ambiguous(sets / "ambiguous.jsonl")
    assert [(p.id, p.kind) for p in pairs[:2]] == [("amb-00-a", "ambiguous"), ("amb-00-c", "clear")]
    assert pairs[1].messages[0].content == "fix the bug in line 0"
    assert len(pairs) == 6


def test_limit_per_kind_and_kinds(tmp_path: Path) -> None:
    data, sets = write_data(tmp_path)
    prompts = mixed.load_prompts(data, sets, mixed.KINDS, limit=1)
    # One of each kind in turn, the ambiguity pair kept together.
    assert [p.id for p in prompts] == [
        "chat-00",
        "gsm8k-calib-160",
        "HumanEval/1",
        "amb-00-a",
        "amb-00-c",
    ]
    only = mixed.load_prompts(data, sets, ["ambiguous"], limit=2)
    assert [p.id for p in only] == ["amb-00-a", "amb-00-c", "amb-01-a", "amb-01-c"]
    everything = mixed.load_prompts(data, sets, mixed.KINDS)
    assert len(everything) == 3 + 50 + 4 + 6
    with pytest.raises(SystemExit, match="no such file"):
        mixed.load_prompts(tmp_path / "nowhere", sets, ["checkable"])


def test_ways() -> None:
    assert mixed.parse_ways("auto:low, cot,sc8,greedy") == ["auto:low", "cot", "sc8", "greedy"]
    assert mixed.strategy_of("greedy") == (None, 0.0)
    assert mixed.strategy_of("sc8") == ({"strategy": "self-consistency", "n": 8}, None)
    assert mixed.strategy_of("auto:high") == ({"strategy": "auto", "effort": "high"}, None)
    for bad in ("auto:huge", "beam", "cot,cot", ""):
        with pytest.raises(ValueError):
            mixed.parse_ways(bad)


# -- grading ---------------------------------------------------------------------------------
async def test_grading_of_checkable_and_ambiguity() -> None:
    example = Example("gsm8k-calib-1", "q", "18")
    checkable = mixed.Prompt("gsm8k-calib-1", "checkable", (), example=example)
    assert await mixed.grade(checkable, "so 3 and then 18", (), False, None)
    assert await mixed.grade(checkable, "The answer is 18.\nSo 20 was wrong", (), False, None)
    assert not await mixed.grade(checkable, "it is 17", (), False, None)
    # The strategy's own answer wins over the text's last number.
    assert await mixed.grade(checkable, "... 17", ({"answer": "18.0"},), False, None)
    ambiguous = mixed.Prompt("amb-01-a", "ambiguous", ())
    clear = mixed.Prompt("amb-01-c", "clear", ())
    assert await mixed.grade(ambiguous, "which one?", (), True, None) is True
    assert await mixed.grade(clear, "which one?", (), True, None) is False
    assert await mixed.grade(mixed.Prompt("chat-01", "chat", ()), "hi", (), False, None) is None


def test_precision_recall_f1_and_zero_divisions() -> None:
    assert mixed_report.prf(3, 1, 1) == (0.75, 0.75, 0.75)
    assert mixed_report.prf(0, 0, 0) == (None, None, None)  # nothing ambiguous, nothing asked
    assert mixed_report.prf(0, 0, 4) == (None, 0.0, 0.0)  # never asked
    assert mixed_report.prf(0, 2, 0) == (0.0, None, 0.0)  # asked only on clear prompts
    precision, recall, f1 = mixed_report.prf(1, 0, 3)
    assert (precision, recall) == (1.0, 0.25) and f1 == pytest.approx(0.4)


# -- running and resuming --------------------------------------------------------------------
class ScriptedGateway:
    """Answers by prompt: asks about ambiguous ones, fails on ``boom``."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Mapping[str, Any] | None, float | None, int | None]] = []

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        model: str | None,
        strategy: Mapping[str, Any] | None,
        max_tokens: int | None,
        temperature: float | None,
        seed: int | None,
    ) -> Reply:
        text = messages[-1].content
        self.asked.append((text, strategy, temperature, seed))
        if text == "boom":
            raise RuntimeError("the model fell over")
        clarify = text.startswith("fix it")
        details = ({"clarify": True, "kind": "ambiguous"},) if clarify else ({"kind": "chat"},)
        return Reply(
            choices=(Choice(0, "Which one?" if clarify else "The answer is 42", "stop", 5),),
            usage=Usage(prompt_tokens=10, completion_tokens=5, reasoning_tokens=2, calls=1),
            model="m",
            strategy=None if strategy is None else str(strategy["strategy"]),
            trace=None,
            details=details if strategy is not None else (),
            records=(),
            seconds=0.25,
        )


async def test_run_records_skips_finished_pairs_and_retries_errors(tmp_path: Path) -> None:
    prompts = [
        mixed.Prompt("amb-00-a", "ambiguous", (Message("user", "fix it 0"),)),
        mixed.Prompt("amb-00-c", "clear", (Message("user", "fix line 3"),)),
        mixed.Prompt("chat-09", "chat", (Message("user", "boom"),)),
    ]
    out = tmp_path / "results" / "records.jsonl"
    gateway = ScriptedGateway()
    lines: list[str] = []
    written = await mixed.run(
        gateway, prompts, ["cot", "greedy"], out, concurrency=2, echo=lines.append
    )
    assert len(written) == 6
    records = mixed.read_records(out)
    by = {(r["way"], r["id"]): r for r in records}
    cot = by[("cot", "amb-00-a")]
    assert cot["asked"] is True and cot["correct"] is True
    assert cot["detected_kind"] == "ambiguous"
    assert (cot["prompt_tokens"], cot["completion_tokens"], cot["calls"]) == (10, 5, 1)
    assert by[("greedy", "amb-00-a")]["asked"] is False  # no details: not asked
    assert by[("greedy", "amb-00-a")]["correct"] is False
    assert by[("cot", "amb-00-c")]["correct"] is True
    failed = by[("cot", "chat-09")]
    assert failed["error"] == "RuntimeError: the model fell over" and failed["correct"] is None
    sent = {(text, temperature, seed) for text, _, temperature, seed in gateway.asked}
    assert ("fix it 0", 0.0, 0) in sent and ("fix it 0", None, 0) in sent

    # Resumed: only the two failed pairs run again (and fail again, appended).
    again = ScriptedGateway()
    await mixed.run(again, prompts, ["cot", "greedy"], out, echo=lines.append)
    assert [text for text, *_ in again.asked] == ["boom", "boom"]
    assert len(mixed.read_records(out)) == 8
    assert mixed.pending(prompts, ["cot"], mixed.finished(mixed.read_records(out))) == [
        ("cot", prompts[2])
    ]
    # A line cut by a killed run is skipped, so its pair runs again.
    with out.open("a") as fh:
        fh.write('{"id": "amb-0')
    assert len(mixed.read_records(out)) == 8


# -- the report ------------------------------------------------------------------------------
def rec(
    id: str,
    kind: str,
    way: str,
    correct: bool | None,
    *,
    asked: bool = False,
    calls: int = 1,
    tokens: tuple[int, int] = (10, 10),
    error: str | None = None,
) -> dict[str, Any]:
    return {
        "id": id,
        "kind": kind,
        "way": way,
        "correct": correct,
        "asked": asked,
        "detected_kind": None,
        "prompt_tokens": tokens[0],
        "completion_tokens": tokens[1],
        "reasoning_tokens": 0,
        "calls": calls,
        "seconds": 1.0,
        "text": f"reply of {way} to {id}",
        "error": error,
    }


def hand_made() -> list[dict[str, Any]]:
    return [
        rec("chat-00", "chat", "cot", None),
        rec("chat-01", "chat", "cot", None, calls=3),
        rec("chat-00", "chat", "greedy", None),
        rec("chat-01", "chat", "greedy", None),
        rec("g-1", "checkable", "cot", True, tokens=(50, 150)),
        rec("g-2", "checkable", "cot", False, tokens=(50, 50)),
        rec("g-1", "checkable", "greedy", False),
        rec("g-2", "checkable", "greedy", None, error="boom"),
        rec("amb-00-a", "ambiguous", "cot", True, asked=True),
        rec("amb-00-c", "clear", "cot", False, asked=True),
        rec("amb-01-a", "ambiguous", "cot", False),
        rec("amb-01-c", "clear", "cot", True),
        rec("amb-00-a", "ambiguous", "greedy", False),
        rec("amb-00-c", "clear", "greedy", True),
    ]


def test_report_on_hand_made_records() -> None:
    text = mixed_report.report(hand_made())
    assert "## chat" in text and "hand-graded: see --chat-sheet" in text
    assert "- cot: chat prompts in one call: 1 of 2 (50%)" in text
    assert "- greedy: chat prompts in one call: 2 of 2 (100%)" in text
    # checkable: cot 1/2 right, mean tokens (200 + 100) / 2; greedy: one error, not counted.
    assert "| cot | 2 | 1/2 (50%) | 1.00 | 150 | 1.0 | 0 |" in text
    assert "| greedy | 1 | 0/1 (0%) | 1.00 | 20 | 1.0 | 1 |" in text
    # cot asked on amb-00-a (tp) and amb-00-c (fp), not on amb-01-a (fn).
    assert "| cot | 2 | 2 | 1/2 (50%) | 1/2 (50%) | 0.50 | 0.50 | 0.50 |" in text
    # greedy never asked: precision undefined, recall and F1 nought.
    assert "| greedy | 1 | 1 | 0/1 (0%) | 0/1 (0%) | n/a | 0.00 | 0.00 |" in text
    paired = text.split("## paired")[1]
    assert "checkable: 1 prompts finished by every way" in paired  # g-2 failed for greedy
    assert "- cot vs greedy: cot alone right 1, greedy alone right 0, same 0 (of 1)" in paired
    assert "ambiguous + clear: 2 prompts finished by every way" in paired
    assert mixed_report.report([]) == "no records"


def test_report_takes_the_last_record_and_chat_grades() -> None:
    records = [*hand_made(), rec("g-2", "checkable", "greedy", True)]  # the retry, finished
    grades = {"cot/chat-00": True, "cot/chat-01": False, "greedy/chat-00": True}
    text = mixed_report.report(records, grades)
    assert "| cot | 2 | 1/2 (50%) | 1/2 (50%) |" in text
    # Chat accuracy is over the graded replies only.
    assert "| greedy | 2 | 1/1 (100%) | 2/2 (100%) |" in text
    assert "| greedy | 2 | 1/2 (50%) | 1.00 | 20 | 1.0 | 0 |" in text
    assert "checkable: 2 prompts finished by every way" in text


def test_chat_sheet_round_trip(tmp_path: Path) -> None:
    prompts = [
        mixed.Prompt("chat-00", "chat", (Message("user", "line one\nline two"),), rubric="kind"),
        mixed.Prompt("chat-01", "chat", (Message("user", "p"),), rubric="r"),
    ]
    records = hand_made()
    records[0]["text"] = "### not a heading\n```python\nx = 1\n```\ngrade: no"
    sheet = mixed_report.chat_sheet(prompts, records)
    assert "> line one\n> line two" in sheet and "### cot/chat-00" in sheet
    assert sheet.count("\ngrade:\n") == 4
    parts = sheet.split("\ngrade:\n")
    filled = parts[0] + "\ngrade: yes\n" + parts[1] + "\ngrade: No\n" + "\ngrade:\n".join(parts[2:])
    path = tmp_path / "sheet.md"
    path.write_text(filled)
    assert mixed_report.read_grades(path) == {"cot/chat-00": True, "greedy/chat-00": False}
    as_json = tmp_path / "grades.json"
    as_json.write_text(json.dumps({"cot/chat-01": True}))
    assert mixed_report.read_grades(as_json) == {"cot/chat-01": True}


# -- the classifier alone --------------------------------------------------------------------
class Kind:
    def __init__(self, kind: str, cues: tuple[str, ...] = ()) -> None:
        self.kind, self.cues = kind, cues


def test_classify_report_with_a_stand_in_classifier() -> None:
    truth = {"c": "chat", "g": "checkable", "a": "ambiguous", "k": "clear"}
    prompts = [
        mixed.Prompt(name, truth[name[0]], (Message("user", name),))
        for name in ("c1", "c2", "g1", "a1", "a2", "k1", "k2")
    ]
    said = {"c1": "chat", "c2": "ambiguous", "g1": "checkable", "a1": "ambiguous"}
    said |= {"a2": "chat", "k1": "code", "k2": "ambiguous"}

    def classify(messages: Sequence[Message]) -> Kind:
        return Kind(said[messages[-1].content], ("cue",))

    results = mixed_report.classify_all(prompts, classify)
    text = mixed_report.classify_report(results)
    assert "| chat | 1 | 0 | 0 | 1 | 2 | 1/2 (50%) |" in text
    assert "| clear (right: not ambiguous) | 0 | 0 | 1 | 1 | 2 | 1/2 (50%) |" in text
    # Pairs: tp a1, fn a2, fp k2; all prompts: c2 is a false positive too.
    assert "the ambiguous/clear pairs: precision 0.50, recall 0.50, F1 0.50" in text
    assert "all prompts: precision 0.33, recall 0.50, F1 0.40" in text
    assert "mean µs per classification" in text
    assert "- k2 (clear) -> ambiguous; cues: cue" in text
