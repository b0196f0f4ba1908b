"""What every strategy shares: its parameters, its run context, and its result.

A strategy is a small, stateless async unit: ``run(ctx, request) -> StrategyResult``. It sees
only a Backend (through ``ctx.backend``, which traces every call) and the internal request;
never HTTP. Its parameters are a pydantic model, so bad values fail validation with a clear
message before any tokens are spent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from ponder.errors import first_error
from ponder.reasoning.profile import AutoProfile, load_profile
from ponder.reasoning.trace import Trace, TracingBackend
from ponder.sandbox import ProgramSandbox, Sandbox
from ponder.types import GenerationRequest, Purpose, Usage

if TYPE_CHECKING:
    from ponder.config import PonderConfig

AnswerFormat = Literal["auto", "number", "choice", "yes_no", "text"]
T = TypeVar("T")


class StrategyParams(BaseModel):
    """Parameters common to all strategies; each strategy extends this."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    answer_format: AnswerFormat = "auto"
    temperature: float | None = None  # None: the strategy's own default
    max_tokens: int | None = None  # per inner call; None: the request's or the strategy's


@dataclass(frozen=True, slots=True)
class Services:
    """What a strategy may use besides its backend, handed down per run (never global):
    the adaptive controller's profile and the sandbox that runs model-written programs."""

    auto_profile: AutoProfile | None = None  # None: the profile shipped with Ponder
    # The only way a strategy runs a program (OS-isolated; fails closed).
    sandbox: ProgramSandbox = field(default_factory=Sandbox)
    # A model name's price per 1M tokens (prompt, completion): the dearest of the
    # deployments that may serve it; None where one has no price. Set by the gateway.
    price_of: Callable[[str], tuple[float, float] | None] | None = None

    @staticmethod
    def from_config(config: PonderConfig) -> Services:
        """Read once at start-up, so a broken profile fails there and not per request."""
        return Services(
            auto_profile=load_profile(config.auto_profile) if config.auto_profile else None,
            sandbox=Sandbox(config.sandbox),
        )


@dataclass(slots=True)
class RunContext:
    """Everything a strategy run needs besides the request. Built per run, never shared."""

    backend: TracingBackend
    trace: Trace
    # Progress lines for honest streaming (sent as reasoning deltas while the strategy works).
    on_progress: Callable[[str], None] | None = None
    # Optional named backends for strategies that use several models (mixture-of-agents).
    backends: dict[str, TracingBackend] = field(default_factory=dict)
    services: Services = field(default_factory=Services)

    def progress(self, line: str) -> None:
        if self.on_progress is not None:
            self.on_progress(line if line.endswith("\n") else line + "\n")


@dataclass(slots=True)
class StrategyResult:
    text: str  # the final response shown to the user
    answer: str | None  # the normalised final answer, when one could be extracted
    reasoning: str  # the chosen reasoning behind it
    usage: Usage  # exact, summed over every inner call
    trace: Trace
    details: dict[str, Any] = field(default_factory=dict)
    # Completion tokens of the text shown as the answer; the rest counts as reasoning.
    shown_tokens: int = 0

    @property
    def hidden_usage(self) -> Usage:
        """Usage with every completion token not shown as the final answer counted as
        reasoning tokens."""
        hidden = max(self.usage.completion_tokens - self.shown_tokens, 0)
        return Usage(
            prompt_tokens=self.usage.prompt_tokens,
            completion_tokens=self.usage.completion_tokens,
            reasoning_tokens=max(hidden, self.usage.reasoning_tokens),
            cached_prompt_tokens=self.usage.cached_prompt_tokens,
            calls=self.usage.calls,
        )


@dataclass(frozen=True, slots=True)
class ModelUse:
    """A model a strategy will call besides the request's own, so the gateway resolves it
    (through the same routing and policy) before the run. A ``required`` one that cannot be
    used fails the request; an optional one is left out and the strategy goes without it."""

    name: str
    purpose: Purpose
    required: bool = True


class Strategy:
    """What every strategy is: a ``name``, a ``Params`` model, and ``run``. Stateless; one
    instance may serve any number of runs."""

    name: ClassVar[str]
    Params: ClassVar[type[StrategyParams]]
    # Small parameters that run it end to end: shown in the docs, run by the integration test.
    example: ClassVar[Mapping[str, Any]] = {}

    async def run(self, ctx: RunContext, request: GenerationRequest, params: Any) -> StrategyResult:
        raise NotImplementedError

    def worst_case(self, params: Any, request: GenerationRequest, services: Services) -> int | None:
        """An upper bound on the tokens one run can spend, prompts included: what a budget
        reserves for it. None: not known (the gateway then reserves the operator's default,
        or refuses a budgeted request). Every call is checked against the reservation, so a
        bound that is too low makes a run fail, never overspend."""
        return None

    def models(self, params: Any, services: Services) -> tuple[ModelUse, ...]:
        """The models this run will call besides the request's (found in ``ctx.backends``
        under these names). Most strategies call only the request's model."""
        return ()


async def gather(*coros: Awaitable[T]) -> list[T]:
    """Run awaitables concurrently in a task group; the first failure is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_as_coroutine(c)) for c in coros]
    except BaseExceptionGroup as errors:
        raise first_error(errors) from None
    return [t.result() for t in tasks]


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable
