"""``ponder calibrate``: fit the adaptive controller's profile on a calibration split.

1. **Draw once.** A sample bank on the calibration questions holds the chain-of-thought paths
   the vote rungs ask for. Running the widest candidate once through the bank, with the live
   model behind it, once per kind of first pass, adds the greedy first passes (a chain of
   thought, a program) and the program-aided solutions. Screening rows past the bank's get the
   greedy first passes only, which cost one path each. From then on nothing calls a model.
2. **Choose the first pass on every row.** The first pass answers most questions at every
   level, and two kinds a few points apart tie often on a few dozen questions, so the kind is
   chosen once, on the bank's rows and the screening rows together: the most accurate alone,
   the cheaper on ties. Every level then uses it.
3. **Score every candidate offline.** Each candidate effort profile from a grid (an acceptance
   threshold on the first pass's token confidence, the ladder, the stopping probability, the
   vote weight of programs) is scored by running the real ``auto`` controller over the bank,
   in several path orderings: accuracy and exact mean tokens per question.
4. **Pick per effort level.** Each level allows a multiple of the greedy chain of thought's
   mean tokens on the bank's questions; the most accurate candidate that fits is kept, the
   cheaper on ties. The profile records the split, the command and every chosen candidate's
   scores.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ponder.backends.base import Backend
from ponder.bench.bank import BankBackend, SampleBank
from ponder.bench.runner import build_bank
from ponder.bench.tasks import Example, Task
from ponder.config import PonderConfig
from ponder.gateway import Gateway
from ponder.reasoning.base import Services, StrategyResult
from ponder.reasoning.profile import AutoProfile, EffortProfile, FirstPass, Rung
from ponder.reasoning.runner import StrategySpec
from ponder.reasoning.strategies.auto import AutoParams
from ponder.sandbox import ProgramSandbox, RunResult, Sandbox, SandboxLimits, SandboxStatus
from ponder.types import GenerationRequest, SamplingParams

# Mean tokens each level may spend, as a multiple of one greedy chain of thought. "medium"
# aims at a quarter of 16-path self-consistency (about 4x one path) with room to spare.
DEFAULT_ALLOWANCES: Mapping[str, float | None] = {
    "minimal": 1.3,
    "low": 2.0,
    "medium": 3.5,
    "high": 7.0,
    "xhigh": None,
}
NEVER = 1000.0  # an acceptance threshold no first pass reaches
FIRST_PASSES: tuple[FirstPass, ...] = ("cot", "program")
PROGRAM_WEIGHTS = (1.0, 2.0)


class ProgramMemo:
    """Runs each distinct program once in the sandbox: candidates re-ask the same programs
    many times."""

    def __init__(self, sandbox: ProgramSandbox | None = None) -> None:
        self.sandbox = sandbox or Sandbox()
        self._done: dict[tuple[str, SandboxLimits], RunResult] = {}

    async def status(self) -> SandboxStatus:
        return await self.sandbox.status()

    async def run(
        self,
        code: str,
        limits: SandboxLimits | None = None,
        files: Mapping[str, bytes] | None = None,
    ) -> RunResult:
        limits = limits or SandboxLimits()
        if files:  # programs with input files are not memoised
            return await self.sandbox.run(code, limits, files)
        key = (code, limits)
        if key not in self._done:
            self._done[key] = await self.sandbox.run(code, limits)
        return self._done[key]


@dataclass(frozen=True, slots=True)
class Score:
    accuracy: float
    tokens: float  # exact mean total tokens per question, over questions and orderings


@dataclass(slots=True)
class Calibration:
    profile: AutoProfile
    first_passes: dict[FirstPass, Score]  # each kind of first pass alone, on every row
    first_pass: Score  # the greedy chain of thought alone on the bank's rows: the allowance unit
    chosen_first_pass: FirstPass
    scores: list[tuple[EffortProfile, Score]] = field(default_factory=list)


def ladders(bank_size: int) -> list[tuple[Rung, ...]]:
    """The ladders tried: votes that stay inside the bank, programs, and both in each order."""
    votes = [
        Rung(kind="vote", window=w, max_n=n) for w, n in ((2, 4), (4, 8), (4, 16)) if n <= bank_size
    ]
    programs = [Rung(kind="program", n=n) for n in (2, 4)]
    out: list[tuple[Rung, ...]] = [()]
    out += [(v,) for v in votes] + [(p,) for p in programs]
    out += [(v, p) for v in votes for p in programs]
    out += [(p, v) for p in programs[:1] for v in votes]
    return out


def candidates(
    confidences: Mapping[FirstPass, Sequence[float]], bank_size: int, max_tokens: int
) -> list[EffortProfile]:
    """Per kind of first pass: acceptance thresholds at quantiles of its confidences on the
    calibration questions, times ladders."""
    out = []
    for first, values in confidences.items():
        ordered = sorted(values)
        quantiles = {0.0, NEVER}
        for q in (0.1, 0.25, 0.5, 0.75, 0.9):
            quantiles.add(round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4))
        for accept, ladder, stop in itertools.product(
            sorted(quantiles), ladders(bank_size), (0.9, 0.95)
        ):
            if not ladder and stop != 0.9:
                continue  # the stopping rule only matters on a ladder
            if accept == 0.0 and ladder:
                continue  # everything extracted is accepted: only failed extractions climb
            for weight in program_weights(first, ladder):
                out.append(
                    EffortProfile(
                        first_pass=first,
                        first_weight=weight if first == "program" else 1.0,
                        accept_confidence=accept,
                        stop_probability=stop,
                        ladder=tuple(
                            r.model_copy(update={"weight": weight}) if r.kind == "program" else r
                            for r in ladder
                        ),
                        max_tokens=max_tokens,
                    )
                )
    return out


def program_weights(first: FirstPass, ladder: Sequence[Rung]) -> tuple[float, ...]:
    """Vote weights tried for programs (the first pass's and the program rungs'): one
    sampled path's, and two, where a program meets other votes at all."""
    has_program = first == "program" or any(r.kind == "program" for r in ladder)
    return PROGRAM_WEIGHTS if ladder and has_program else (1.0,)


