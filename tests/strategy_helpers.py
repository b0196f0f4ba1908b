"""Helpers for strategy unit tests over the scripted backend."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ponder.backends.base import Backend
from ponder.reasoning.base import StrategyResult
from ponder.reasoning.runner import StrategySpec, run_strategy
from ponder.types import GenerationRequest, Message, SamplingParams

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"


def ask(question: str = QUESTION, **sampling: Any) -> GenerationRequest:
    return GenerationRequest(
        messages=(Message("user", question),), sampling=SamplingParams(**sampling)
    )


def solution(answer: object, words: int = 6) -> str:
    return " ".join(["step"] * words) + f"\nThe answer is: {answer}"


async def run(
    name: str,
    backend: Backend,
    request: GenerationRequest | None = None,
    backends: Mapping[str, Backend] | None = None,
    **params: Any,
) -> StrategyResult:
    spec = StrategySpec.parse({"strategy": name, **params})
    return await run_strategy(spec, backend, request or ask(), backends=backends)
