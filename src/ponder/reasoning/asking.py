"""Asking back: one short clarifying question for a request that leaves out what only the
user knows, written by the model from what the cues found missing (one small call), with a
plain question built from the cues when the model writes none.
"""

from __future__ import annotations

from collections.abc import Sequence

from ponder.reasoning.ambiguity import Cue
from ponder.reasoning.base import RunContext, StrategyResult
from ponder.reasoning.ladder import Budget
from ponder.reasoning.paths import question_of
from ponder.types import GenerationRequest, Message

QUESTION_TOKENS = 64
ASK = (
    "A user sent the request below. It cannot be answered yet because it leaves out {missing}. "
    "Write one short, friendly question to the user that asks for exactly that. Reply with the "
    "question only.\n\nRequest:\n{question}"
)


def ask_request(
    request: GenerationRequest, cues: Sequence[Cue], max_tokens: int
) -> GenerationRequest:
    """The call that writes the question."""
    missing = list(dict.fromkeys(c.missing for c in cues))
    prompt = ASK.format(missing="; and ".join(missing), question=question_of(request))
    return request.replace(
        messages=(Message("user", prompt),),
        n=1,
        sampling=request.sampling.replace(
            temperature=0.0, max_tokens=max_tokens, logprobs=False, top_logprobs=0, stop=()
        ),
    )


def worst_case(request: GenerationRequest, cues: Sequence[Cue], cap: int | None) -> int:
    tokens = min(QUESTION_TOKENS, cap) if cap else QUESTION_TOKENS
    return ask_request(request, cues, tokens).prompt_token_bound() + tokens


async def ask_back(
    ctx: RunContext,
    request: GenerationRequest,
    cues: Sequence[Cue],
    budget: Budget,
    cap: int | None,
) -> StrategyResult:
    missing = list(dict.fromkeys(c.missing for c in cues))
    tokens = min(QUESTION_TOKENS, cap) if cap else QUESTION_TOKENS
    call = ask_request(request, cues, tokens)
    tokens = budget.first_call(
        ctx.trace.usage, call.prompt_token_bound(), tokens, what="a clarifying question"
    )
    asked = await ctx.backend.generate(
        call.replace(sampling=call.sampling.replace(max_tokens=tokens)),
        label="clarifying question",
    )
    choice = asked.choices[0]
    question = _one_question(choice.text) or f"Could you tell me {missing[0]}?"
    ctx.trace.note("ambiguous", missing=missing)
    ctx.progress(f"the request leaves out {'; '.join(missing)}: asking")
    return StrategyResult(
        text=question,
        answer=None,
        reasoning="",
        usage=ctx.trace.usage,
        trace=ctx.trace,
        details={
            "clarify": True,
            "readings": missing,
            "rungs": ["ask"],
            "stop": "asked",
            "decision": f"asked back: the request leaves out {'; and '.join(missing)}",
        },
        shown_tokens=choice.completion_tokens,
    )


def _one_question(text: str) -> str:
    """The reply's first non-empty line, unquoted: the question."""
    for line in text.strip().splitlines():
        line = line.strip().strip('"').strip()
        if line.lower().startswith(("question:", "clarifying question:")):
            line = line.split(":", 1)[1].strip()
        if line:
            return line
    return ""