async def score(
    effort: EffortProfile,
    task: Task,
    examples: Sequence[Example],
    bank: SampleBank,
    *,
    replicates: int,
    max_tokens: int,
    memo: ProgramMemo,
    live: Backend | None = None,
    concurrency: int | None = None,
) -> tuple[Score, list[dict[str, Any]]]:
    """Run ``auto`` with this one effort level on every question, in every path ordering;
    also returns each run's details (first-pass confidence, rungs climbed). ``concurrency``
    bounds the questions run at once (for live draws; offline, all run together)."""
    gate = asyncio.Semaphore(concurrency or len(examples) or 1)
    profile = AutoProfile(efforts={"candidate": effort})
    spec = StrategySpec(
        "auto", AutoParams(effort="candidate", answer_format=task.answer_format, kind="checkable")
    )
    gateway = Gateway(
        PonderConfig(trace_db=":memory:"),
        services=Services(auto_profile=profile, sandbox=memo),
        store_traces=False,
    )
    correct: list[float] = []
    tokens: list[float] = []
    details: list[dict[str, Any]] = []
    for replicate in range(replicates):
        backend = BankBackend(bank, live, replicate=replicate)

        async def one(example: Example, backend: Backend = backend) -> StrategyResult:
            request = GenerationRequest(
                messages=task.messages(example), sampling=SamplingParams(max_tokens=max_tokens)
            )
            async with gate:
                return await gateway.solve(spec, request, model=backend.name, backend=backend)

        results = await asyncio.gather(*(one(e) for e in examples))
        for example, result in zip(examples, results, strict=True):
            right = await task.grade(example, result.text, result.answer)
            correct.append(float(right))
            tokens.append(float(result.hidden_usage.total_tokens))
            details.append({"example": example.id, "correct": right, **result.details})
    return Score(statistics.fmean(correct), statistics.fmean(tokens)), details


def choose_first_pass(firsts: Mapping[FirstPass, Score]) -> FirstPass:
    """The most accurate first pass alone, the cheaper on ties."""
    return max(firsts, key=lambda kind: (round(firsts[kind].accuracy, 6), -firsts[kind].tokens))


def pick(
    scored: Sequence[tuple[EffortProfile, Score]], allowance: float | None, unit: float
) -> tuple[EffortProfile, Score]:
    fits = [s for s in scored if allowance is None or s[1].tokens <= allowance * unit]
    return max(fits, key=lambda s: (round(s[1].accuracy, 6), -s[1].tokens))


