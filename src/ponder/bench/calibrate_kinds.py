"""``ponder calibrate`` for the kinds besides checkable answers: chat and code.

- **Chat.** One greedy direct answer per calibration prompt gives the distribution of the
  first pass's token confidence. A level that may sample more escalates only the least
  confident share of chat requests (``CHAT_ESCALATE``), so its threshold is that quantile;
  the others answer every chat request in one call.
- **Code.** Per calibration task, one greedy program and ``samples`` sampled ones, each
  scored on the request's own tests (what ``auto`` can see) and graded by the task's hidden
  tests (what the user gets). Each level's number of samples is then chosen offline by
  replaying the selection ``auto`` makes (greedy if it passes the request's tests, else
  the candidate passing the most, the earlier on ties) on the first *k* samples: the most
  accurate *k* whose mean tokens fit the level's allowance over greedy decoding, the
  smaller on ties.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ponder.backends.base import Backend
from ponder.bench.tasks import Example, Task
from ponder.reasoning.code_tests import (
    RequestTests,
    Score,
    candidate_program,
    request_tests,
    score,
)
from ponder.reasoning.confidence import mean_confidence
from ponder.reasoning.profile import ChatEffort, CodeEffort
from ponder.sandbox import ProgramSandbox
from ponder.types import Completion, GenerationRequest, Message, SamplingParams

# The share of chat requests a level escalates, and how many answers it then samples.
CHAT_ESCALATE: Mapping[str, tuple[float, int]] = {"medium": (0.05, 2), "high": (0.1, 4)}
# Mean tokens a level may spend on code, as a multiple of greedy decoding's.
CODE_ALLOWANCES: Mapping[str, float] = {"low": 1.5, "medium": 3.0, "high": 6.0, "xhigh": 12.0}
LEVELS = ("minimal", "low", "medium", "high", "xhigh")


@dataclass(frozen=True, slots=True)
class ChatFit:
    efforts: dict[str, ChatEffort]
    summary: dict[str, Any]


async def fit_chat(
    prompts: Sequence[str], backend: Backend, *, max_tokens: int, concurrency: int
) -> ChatFit:
    gate = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> tuple[float, int]:
        request = GenerationRequest(
            messages=(Message("user", prompt),),
            sampling=SamplingParams(
                temperature=0.0, max_tokens=max_tokens, logprobs=True, top_logprobs=5
            ),
        )
        async with gate:
            completion = await backend.generate(request)
        return mean_confidence(completion.choices[0].logprobs), completion.usage.total_tokens

    measured = await asyncio.gather(*(one(p) for p in prompts))
    confidences = sorted(c for c, _ in measured)
    efforts: dict[str, ChatEffort] = {}
    for level in LEVELS:
        share, samples = CHAT_ESCALATE.get(
            level, CHAT_ESCALATE["high"] if level == "xhigh" else (0.0, 0)
        )
        if not samples:
            efforts[level] = ChatEffort(max_tokens=max_tokens)
            continue
        threshold = confidences[min(len(confidences) - 1, int(share * len(confidences)))]
        efforts[level] = ChatEffort(
            accept_confidence=round(threshold, 4), samples=samples, max_tokens=max_tokens
        )
    summary = {
        "prompts": len(prompts),
        "mean_total_tokens": round(statistics.fmean(t for _, t in measured), 1),
        "confidence_quantiles": {
            str(q): round(confidences[min(len(confidences) - 1, int(q * len(confidences)))], 4)
            for q in (0.05, 0.1, 0.25, 0.5)
        },
        "escalated_share": {level: share for level, (share, _) in CHAT_ESCALATE.items()},
    }
    return ChatFit(efforts, summary)


@dataclass(frozen=True, slots=True)
class Candidate:
    own: Score  # on the request's own tests
    right: bool  # the task's hidden tests pass
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class CodeDraw:
    """One task's greedy program and its samples, as the offline replay needs them."""

    greedy: Candidate
    samples: tuple[Candidate, ...]
    greedy_prompt_tokens: int
    samples_prompt_tokens: int
    has_tests: bool


