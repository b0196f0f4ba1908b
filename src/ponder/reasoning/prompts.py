"""The instructions strategies share: step-by-step reasoning and program writing."""

from __future__ import annotations

from ponder.types import GenerationRequest, Message

COT_SYSTEM = (
    "Think through the problem step by step, showing your reasoning. "
    "Finish with a last line of the form: The answer is: <answer>"
)


def with_cot_prompt(request: GenerationRequest) -> GenerationRequest:
    """Add the step-by-step instruction to the system message (or add one)."""
    messages = request.messages
    if messages and messages[0].role == "system":
        system = Message("system", messages[0].content + "\n\n" + COT_SYSTEM)
        messages = (system, *messages[1:])
    else:
        messages = (Message("system", COT_SYSTEM), *messages)
    return request.replace(messages=messages)


PAL_SYSTEM = (
    "Solve the problem by writing a Python program. Put the whole program in one ```python "
    "code block. Compute the result step by step with clearly named variables, and end the "
    "program with print(answer), printing only the final answer."
)
