"""Running one escape attempt from ``tests/sandbox_corpus/`` against decoys, and judging whether
it stayed contained.

Shared by ``tests/test_sandbox_corpus.py`` (the bwrap sandbox must contain every attack) and
``bench/sandbox_escapes.py`` (the same corpus through the weak ``process`` mode and bwrap, side
by side). It imports nothing from the ``tests`` package, so the bench can load it by putting
this directory on ``sys.path``.

Every target an attack is pointed at is a decoy made for that one run and thrown away after it:

- ``__SECRET_FILE__``: a SQLite database named ``traces.sqlite3`` (what Ponder's trace store
  looks like) in a fresh temporary directory, holding a random secret;
- ``__CANARY_DIR__``: a fresh directory with two small files, which the attack tries to write;
- ``__SERVER_PID__``: a decoy "server" process, started for the run with the secret API key in
  its environment and on its command line, its trace database open, its cwd in the canary
  directory and a shared-memory state block (a memfd) holding the key;
- ``__SECRET_ENV__``: the name of that environment variable;
- ``__TCP_PORT__``, ``__UDP_PORT__``, ``__UNIX_ABSTRACT__``: listeners on 127.0.0.1 (and the
  TCP port on ::1 too, where the host has IPv6) and an abstract Unix socket, recording anything
  that reaches them.

So even where the weak mode lets an attack through, all it can write, kill, or talk to is ours.
"""

from __future__ import annotations

import ast
import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from ponder.sandbox import RunResult, SandboxLimits
from ponder.sandbox.core import ProgramSandbox

try:
    from tests.sandbox_processes import kill_run_processes, rss_bytes, subreaper  # noqa: F401
    from tests.sandbox_targets import Targets
except ImportError:  # loaded by bench/sandbox_escapes.py with this directory on sys.path
    from sandbox_processes import (  # type: ignore[no-redef]
        kill_run_processes,
    )
    from sandbox_targets import Targets  # type: ignore[no-redef]

CORPUS_DIR = Path(__file__).resolve().parent / "sandbox_corpus"
CATEGORIES = (
    "read",
    "write",
    "hook",
    "process",
    "signal",
    "network",
    "proc",
    "ctypes",
    "escape",
    "env",
    "bomb",
)
LIMITS = SandboxLimits(wall_seconds=3, cpu_seconds=2)
RETURN_GRACE_S = 3.0  # run must return within wall_seconds + this
LEAK_CHECK_AFTER_S = 0.5  # how long after run returns no process of the run may be alive
MAX_SETTLE_S = 2.0  # the longest an attack may ask the harness to wait for delayed effects
RSS_GROWTH_LIMIT = 32 * 1024 * 1024


# The decoy server: what an attack would want from Ponder's own process, in a process we can
# afford to lose. It prints the numbers of the descriptors it holds, then sleeps.
@dataclass(frozen=True, slots=True)
class Attack:
    """One corpus file; its docstring's first line is ``<category>: <what it tries>``, and a
    ``settle: <seconds>`` line asks the harness to wait that long before judging effects."""

    path: Path
    category: str
    summary: str
    settle_s: float

    @property
    def name(self) -> str:
        return self.path.stem

    def source(self) -> str:
        return self.path.read_text()


def load_corpus(directory: Path = CORPUS_DIR) -> list[Attack]:
    attacks = []
    for path in sorted(directory.glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text()))
        if not doc:
            raise ValueError(f"{path.name}: no module docstring")
        first, *rest = doc.splitlines()
        category, _, summary = first.partition(": ")
        if category not in CATEGORIES or not path.stem.startswith(category + "_"):
            raise ValueError(f"{path.name}: docstring category {category!r} does not match")
        settle = LEAK_CHECK_AFTER_S
        for line in rest:
            if line.startswith("settle: "):
                settle = float(line.removeprefix("settle: "))
        settle = min(max(settle, LEAK_CHECK_AFTER_S), MAX_SETTLE_S)
        attacks.append(Attack(path, category, summary.strip(), settle))
    return attacks


@dataclass
class Outcome:
    attack: Attack
    result: RunResult | None
    elapsed_s: float
    violations: list[str] = field(default_factory=list)

    @property
    def escaped(self) -> bool:
        return bool(self.violations)

    def report(self) -> str:
        lines = [f"{self.attack.name} ({self.attack.summary}) after {self.elapsed_s:.2f} s:"]
        lines += [f"  - {v}" for v in self.violations]
        if self.result is not None:
            r = self.result
            lines.append(
                f"  returncode={r.returncode} timed_out={r.timed_out} truncated={r.truncated}"
            )
            lines.append("  stdout: " + r.stdout[-3000:].replace("\n", "\n          "))
            lines.append("  stderr: " + r.stderr[-2000:].replace("\n", "\n          "))
        return "\n".join(lines)


# ---------------------------------------------------------------------------- processes


# ---------------------------------------------------------------------------- listeners


async def run_attack(
    sandbox: ProgramSandbox, attack: Attack, limits: SandboxLimits = LIMITS
) -> Outcome:
    """Run ``attack`` in ``sandbox`` against fresh decoys and list every way it got out.

    Call it with :func:`subreaper` in force, so that a process the run leaves behind is seen
    (and killed) wherever it re-parents.
    """
    async with Targets() as targets:
        code = targets.substitute(attack.source())
        before = targets.snapshot()
        result: RunResult | None = None
        violations: list[str] = []
        started = time.monotonic()
        try:
            result = await sandbox.run(code, limits)
        except Exception as exc:  # the sandbox blaming itself for a program's doing is a finding
            violations.append(f"sandbox.run raised {type(exc).__name__}: {exc}"[:500])
        elapsed = time.monotonic() - started
        try:
            if elapsed > limits.wall_seconds + RETURN_GRACE_S:
                violations.append(
                    f"run returned after {elapsed:.1f} s (wall limit {limits.wall_seconds} s)"
                )
            await asyncio.sleep(LEAK_CHECK_AFTER_S)
            violations += targets.leaks(before)
            if attack.settle_s > LEAK_CHECK_AFTER_S:
                await asyncio.sleep(attack.settle_s - LEAK_CHECK_AFTER_S)
            violations += targets.changes(before, result)
            grown = rss_bytes() - before.rss
            if grown >= RSS_GROWTH_LIMIT:
                violations.append(f"this process grew by {grown / 2**20:.1f} MiB during the run")
        finally:
            kill_run_processes(before.pids, targets.helpers)
    return Outcome(attack, result, elapsed, violations)
