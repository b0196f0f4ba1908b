"""A mixed workload, several ways: does each way spend its effort where it pays?

Four kinds of prompt, each sent as one user message:

* ``chat`` (bench/mixed/chat.jsonl, 50): open requests with a rubric, hand-graded (see
  ``--chat-sheet`` and ``--grades``); what is measured without a reviewer is the cost, and
  the share answered in one model call;
* ``checkable`` (GSM8K, rows 160-209 of ``<data-dir>/gsm8k_test_calib.jsonl``): right when
  the final number (the reply's extracted answer if it has one, else the marked or last
  number of its text) equals the reference;
* ``code`` (HumanEval, the first 50 odd-numbered tasks of ``<data-dir>/humaneval.jsonl.gz``):
  right when the function passes the task's tests in the sandbox;
* ``ambiguous`` and ``clear`` (bench/mixed/ambiguous.jsonl, 30 pairs): each pair's ambiguous
  text should be asked about (a clarifying question, ``details[0]["clarify"]``) and its clear
  text answered; a pair is ``amb-NN-a`` and ``amb-NN-c``.

The ways (``--ways``, a comma list): ``auto:<effort>`` (Ponder's adaptive strategy at that
effort), ``cot``, ``sc8`` (self-consistency over 8 samples) and ``greedy`` (the model alone at
temperature 0). Every way is sent with ``seed=0`` and ``--max-tokens``; all but ``greedy``
at the default temperature. Ponder runs in this process (a ``Gateway`` on ``--config`` with
the batch configuration, ``ponder.bench.session.batch_config``, so queued work is never
refused at the engine's queue deadline; no default strategy, a throwaway database) on
``--model`` (default: the configuration's default model).

Each (way, prompt) is one JSON record appended to ``--out``; a run skips the pairs already
recorded without an error, so it resumes where it stopped. At the end, and alone with
``--report``, it prints the report of bench/mixed_report.py: per kind and way the accuracy,
cost and clarification F1, also on the prompts every way finished (paired). ``--classify``
runs only the request classifier (``ponder.reasoning.kinds.classify_request``) over the
prompts: no model, no gateway.

    python bench/mixed.py --limit-per-kind 1 --ways cot                 # a smoke run
    python bench/mixed.py --ways auto:medium,cot,sc8,greedy --concurrency 2
    python bench/mixed.py --report --chat-sheet bench/results/mixed/chat-sheet.md
    python bench/mixed.py --report --grades bench/results/mixed/chat-sheet.md
    python bench/mixed.py --classify
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any, Protocol

from mixed_report import KINDS, classify_main, progress_line, read_grades, report, write_chat_sheet
from ponder.bench.tasks import Example, HumanEval, numbers_equal, read_jsonl
from ponder.reasoning.answers import extract_number, normalize_number
from ponder.types import Message

REPO = Path(__file__).resolve().parent.parent
MIXED = REPO / "bench" / "mixed"
DATA_DIR = REPO.parent / "shared" / "datasets"
OUT = REPO / "bench" / "results" / "mixed" / "records.jsonl"
GSM8K_FILE = "gsm8k_test_calib.jsonl"
HUMANEVAL_FILE = "humaneval.jsonl.gz"
GSM8K_ROWS = range(160, 210)  # the reporting slice: rows 160-209 (0-based lines)
CODE_TASKS = 50  # the first 50 odd-numbered HumanEval tasks
EFFORTS = ("minimal", "low", "medium", "high", "xhigh")
DEFAULT_WAYS = "auto:medium,cot,sc8,greedy"
TEXT_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class Prompt:
    """One prompt of the workload: what is sent, and what grades the reply."""

    id: str
    kind: str  # chat, checkable, code, ambiguous or clear
    messages: tuple[Message, ...]
    example: Example | None = None  # checkable and code: the reference
    rubric: str = ""  # chat
    meta: Mapping[str, Any] = field(default_factory=dict)


# -- the prompts ---------------------------------------------------------------------------
def _user(text: str) -> tuple[Message, ...]:
    return (Message("user", text),)


def load_chat(path: Path) -> list[Prompt]:
    return [
        Prompt(str(row["id"]), "chat", _user(str(row["prompt"])), rubric=str(row["rubric"]))
        for row in read_jsonl(path)
    ]


def load_ambiguous(path: Path) -> list[Prompt]:
    """Each row as two prompts, in a row: ``<id>-a`` (ambiguous) then ``<id>-c`` (clear)."""
    out: list[Prompt] = []
    for row in read_jsonl(path):
        meta = {"category": row.get("category"), "readings": row.get("readings")}
        out.append(Prompt(f"{row['id']}-a", "ambiguous", _user(str(row["ambiguous"])), meta=meta))
        out.append(Prompt(f"{row['id']}-c", "clear", _user(str(row["clear"])), meta=meta))
    return out


def load_gsm8k(path: Path, rows: range = GSM8K_ROWS) -> list[Prompt]:
    """The rows of ``rows`` (0-based lines), the reference the number after ``####``."""
    out: list[Prompt] = []
    for i, row in enumerate(read_jsonl(path)):
        if i >= rows.stop:
            break
        if i not in rows:
            continue
        reference = normalize_number(str(row["answer"]).split("####")[-1]) or ""
        example = Example(f"gsm8k-calib-{i}", str(row["question"]), reference)
        out.append(Prompt(example.id, "checkable", _user(example.question), example=example))
    return out


