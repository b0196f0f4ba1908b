"""Running a benchmark: every system on the same examples, records appended as they land.

A run directory holds ``run.json`` (what was asked) and ``records.jsonl`` (one line per
system and example). A run that is interrupted resumes where it stopped: pairs already in
``records.jsonl`` are not run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from ponder.backends.base import Backend
from ponder.bench.jsonl import append_entry, read_entries
from ponder.bench.tasks import Example, Task
from ponder.config import PonderConfig
from ponder.errors import PonderError
from ponder.gateway import Gateway
from ponder.reasoning.runner import StrategySpec
from ponder.types import GenerationRequest, SamplingParams, Usage


@dataclass(frozen=True, slots=True)
class Record:
    system: str
    example_id: str
    correct: bool
    answer: str | None
    reference: str
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    calls: int
    seconds: float
    usage_complete: bool = True  # False when the system under-reports its usage
    error: str | None = None
    replicate: int = 0  # path ordering, when evaluated from a sample bank

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class System(Protocol):
    name: str

    async def solve(self, task: Task, example: Example) -> tuple[str, str | None, Usage, bool]:
        """Returns (text, extracted answer, usage, whether usage is complete)."""
        ...


class StrategySystem:
    """A Ponder strategy over a backend, run through the gateway like any request (its other
    models, such as mixture-of-agents proposers or auto's escalation, resolved and
    policy-checked there)."""

    def __init__(
        self,
        label: str,
        spec: StrategySpec,
        backend: Backend,
        *,
        max_tokens: int = 768,
        seed: int = 0,
        gateway: Gateway | None = None,
    ) -> None:
        self.name = label
        self.spec = spec
        self.backend = backend
        self.max_tokens = max_tokens
        self.seed = seed
        # Without one, a gateway of its own that keeps nothing on disk.
        self.gateway = gateway or Gateway(PonderConfig(trace_db=":memory:"), store_traces=False)

    async def solve(self, task: Task, example: Example) -> tuple[str, str | None, Usage, bool]:
        request = GenerationRequest(
            messages=task.messages(example),
            sampling=SamplingParams(max_tokens=self.max_tokens, seed=self.seed),
        )
        params = self.spec.params
        if params.answer_format == "auto" and task.answer_format != "auto":
            params = params.model_copy(update={"answer_format": task.answer_format})
        result = await self.gateway.solve(
            StrategySpec(self.spec.name, params, self.spec.over, self.spec.cls),
            request,
            model=self.backend.name,
            backend=self.backend,
        )
        return result.text, result.answer, result.hidden_usage, True


class EndpointSystem:
    """Any OpenAI-compatible endpoint as a system: a plain model, a gateway, or another
    reasoning proxy (optillm…). Token counts come from its replies. Where a system
    under-reports them, a counting hop gives the exact tokens spent at the backend: the
    system uses a Ponder server as its backend, each question's model name carries a usage tag
    (``model#tag``, passed through by the proxy), and the hop's ledger is read for that tag.
    Questions stay concurrent; the tag keeps their counts apart."""

    def __init__(
        self,
        name: str,
        base_url: str,
        model: str,
        *,
        extra_body: dict[str, Any] | None = None,
        count_via: str | None = None,
        max_tokens: int = 768,
        timeout: float = 3600.0,
        max_retries: int = 0,
    ) -> None:
        import openai

        self.name = name
        self.model = model
        self.extra_body = extra_body or {}
        self.max_tokens = max_tokens
        self.count_via = count_via.rstrip("/") if count_via else None
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key="not-needed", timeout=timeout, max_retries=max_retries
        )

    async def _hop_usage(self, tag: str) -> Usage:
        import httpx

        assert self.count_via is not None
        async with httpx.AsyncClient(timeout=30) as client:
            reply = await client.get(f"{self.count_via}/v1/usage", params={"tag": tag})
            reply.raise_for_status()
            row = reply.json()
        return Usage(
            prompt_tokens=row["prompt_tokens"],
            completion_tokens=row["completion_tokens"],
            calls=row["requests"],
        )

    async def solve(self, task: Task, example: Example) -> tuple[str, str | None, Usage, bool]:
        import httpx
        import openai

        from ponder.backends.openai_wire import map_openai_error
        from ponder.backends.thinking import split_thinking
        from ponder.reasoning.answers import extract_answer

        messages: Any = [m.as_dict() for m in task.messages(example)]
        # A fresh tag per attempt: a retried question is charged only for its own calls.
        tag = f"{self.name}:{example.id}:{uuid.uuid4().hex[:12]}" if self.count_via else ""
        try:
            reply = await self._client.chat.completions.create(
                model=f"{self.model}#{tag}" if tag else self.model,
                messages=messages,
                max_tokens=self.max_tokens,
                extra_body=self.extra_body,
            )
        except openai.OpenAIError as exc:
            # The question fails, not the run; what the system spent until then still counts
            # (a proxy may go on spending after the timeout: the hop's figure is a lower bound).
            error = map_openai_error(exc, self.name)
            if tag:
                with contextlib.suppress(httpx.HTTPError):  # the hop may be what failed
                    error.usage = await self._hop_usage(tag)
            raise error from exc
        if tag:
            usage, complete = await self._hop_usage(tag), True
        else:
            usage, complete = _reply_usage(reply)
        text = (
            split_thinking(reply.choices[0].message.content or "").content if reply.choices else ""
        )
        return text, extract_answer(text, task.answer_format, example.question), usage, complete


def _reply_usage(reply: Any) -> tuple[Usage, bool]:
    """Usage as the system reported it, and whether the report is complete."""
    raw = getattr(reply, "usage", None)
    if raw is None:
        return Usage(calls=1), False
    prompt = int(raw.prompt_tokens or 0)
    completion = int(raw.completion_tokens or 0)
    # optillm, for one, reports completion tokens only: a zero prompt count is not real.
    return Usage(prompt_tokens=prompt, completion_tokens=completion, calls=1), prompt > 0


async def build_bank(
    task: Task,
    examples: Sequence[Example],
    backend: Backend,
    bank: Any,
    *,
    size: int,
    top_logprobs: int = 5,
    temperature: float = 0.7,
    max_tokens: int = 768,
    concurrency: int = 2,
    on_done: Callable[[Example], None] | None = None,
) -> None:
    """Draw ``size`` chain-of-thought paths per question into the bank (skipping questions
    that already have them): the same requests the voting strategies make."""
    from ponder.bench.bank import path_key
    from ponder.reasoning.paths import path_request
    from ponder.reasoning.strategies.cot import CotParams

    gate = asyncio.Semaphore(concurrency)

    async def one(example: Example) -> None:
        request = GenerationRequest(
            messages=task.messages(example), sampling=SamplingParams(max_tokens=max_tokens)
        )
        sub = path_request(
            request, CotParams(), n=size, temperature=temperature, top_logprobs=top_logprobs
        )
        key = path_key(sub)
        have = len(bank.paths(key))
        if have < size:
            async with gate:
                completion = await backend.generate(sub.replace(n=size - have))
            bank.add(key, completion.usage.prompt_tokens, completion.choices)
        if on_done is not None:
            on_done(example)

    async with asyncio.TaskGroup() as group:
        for example in examples:
            group.create_task(one(example))


def parse_system_labels(text: str) -> list[tuple[str, dict[str, Any]]]:
    """``cot,self-consistency;n=8`` -> (label, raw "ponder" choice) pairs."""
    from ponder.reasoning.selection import parse_model_name

    out = []
    for label in (part.strip() for part in text.split(",")):
        if not label:
            continue
        raw, _ = parse_model_name(f"ponder/{label}/x")
        assert raw is not None
        out.append((label, dict(raw)))
    return out


def parse_systems(text: str) -> list[tuple[str, StrategySpec]]:
    """``cot,self-consistency;n=8`` -> labelled, validated strategy specs."""
    return [(label, StrategySpec.parse(raw)) for label, raw in parse_system_labels(text)]


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.records_file = path / "records.jsonl"

    def write_config(self, config: dict[str, Any]) -> None:
        (self.path / "run.json").write_text(json.dumps(config, indent=2))

    def records(self) -> list[Record]:
        out = []
        for data in read_entries(self.records_file):
            data.pop("total_tokens", None)
            out.append(Record(**data))
        return out

    def append(self, record: Record) -> None:
        append_entry(self.records_file, asdict(record) | {"total_tokens": record.total_tokens})


async def run_bench(
    task: Task,
    examples: Sequence[Example],
    systems: Sequence[System],
    run_dir: RunDir,
    *,
    concurrency: int = 4,
    on_record: Callable[[Record], None] | None = None,
    replicate: int = 0,
) -> list[Record]:
    """Run every system on every example not already recorded; return all records."""
    await run_pending(
        task,
        examples,
        systems,
        run_dir,
        done=recorded(run_dir.records()),
        gate=asyncio.Semaphore(concurrency),
        on_record=on_record,
        replicate=replicate,
    )
    return run_dir.records()


def recorded(records: Sequence[Record]) -> set[tuple[str, str, int]]:
    """The (system, example, replicate) triples already run."""
    return {(r.system, r.example_id, r.replicate) for r in records}


async def run_pending(
    task: Task,
    examples: Sequence[Example],
    systems: Sequence[System],
    run_dir: RunDir,
    *,
    done: set[tuple[str, str, int]],
    gate: asyncio.Semaphore,
    on_record: Callable[[Record], None] | None = None,
    replicate: int = 0,
) -> None:
    """Run every system on every example whose triple is not in ``done``, at most ``gate``
    pairs at a time; callers that run a benchmark in pieces share one gate and one ``done``
    read from the run directory once."""
    pending = [(s, e) for e in examples for s in systems if (s.name, e.id, replicate) not in done]

    async def one(system: System, example: Example) -> None:
        async with gate:
            started = time.perf_counter()
            error = None
            try:
                text, answer, usage, complete = await system.solve(task, example)
                correct = await task.grade(example, text, answer)
            except PonderError as exc:
                text, answer, usage, complete, correct = "", None, exc.usage or Usage(), True, False
                error = exc.message
            record = Record(
                system=system.name,
                example_id=example.id,
                correct=correct,
                answer=answer,
                reference=example.answer,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                calls=usage.calls,
                seconds=round(time.perf_counter() - started, 3),
                usage_complete=complete,
                error=error,
                replicate=replicate,
            )
            run_dir.append(record)
            if on_record is not None:
                on_record(record)

    async with asyncio.TaskGroup() as group:
        for system, example in pending:
            group.create_task(one(system, example))
