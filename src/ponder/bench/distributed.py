"""Fanning a benchmark out over a Ray cluster (``ponder bench --ray ADDRESS``).

Each (system, question) pair becomes one Ray task. A task rebuilds its system from a small,
picklable description and talks to the model over HTTP, so this mode evaluates remote models
(a vLLM or SGLang cluster, or any OpenAI-compatible endpoint); the embedded engine lives in
one process and cannot be shared with workers. The driver keeps at most ``concurrency``
tasks in flight and appends records as they land, so a Ray run resumes like a local one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ponder.backends.remote import RemoteConfig
from ponder.bench.runner import EndpointSystem, StrategySystem
from ponder.bench.tasks import Example, Task
from ponder.errors import ConfigError
from ponder.types import Usage


@dataclass(frozen=True)
class RemoteStrategyPlan:
    """What a worker needs to run one Ponder strategy against a remote model."""

    name: str
    strategy: dict[str, Any]  # the raw "ponder" choice, revalidated in the worker
    remote: RemoteConfig
    max_tokens: int
    seed: int


@dataclass(frozen=True)
class EndpointPlan:
    name: str
    base_url: str
    model: str
    extra_body: dict[str, Any] | None
    max_tokens: int


Plan = RemoteStrategyPlan | EndpointPlan


async def solve_plan(
    plan: Plan, task_name: str, example: Example
) -> tuple[str, str | None, Usage, bool]:
    """Runs inside a Ray worker (or locally, for tests): rebuild the system and solve."""
    from ponder.backends.remote import RemoteBackend
    from ponder.bench.tasks import load_task
    from ponder.reasoning.runner import StrategySpec

    task = load_task(task_name)
    if isinstance(plan, EndpointPlan):
        endpoint = EndpointSystem(
            plan.name,
            plan.base_url,
            plan.model,
            extra_body=plan.extra_body,
            max_tokens=plan.max_tokens,
        )
        return await endpoint.solve(task, example)
    backend = RemoteBackend(plan.remote)
    try:
        system = StrategySystem(
            plan.name,
            StrategySpec.parse(plan.strategy),
            backend,
            max_tokens=plan.max_tokens,
            seed=plan.seed,
        )
        return await system.solve(task, example)
    finally:
        await backend.aclose()


class RaySystem:
    """A system whose questions run as Ray tasks."""

    def __init__(self, plan: Plan, task_name: str) -> None:
        import ray

        self.name = plan.name
        self.plan = plan
        self.task_name = task_name
        self._remote = ray.remote(_ray_solve)

    async def solve(self, task: Task, example: Example) -> tuple[str, str | None, Usage, bool]:
        text, answer, usage, complete = await self._remote.remote(
            self.plan, self.task_name, example
        )
        return text, answer, Usage(*usage), complete


def _ray_solve(
    plan: Plan, task_name: str, example: Example
) -> tuple[str, str | None, tuple[int, ...], bool]:
    import asyncio

    text, answer, usage, complete = asyncio.run(solve_plan(plan, task_name, example))
    return (
        text,
        answer,
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.reasoning_tokens,
            usage.cached_prompt_tokens,
            usage.calls,
        ),
        complete,
    )


def connect(address: str) -> None:
    """``local`` starts a Ray instance on this machine; anything else is a cluster address."""
    import ray

    if ray.is_initialized():
        return
    if address == "local":
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    else:
        ray.init(address=address, log_to_driver=False, ignore_reinit_error=True)


def plans_for(
    labelled: list[tuple[str, Any]],
    raw_specs: list[dict[str, Any]],
    remote: RemoteConfig | None,
    endpoints: list[dict[str, Any]],
    max_tokens: int,
    seed: int,
) -> list[Plan]:
    if labelled and remote is None:
        raise ConfigError(
            "--ray runs strategies against a remote model; name a provider's model with --model"
        )
    plans: list[Plan] = []
    for (label, _), raw in zip(labelled, raw_specs, strict=True):
        assert remote is not None
        plans.append(RemoteStrategyPlan(label, raw, remote, max_tokens, seed))
    for e in endpoints:
        plans.append(
            EndpointPlan(e["name"], e["base_url"], e["model"], e.get("extra_body"), max_tokens)
        )
    return plans