def task_number(task_id: str) -> int:
    return int(task_id.rsplit("/", 1)[-1])


def load_humaneval(path: Path, count: int = CODE_TASKS) -> list[Prompt]:
    """The first ``count`` tasks whose number is odd (the reporting half), asked the way
    :class:`HumanEval` asks."""
    task = HumanEval()
    out: list[Prompt] = []
    for row in read_jsonl(path):
        if len(out) >= count:
            break
        if task_number(str(row["task_id"])) % 2 == 0:
            continue
        example = Example(
            id=str(row["task_id"]),
            question=str(row["prompt"]),
            answer=str(row["entry_point"]),
            meta={"test": row["test"], "prompt": row["prompt"]},
        )
        out.append(Prompt(example.id, "code", task.messages(example), example=example))
    return out


def _need(path: Path) -> Path:
    if not path.is_file():
        raise SystemExit(f"no such file: {path}")
    return path


def load_prompts(
    data_dir: Path, mixed_dir: Path, kinds: Sequence[str], limit: int | None = None
) -> list[Prompt]:
    """The chosen kinds' prompts, the first ``limit`` of each (``limit`` pairs of the
    ambiguity set), taken from each kind in turn so that a partial run covers them all."""
    units: list[list[list[Prompt]]] = []  # per kind, its units (a pair is one unit)
    if "chat" in kinds:
        units.append([[p] for p in load_chat(_need(mixed_dir / "chat.jsonl"))])
    if "checkable" in kinds:
        units.append([[p] for p in load_gsm8k(_need(data_dir / GSM8K_FILE))])
    if "code" in kinds:
        units.append([[p] for p in load_humaneval(_need(data_dir / HUMANEVAL_FILE))])
    if "ambiguous" in kinds:
        both = load_ambiguous(_need(mixed_dir / "ambiguous.jsonl"))
        units.append([both[i : i + 2] for i in range(0, len(both), 2)])
    if limit is not None:
        units = [u[:limit] for u in units]
    return [p for turn in zip_longest(*units) for unit in turn if unit is not None for p in unit]


# -- the ways ------------------------------------------------------------------------------
def parse_ways(text: str) -> list[str]:
    ways = [w.strip() for w in text.split(",") if w.strip()]
    for way in ways:
        strategy_of(way)  # raises ValueError for an unknown one
    if not ways or len(set(ways)) != len(ways):
        raise ValueError("--ways: give each way once, at least one")
    return ways


def strategy_of(way: str) -> tuple[dict[str, Any] | None, float | None]:
    """The strategy choice and temperature of a way (None: the default temperature)."""
    if way == "greedy":
        return None, 0.0
    if way == "cot":
        return {"strategy": "cot"}, None
    if way in ("sc8", "sc16"):
        return {"strategy": "self-consistency", "n": int(way[2:])}, None
    name, _, effort = way.partition(":")
    if name == "auto" and effort in EFFORTS:
        return {"strategy": "auto", "effort": effort}, None
    raise ValueError(f"unknown way {way!r}: auto:<{'|'.join(EFFORTS)}>, cot, sc8, sc16 or greedy")


# -- grading -------------------------------------------------------------------------------
def reply_answer(details: Sequence[Mapping[str, Any]]) -> str | None:
    """The answer a strategy reported in its details, if it did."""
    if not details:
        return None
    for key in ("answer", "winner"):
        value = details[0].get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
    return None


