"""Sampling reasoning paths: the building block of the voting strategies."""

from __future__ import annotations

from dataclasses import dataclass

from ponder.reasoning.answers import extract_answer
from ponder.reasoning.base import RunContext, StrategyParams
from ponder.reasoning.prompts import with_cot_prompt
from ponder.reasoning.trace import TraceCall
from ponder.types import Choice, GenerationRequest, TokenLogprob

DEFAULT_PATH_TOKENS = 768


@dataclass(frozen=True, slots=True)
class Path:
    index: int
    text: str
    answer: str | None
    completion_tokens: int
    finish_reason: str
    logprobs: tuple[TokenLogprob, ...] | None = None


def path_tokens(params: StrategyParams, request: GenerationRequest) -> int:
    """How long one sampled path may be: the strategy's cap, else the request's."""
    return params.max_tokens or request.sampling.max_tokens or DEFAULT_PATH_TOKENS


def question_of(request: GenerationRequest) -> str:
    """The last user message: what answers are extracted against."""
    for message in reversed(request.messages):
        if message.role == "user":
            return message.content
    return ""


async def replies(
    ctx: RunContext,
    request: GenerationRequest,
    *,
    n: int,
    temperature: float,
    max_tokens: int,
    top_logprobs: int = 0,
    label: str,
) -> list[Choice]:
    """``n`` replies to the request as written (no reasoning prompt added), in one call."""
    sub = drawn(
        request, n=n, temperature=temperature, max_tokens=max_tokens, top_logprobs=top_logprobs
    )
    completion = await ctx.backend.generate(sub, label=label)
    return list(completion.choices)


def drawn(
    request: GenerationRequest,
    *,
    n: int,
    temperature: float,
    max_tokens: int,
    top_logprobs: int = 0,
) -> GenerationRequest:
    """The request for ``n`` completions at this temperature and length, with logprobs
    asked for exactly when alternatives are."""
    return request.replace(
        n=n,
        sampling=request.sampling.replace(
            temperature=temperature,
            max_tokens=max_tokens,
            logprobs=top_logprobs > 0,
            top_logprobs=top_logprobs,
        ),
    )


def path_request(
    request: GenerationRequest,
    params: StrategyParams,
    *,
    n: int,
    temperature: float,
    top_logprobs: int = 0,
    seed_offset: int = 0,
) -> GenerationRequest:
    """A chain-of-thought request for ``n`` paths, derived from the user's request."""
    sampling = request.sampling.replace(
        temperature=params.temperature if params.temperature is not None else temperature,
        max_tokens=path_tokens(params, request),
        logprobs=top_logprobs > 0,
        top_logprobs=top_logprobs,
        seed=None if request.sampling.seed is None else request.sampling.seed + seed_offset,
    )
    return with_cot_prompt(request).replace(n=n, sampling=sampling)


def to_path(choice: Choice, params: StrategyParams, question: str, offset: int = 0) -> Path:
    return Path(
        index=offset + choice.index,
        text=choice.text,
        answer=extract_answer(choice.text, params.answer_format, question),
        completion_tokens=choice.completion_tokens,
        finish_reason=choice.finish_reason,
        logprobs=choice.logprobs,
    )


async def sample_paths(
    ctx: RunContext,
    request: GenerationRequest,
    params: StrategyParams,
    *,
    n: int,
    temperature: float,
    top_logprobs: int = 0,
    offset: int = 0,
    label: str = "paths",
) -> list[Path]:
    """Sample ``n`` chain-of-thought paths in one batched call and extract their answers."""
    paths, _ = await sample_paths_recorded(
        ctx,
        request,
        params,
        n=n,
        temperature=temperature,
        top_logprobs=top_logprobs,
        offset=offset,
        label=label,
    )
    return paths


async def sample_paths_recorded(
    ctx: RunContext,
    request: GenerationRequest,
    params: StrategyParams,
    *,
    n: int,
    temperature: float,
    top_logprobs: int = 0,
    offset: int = 0,
    label: str = "paths",
) -> tuple[list[Path], TraceCall]:
    """:func:`sample_paths`, with the call's trace record for the caller's annotations."""
    sub = path_request(
        request, params, n=n, temperature=temperature, top_logprobs=top_logprobs, seed_offset=offset
    )
    completion, call = await ctx.backend.generate_recorded(sub, label=label)
    question = question_of(request)
    paths = [to_path(c, params, question, offset) for c in completion.choices]
    call.annotations["answers"] = [p.answer for p in paths]
    for path in paths:
        ctx.progress(
            f"path {path.index + 1}: {path.answer if path.answer is not None else '(no answer)'}"
        )
    return paths, call
