"""Program-aided reasoning and the subprocess sandbox it runs programs in."""

from __future__ import annotations

from ponder.backends.scripted import ScriptedBackend
from ponder.sandbox import SandboxLimits, run_python
from tests.strategy_helpers import run


def program(body: str) -> str:
    return f"Here is the program:\n```python\n{body}\n```"


async def test_sandbox_runs_and_limits() -> None:
    ok = await run_python("print(6 * 7)")
    assert ok.ok and ok.stdout.strip() == "42"
    slow = await run_python("while True: pass", SandboxLimits(wall_seconds=1.0, cpu_seconds=1))
    assert not slow.ok
    net = await run_python("import socket; socket.create_connection(('127.0.0.1', 9))")
    assert not net.ok and "not allowed" in net.stderr
    spawn = await run_python("import subprocess; subprocess.run(['true'])")
    assert not spawn.ok and "not allowed" in spawn.stderr
    write = await run_python("open('/tmp/ponder-sandbox-escape', 'w').write('x')")
    assert not write.ok
    local = await run_python(
        "open('scratch.txt', 'w').write('x'); print(open('scratch.txt').read())"
    )
    assert local.ok and local.stdout.strip() == "x"
    hog = await run_python("x = bytearray(2 * 1024**3)", SandboxLimits(memory_bytes=256 * 1024**2))
    assert not hog.ok


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