def checkable_right(example: Example, text: str, answer: str | None) -> bool:
    said = normalize_number(answer) if answer is not None else None
    return numbers_equal(said if said is not None else extract_number(text), example.answer)


async def grade(
    prompt: Prompt,
    text: str,
    details: Sequence[Mapping[str, Any]],
    asked: bool,
    code: HumanEval | None,
) -> bool | None:
    """Right or not; None for chat (hand-graded)."""
    if prompt.kind == "ambiguous":
        return asked
    if prompt.kind == "clear":
        return not asked
    if prompt.kind == "checkable" and prompt.example is not None:
        return checkable_right(prompt.example, text, reply_answer(details))
    if prompt.kind == "code" and prompt.example is not None:
        return await (code or HumanEval()).grade(prompt.example, text, None)
    return None


# -- running -------------------------------------------------------------------------------
class Replies(Protocol):
    """What the run needs of a reply (a :class:`ponder.gateway.reply.Reply`)."""

    @property
    def text(self) -> str: ...
    @property
    def usage(self) -> Any: ...
    @property
    def details(self) -> tuple[Mapping[str, Any], ...]: ...
    @property
    def seconds(self) -> float: ...


class Chats(Protocol):
    """What the run needs of a gateway: :meth:`ponder.gateway.service.Gateway.chat`."""

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        model: str | None,
        strategy: Mapping[str, Any] | None,
        max_tokens: int | None,
        temperature: float | None,
        seed: int | None,
    ) -> Replies: ...


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a killed run: that pair runs again
    return out


