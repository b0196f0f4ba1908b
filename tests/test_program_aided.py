"""Program-aided reasoning: programs written, run in the sandbox, and voted on."""

from __future__ import annotations

from ponder.backends.scripted import ScriptedBackend
from tests.strategy_helpers import run


def program(body: str) -> str:
    return f"Here is the program:\n```python\n{body}\n```"


async def test_votes_over_executed_results() -> None:
    backend = ScriptedBackend.cycle(
        [
            program("apples = 3 + 4\nprint(apples)"),
            program("print(3 * 4)"),
            program("print(1 + 6)"),
            "I cannot write code.",
        ]
    )
    result = await run("program-aided", backend, n=4)
    assert result.answer == "7"
    assert result.details["executed"] == 3
    assert result.details["votes"] == {"7": 2, "12": 1}
    assert result.text.endswith("The answer is: 7")


async def test_crashing_program_gives_no_vote() -> None:
    backend = ScriptedBackend.cycle([program("raise ValueError('boom')")])
    result = await run("program-aided", backend, n=1)
    assert result.answer is None
    assert "ValueError" in result.trace.calls[0].annotations["outputs"][0]