async def calibrate(
    task: Task,
    examples: Sequence[Example],
    backend: Backend,
    bank: SampleBank,
    *,
    bank_size: int = 8,
    replicates: int = 4,
    max_tokens: int = 512,
    concurrency: int = 4,
    first_passes: Sequence[FirstPass] = FIRST_PASSES,
    screen: Sequence[Example] = (),
    allowances: Mapping[str, float | None] = DEFAULT_ALLOWANCES,
    metadata: Mapping[str, Any] | None = None,
    on_step: Callable[[str], None] | None = None,
    sandbox: ProgramSandbox | None = None,
) -> Calibration:
    if "cot" not in first_passes:
        raise ValueError("the chain-of-thought first pass is the unit of every allowance")
    say = on_step or (lambda line: None)
    say(f"sample bank: {bank_size} paths on {len(examples)} questions")
    await build_bank(
        task,
        examples,
        backend,
        bank,
        size=bank_size,
        max_tokens=max_tokens,
        concurrency=concurrency,
    )
    memo = ProgramMemo(sandbox)
    say("first passes and programs (live once, then from the bank)")
    for kind in first_passes:
        widest = EffortProfile(
            first_pass=kind,
            accept_confidence=NEVER,
            stop_probability=0.9999,
            ladder=(Rung(kind="vote", window=4, max_n=bank_size), Rung(kind="program", n=4)),
            max_tokens=max_tokens,
        )
        await score(
            widest,
            task,
            examples,
            bank,
            replicates=1,
            max_tokens=max_tokens,
            memo=memo,
            live=backend,
            # A bank draw holds --bank-size sequences per question, this pass at most four
            # (the program rung): about as many sequences in flight, not more. Past a few
            # dozen, attention over the engine's shared KV buffer slows every step.
            concurrency=max(1, concurrency * bank_size // 4),
        )
    if screen:
        say(f"first passes alone on {len(screen)} screening questions (live once)")
    firsts: dict[FirstPass, Score] = {}
    right: dict[FirstPass, set[str]] = {}
    confidences: dict[FirstPass, list[float]] = {}
    for kind in first_passes:
        alone = EffortProfile(first_pass=kind, accept_confidence=0.0, max_tokens=max_tokens)
        # One sequence per question, so as many questions at once as the bank draw had paths.
        firsts[kind], runs = await score(
            alone,
            task,
            [*examples, *screen],
            bank,
            replicates=1,
            max_tokens=max_tokens,
            memo=memo,
            live=backend if screen else None,
            concurrency=max(1, concurrency * bank_size),
        )
        confidences[kind] = [float(r["first_confidence"]) for r in runs]
        right[kind] = {str(r["example"]) for r in runs if r["correct"]}
    chosen_first = choose_first_pass(firsts)

    async def offline(effort: EffortProfile, replicates: int = 1) -> Score:
        result, _ = await score(
            effort, task, examples, bank, replicates=replicates, max_tokens=max_tokens, memo=memo
        )
        return result

    unit = await offline(
        EffortProfile(first_pass="cot", accept_confidence=0.0, max_tokens=max_tokens)
    )
    grid = candidates({chosen_first: confidences[chosen_first]}, bank_size, max_tokens)
    say(f"scoring {len(grid)} candidates x {replicates} orderings offline")
    scored = [(effort, await offline(effort, replicates)) for effort in grid]
    efforts: dict[str, EffortProfile] = {}
    chosen: dict[str, Any] = {}
    for level, allowance in allowances.items():
        effort, result = pick(scored, allowance, unit.tokens)
        efforts[level] = effort
        chosen[level] = {
            "allowance_x_first_pass": allowance,
            "accuracy": round(result.accuracy, 4),
            "mean_total_tokens": round(result.tokens, 1),
        }
    profile = AutoProfile(
        model=(metadata or {}).get("model"),
        calibration={
            **(metadata or {}),
            "questions": len(examples),
            "bank_size": bank_size,
            "orderings": replicates,
            "candidates": len(grid),
            "first_pass": {
                "accuracy": round(unit.accuracy, 4),
                "mean_total_tokens": round(unit.tokens, 1),
            },
            "first_pass_questions": len(examples) + len(screen),
            "screening_questions": len(screen),
            "first_passes_alone": {
                kind: {
                    "accuracy": round(s.accuracy, 4),
                    "mean_total_tokens": round(s.tokens, 1),
                    # The paired evidence: questions only this kind got right.
                    "right_alone": len(
                        right[kind].difference(*(v for k, v in right.items() if k != kind))
                    ),
                }
                for kind, s in firsts.items()
            },
            "chosen_first_pass": chosen_first,
            "chosen": chosen,
        },
        efforts=efforts,
    )
    return Calibration(
        profile=profile,
        first_passes=firsts,
        first_pass=unit,
        chosen_first_pass=chosen_first,
        scores=scored,
    )
