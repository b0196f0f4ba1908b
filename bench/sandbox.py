"""The sandbox's latency against the subprocess runner it replaced, side by side in one run.

Three runners execute the same trivial program (``print(6 * 7)``) and a small arithmetic
program, in alternating rounds so that machine noise falls on all of them alike:

- ``old``: the audit-hook subprocess Ponder used before (``python -I`` with a prelude, a
  program file in a temporary directory), reproduced here as it was;
- ``process``: today's weak mode (``[sandbox] mode = "process"``);
- ``bwrap``: the default, namespaces plus seccomp.

It prints p50 and p90 per runner and program, and the ratio of each to ``old``. The goal set
for the default: p50 of a trivial program at most 1.5x the old runner's.

    python bench/sandbox.py --rounds 40
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from ponder.sandbox import Sandbox, SandboxLimits, SandboxSettings

PROGRAMS = {
    "trivial": "print(6 * 7)",
    "arithmetic": (
        "from fractions import Fraction\n"
        "apples = Fraction(48) + Fraction(48, 2)\n"
        "answer = apples * 3 - 17\n"
        "print(answer)"
    ),
}

_OLD_PRELUDE = r"""
import os, resource, sys
resource.setrlimit(resource.RLIMIT_CPU, ({cpu}, {cpu}))
resource.setrlimit(resource.RLIMIT_AS, ({mem}, {mem}))
resource.setrlimit(resource.RLIMIT_FSIZE, ({fsize}, {fsize}))
_ROOT = os.getcwd()
_BLOCKED = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.fork", "os.spawn",
            "pty.", "ctypes.", "os.kill", "signal.")
def _audit(event, args):
    if event.startswith(_BLOCKED):
        raise PermissionError(f"sandbox: {{event}} is not allowed")
    if event == "open" and args and isinstance(args[0], (str, bytes)) and len(args) > 1:
        mode = args[1] if isinstance(args[1], str) else ""
        path = os.path.abspath(os.fsdecode(args[0]))
        if any(c in mode for c in "wax+") and not path.startswith(_ROOT):
            raise PermissionError("sandbox: writing outside the work directory is not allowed")
sys.addaudithook(_audit)
del _audit
"""


async def old_runner(code: str, limits: SandboxLimits) -> str:
    """The runner this sandbox replaced (src/ponder/sandbox.py before), for comparison."""
    prelude = _OLD_PRELUDE.format(
        cpu=limits.cpu_seconds, mem=limits.memory_bytes, fsize=limits.output_bytes
    )
    with tempfile.TemporaryDirectory(prefix="ponder-sandbox-") as workdir:
        script = Path(workdir) / "program.py"
        script.write_text(code)
        runner = prelude + f"\nexec(compile(open({str(script)!r}).read(), 'program.py', 'exec'))\n"
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONIOENCODING": "utf-8", "HOME": workdir}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-c",
            runner,
            cwd=workdir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=limits.wall_seconds)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            return ""
    return out.decode()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(rounds: int) -> None:
    limits = SandboxLimits()
    bwrap = Sandbox(SandboxSettings(mode="bwrap"))
    process = Sandbox(SandboxSettings(mode="process"))
    status = await bwrap.status()
    if not status.available:
        raise SystemExit(f"bwrap sandbox unavailable: {status.detail}")

    async def run_bwrap(code: str, lim: SandboxLimits) -> str:
        return (await bwrap.run(code, lim)).stdout

    async def run_process(code: str, lim: SandboxLimits) -> str:
        return (await process.run(code, lim)).stdout

    runners: dict[str, Callable[[str, SandboxLimits], Awaitable[str]]] = {
        "old": old_runner,
        "process": run_process,
        "bwrap": run_bwrap,
    }
    times: dict[tuple[str, str], list[float]] = {(r, p): [] for r in runners for p in PROGRAMS}
    for code in PROGRAMS.values():
        expected = (await old_runner(code, limits)).strip()
        for name, runner in runners.items():  # warm-up, and every runner prints the same
            got = (await runner(code, limits)).strip()
            assert got == expected, (name, got, expected)
    for i in range(rounds):
        order = list(runners.items())
        if i % 2:
            order.reverse()
        for name, runner in order:
            for program, code in PROGRAMS.items():
                started = time.perf_counter()
                await runner(code, limits)
                times[name, program].append((time.perf_counter() - started) * 1000)

    print(f"sandbox latency, {rounds} alternating rounds, milliseconds per run")
    print(f"bwrap: {status.detail}")
    print()
    print("| program | runner | p50 ms | p90 ms | p50 / old |")
    print("| --- | --- | --- | --- | --- |")
    for program in PROGRAMS:
        base = statistics.median(times["old", program])
        for name in runners:
            values = times[name, program]
            p50 = statistics.median(values)
            print(
                f"| {program} | {name} | {p50:.1f} | {percentile(values, 0.9):.1f} "
                f"| {p50 / base:.2f}x |"
            )
    ratio = statistics.median(times["bwrap", "trivial"]) / statistics.median(
        times["old", "trivial"]
    )
    verdict = "met" if ratio <= 1.5 else "MISSED"
    print()
    print(f"goal (bwrap p50 of a trivial program <= 1.5x old): {ratio:.2f}x, {verdict}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    asyncio.run(main(parser.parse_args().rounds))