def replay(draw: CodeDraw, k: int) -> tuple[bool, int]:
    """What ``auto`` answers with ``k`` samples: (hidden tests pass, total tokens)."""
    tokens = draw.greedy_prompt_tokens + draw.greedy.completion_tokens
    if k == 0 or not draw.has_tests or draw.greedy.own.all_passed:
        return draw.greedy.right, tokens
    pool = [draw.greedy, *draw.samples[:k]]
    tokens += draw.samples_prompt_tokens + sum(c.completion_tokens for c in draw.samples[:k])
    best = max(range(len(pool)), key=lambda i: (pool[i].own.passed, pool[i].own.loaded, -i))
    return pool[best].right, tokens


def choose_code(
    draws: Sequence[CodeDraw], max_samples: int, max_tokens: int
) -> tuple[dict[str, CodeEffort], dict[str, Any]]:
    widths = sorted({0, 1, 2, 4, 8, max_samples} & set(range(max_samples + 1)))
    table: dict[int, tuple[float, float]] = {}
    for k in widths:
        outcomes = [replay(d, k) for d in draws]
        table[k] = (
            statistics.fmean(float(r) for r, _ in outcomes),
            statistics.fmean(t for _, t in outcomes),
        )
    greedy_tokens = table[0][1]
    efforts: dict[str, CodeEffort] = {"minimal": CodeEffort(max_tokens=max_tokens)}
    chosen: dict[str, dict[str, float]] = {
        "minimal": {"samples": 0, "accuracy": table[0][0], "mean_total_tokens": table[0][1]}
    }
    for level, allowance in CODE_ALLOWANCES.items():
        fits = [k for k in widths if table[k][1] <= allowance * greedy_tokens]
        k = max(fits, key=lambda w: (table[w][0], -w))
        efforts[level] = CodeEffort(samples=k, max_tokens=max_tokens)
        chosen[level] = {"samples": k, "accuracy": table[k][0], "mean_total_tokens": table[k][1]}
    summary = {
        "tasks": len(draws),
        "with_tests": sum(d.has_tests for d in draws),
        "greedy_passes_own_tests": sum(d.greedy.own.all_passed for d in draws if d.has_tests),
        "by_samples": {
            str(k): {"accuracy": round(a, 4), "mean_total_tokens": round(t, 1)}
            for k, (a, t) in table.items()
        },
        "allowances": dict(CODE_ALLOWANCES),
        "chosen": {
            level: {k: round(v, 4) for k, v in row.items()} for level, row in chosen.items()
        },
    }
    return efforts, summary


async def draw_code(
    task: Task,
    examples: Sequence[Example],
    backend: Backend,
    sandbox: ProgramSandbox,
    *,
    samples: int,
    max_tokens: int,
    concurrency: int,
    temperature: float = 0.8,
) -> list[CodeDraw]:
    gate = asyncio.Semaphore(concurrency)

    async def generate(example: Example, n: int, temp: float) -> Completion:
        request = GenerationRequest(
            messages=task.messages(example),
            sampling=SamplingParams(temperature=temp, max_tokens=max_tokens, seed=0),
            n=n,
        )
        async with gate:
            return await backend.generate(request)

    async def judge(example: Example, tests: RequestTests, text: str, tokens: int) -> Candidate:
        own = await score(sandbox, candidate_program(text, tests), tests)
        right = await task.grade(example, text, None)
        return Candidate(own, right, tokens)

    async def one(example: Example) -> CodeDraw:
        tests = request_tests(task.messages(example)[-1].content)  # read once per task
        has_tests = bool(tests.count)
        greedy = await generate(example, 1, 0.0)
        choice = greedy.choices[0]
        first = await judge(example, tests, choice.text, choice.completion_tokens)
        if not has_tests or first.own.all_passed:
            # auto never samples here, at any level: the samples would not be looked at.
            return CodeDraw(first, (), greedy.usage.prompt_tokens, 0, has_tests)
        more = await generate(example, samples, temperature)
        judged = await asyncio.gather(
            *(judge(example, tests, c.text, c.completion_tokens) for c in more.choices)
        )
        return CodeDraw(
            greedy=first,
            samples=tuple(judged),
            greedy_prompt_tokens=greedy.usage.prompt_tokens,
            samples_prompt_tokens=more.usage.prompt_tokens,
            has_tests=has_tests,
        )

    return list(await asyncio.gather(*(one(e) for e in examples)))
