"""Free-form answers: vote by meaning, with the model as the selector.

Universal self-consistency (Chen et al. 2023): when answers cannot be compared as strings
(summaries, explanations, code), show the model all candidate responses and ask which one
agrees most with the others. One extra call replaces the string vote.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ponder.reasoning.base import RunContext
from ponder.types import TEMPLATE_TOKENS_PER_MESSAGE, GenerationRequest, Message, SamplingParams

USC_PROMPT = (
    "I have generated the following responses to the question: {question}\n\n{responses}\n\n"
    "Evaluate these responses. Select the most consistent response based on majority "
    "consensus: the one whose content agrees with the most other responses. Start your answer "
    'with "The most consistent response is Response X" (without quotes).'
)
_PICK = re.compile(r"most consistent response is\s*Response\s*(\d+)", re.IGNORECASE)


def parse_selection(text: str, count: int) -> int | None:
    found = _PICK.search(text) or re.search(r"Response\s*(\d+)", text)
    if not found:
        return None
    index = int(found.group(1)) - 1
    return index if 0 <= index < count else None


def shown(text: str, limit: int | None) -> str:
    """A response as the selector sees it: at most ``limit`` bytes of it."""
    text = text.strip()
    return text if limit is None else text.encode()[:limit].decode("utf-8", "ignore")


def usc_prompt_bound(question: str, count: int, limit: int) -> int:
    """An upper bound on the selection call's prompt tokens (a token is at least a byte) when
    each of ``count`` responses is shown at most ``limit`` bytes."""
    listing = count * (limit + len("Response 99:\n\n"))
    return (
        len(USC_PROMPT.encode())
        + len(question.encode())
        + listing
        + TEMPLATE_TOKENS_PER_MESSAGE * 3
    )


async def usc_select(
    ctx: RunContext,
    question: str,
    texts: Sequence[str],
    *,
    max_tokens: int = 64,
    limit: int | None = None,
) -> int:
    """Index of the response the model judges most consistent with the rest (0 if unparsable);
    ``limit`` bounds the bytes of each response shown."""
    if len(texts) <= 1:
        return 0
    listing = "\n\n".join(f"Response {i + 1}:\n{shown(t, limit)}" for i, t in enumerate(texts))
    request = GenerationRequest(
        messages=(Message("user", USC_PROMPT.format(question=question, responses=listing)),),
        sampling=SamplingParams(temperature=0.0, max_tokens=max_tokens),
    )
    reply = await ctx.backend.generate(request, label="usc select")
    choice = parse_selection(reply.text, len(texts))
    ctx.trace.note("usc", selected=choice, reply=reply.text.strip()[:200])
    return 0 if choice is None else choice