def finished(records: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """The (way, id) pairs recorded without an error: a resumed run skips them."""
    return {(str(r["way"]), str(r["id"])) for r in records if r.get("error") is None}


def pending(
    prompts: Sequence[Prompt], ways: Sequence[str], done: set[tuple[str, str]]
) -> list[tuple[str, Prompt]]:
    return [(way, p) for p in prompts for way in ways if (way, p.id) not in done]


def record_of(
    prompt: Prompt,
    way: str,
    model: str | None,
    reply: Replies | None,
    correct: bool | None,
    seconds: float,
    error: BaseException | None = None,
) -> dict[str, Any]:
    details = reply.details if reply is not None else ()
    first = details[0] if details else {}
    usage = reply.usage if reply is not None else getattr(error, "usage", None)
    kind = first.get("kind")
    return {
        "id": prompt.id,
        "kind": prompt.kind,
        "way": way,
        "model": model,
        "correct": correct,
        "asked": first.get("clarify") is True,
        "detected_kind": kind if isinstance(kind, str) else None,
        "prompt_tokens": int(getattr(usage, "prompt_tokens", 0)),
        "completion_tokens": int(getattr(usage, "completion_tokens", 0)),
        "reasoning_tokens": int(getattr(usage, "reasoning_tokens", 0)),
        "calls": int(getattr(usage, "calls", 0)),
        "seconds": round(reply.seconds if reply is not None else seconds, 3),
        "text": (reply.text if reply is not None else "")[:TEXT_LIMIT],
        "error": None if error is None else f"{type(error).__name__}: {error}"[:500],
    }


async def run_one(
    gateway: Chats,
    prompt: Prompt,
    way: str,
    *,
    model: str | None,
    max_tokens: int,
    code: HumanEval | None,
) -> dict[str, Any]:
    strategy, temperature = strategy_of(way)
    started = time.perf_counter()
    try:
        reply = await gateway.chat(
            prompt.messages,
            model=model,
            strategy=strategy,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=0,
        )
        first = reply.details[0] if reply.details else {}
        asked = first.get("clarify") is True
        correct = await grade(prompt, reply.text, reply.details, asked, code)
    except Exception as exc:  # recorded; the run goes on
        return record_of(prompt, way, model, None, None, time.perf_counter() - started, exc)
    return record_of(prompt, way, model, reply, correct, reply.seconds)


async def run(
    gateway: Chats,
    prompts: Sequence[Prompt],
    ways: Sequence[str],
    out: Path,
    *,
    model: str | None = None,
    max_tokens: int = 512,
    concurrency: int = 1,
    code: HumanEval | None = None,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Every (way, prompt) not yet finished in ``out``, appended to it as each ends."""
    todo = pending(prompts, ways, finished(read_records(out)))
    out.parent.mkdir(parents=True, exist_ok=True)
    echo(f"{len(todo)} to run ({len(prompts) * len(ways) - len(todo)} already recorded)")
    gate = asyncio.Semaphore(max(1, concurrency))
    written: list[dict[str, Any]] = []

    async def one(way: str, prompt: Prompt) -> None:
        async with gate:
            record = await run_one(
                gateway, prompt, way, model=model, max_tokens=max_tokens, code=code
            )
        with out.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        written.append(record)
        echo(progress_line(record))

    async with asyncio.TaskGroup() as group:
        for way, prompt in todo:
            group.create_task(one(way, prompt))
    return written


# -- main ----------------------------------------------------------------------------------
async def run_with_gateway(args: argparse.Namespace, prompts: Sequence[Prompt]) -> None:
    from ponder.bench.session import batch_config
    from ponder.config import load_config
    from ponder.gateway.service import Gateway
    from ponder.sandbox import Sandbox

    if not pending(prompts, args.ways, finished(read_records(args.out))):
        print("every (way, prompt) is already recorded in", args.out)
        return
    with tempfile.TemporaryDirectory(prefix="ponder-mixed-") as scratch:
        overrides: dict[str, Any] = {
            "default_strategy": None,  # greedy is the model alone
            "database_url": f"sqlite:///{Path(scratch) / 'ponder.sqlite3'}",
        }
        if args.model:
            overrides["default_model"] = args.model
        # Gateway.from_config's config as a batch job's: never refused at the queue deadline.
        gateway = Gateway(batch_config(load_config(args.config).replace(**overrides)))
        code = HumanEval(Sandbox(gateway.config.sandbox))
        print(f"model {gateway.config.default_model}, ways {', '.join(args.ways)}", flush=True)
        async with gateway:
            await run(
                gateway,
                prompts,
                args.ways,
                args.out,
                model=args.model,
                max_tokens=args.max_tokens,
                concurrency=args.concurrency,
                code=code,
                echo=lambda line: print(line, flush=True),
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--ways", default=DEFAULT_WAYS, help=f"comma list (default {DEFAULT_WAYS})")
    parser.add_argument("--kinds", default=",".join(KINDS), help="a subset of " + ",".join(KINDS))
    parser.add_argument("--limit-per-kind", type=int, default=None, metavar="N")
    parser.add_argument("--concurrency", type=int, default=1, help="prompts in flight")
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--model", default=None, help="default: the configuration's")
    parser.add_argument("--config", type=Path, default=None, help="a Ponder TOML file")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="GSM8K and HumanEval")
    parser.add_argument("--mixed-dir", type=Path, default=MIXED, help="chat and ambiguity sets")
    parser.add_argument("--out", type=Path, default=OUT, help="the records (JSONL, appended)")
    parser.add_argument("--report", action="store_true", help="report the records; no model")
    parser.add_argument("--chat-sheet", type=Path, default=None, help="write a grading sheet")
    parser.add_argument("--grades", type=Path, default=None, help="chat grades: JSON or sheet")
    parser.add_argument("--classify", action="store_true", help="the classifier alone")
    args = parser.parse_args(argv)
    try:
        args.ways = parse_ways(args.ways)
    except ValueError as exc:
        parser.error(str(exc))
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    kinds = ["ambiguous" if k == "clear" else k for k in kinds]
    if not kinds or not set(kinds) <= set(KINDS):
        parser.error(f"--kinds: choose from {', '.join(KINDS)}")
    grades = read_grades(args.grades) if args.grades is not None else {}

    if args.classify:
        return classify_main(
            lambda: load_prompts(args.data_dir, args.mixed_dir, kinds, args.limit_per_kind)
        )
    if args.report or args.chat_sheet is not None:
        records = read_records(args.out)
        if args.chat_sheet is not None:
            chat = load_prompts(args.data_dir, args.mixed_dir, ["chat"])
            write_chat_sheet(args.chat_sheet, chat, records)
        if args.report:
            print(report(records, grades))
        return 0
    prompts = load_prompts(args.data_dir, args.mixed_dir, kinds, args.limit_per_kind)
    asyncio.run(run_with_gateway(args, prompts))
    print()
    print(report(read_records(args.out), grades))
    return 0


if __name__ == "__main__":
    sys.exit(main())
