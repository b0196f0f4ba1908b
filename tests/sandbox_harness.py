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
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder.sandbox import RunResult, SandboxLimits
from ponder.sandbox.core import ProgramSandbox

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
MARKER = "ESCAPED:"
RETURN_GRACE_S = 3.0  # run must return within wall_seconds + this
LEAK_CHECK_AFTER_S = 0.5  # how long after run returns no process of the run may be alive
MAX_SETTLE_S = 2.0  # the longest an attack may ask the harness to wait for delayed effects
RSS_GROWTH_LIMIT = 32 * 1024 * 1024

# The decoy server: what an attack would want from Ponder's own process, in a process we can
# afford to lose. It prints the numbers of the descriptors it holds, then sleeps.
_DECOY_SOURCE = r"""
import mmap, os, sys, time
secret_file, env_name = sys.argv[1], sys.argv[2]
database = os.open(secret_file, os.O_RDONLY)
state = os.memfd_create("ponder-decoy-state")
os.write(state, b"decoy-state:" + os.environb[env_name.encode()])
shared = mmap.mmap(state, 0)
api_key = os.environ[env_name]
print(database, state, flush=True)
while True:
    time.sleep(60)
"""


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


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of ``pid``, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def pids() -> set[int]:
    return {int(name) for name in os.listdir("/proc") if name.isdigit()}


def _descends_from(pid: int, ancestor: int) -> bool:
    for _ in range(64):
        info = _proc_stat(pid)
        if info is None or info[1] <= 1:
            return False
        if info[1] == ancestor:
            return True
        pid = info[1]
    return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def run_processes(before: set[int], helpers: set[int]) -> list[tuple[int, str]]:
    """Processes alive now that the run started: new since ``before``, not the harness's own
    helpers, and descended from this process.

    The machine is shared, so a plain difference of pid sets would blame whatever else started
    meanwhile; descent is what ties a process to the run. With :func:`subreaper` in force an
    orphan (even one that called setsid and forked again) is re-parented to this process rather
    than to init, so it still counts as ours. Zombies are reaped, not counted.
    """
    me = os.getpid()
    alive = []
    for pid in sorted(pids() - before - helpers):
        if not _descends_from(pid, me):
            continue
        info = _proc_stat(pid)
        if info is None:
            continue
        if info[0] in "ZX":
            _reap(pid)
            continue
        alive.append((pid, f"pid {pid} ({_comm(pid)}, state {info[0]})"))
    return alive


def kill_run_processes(before: set[int], helpers: set[int]) -> None:
    for pid, _ in run_processes(before, helpers):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and run_processes(before, helpers):
        time.sleep(0.02)


@contextlib.contextmanager
def subreaper() -> Iterator[None]:
    """Make this process the subreaper of everything it starts, for the leak checks."""
    libc = ctypes.CDLL(None, use_errno=True)
    previous = ctypes.c_int(0)
    libc.prctl(37, ctypes.byref(previous), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
    try:
        yield
    finally:
        libc.prctl(36, previous.value, 0, 0, 0)


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


# ---------------------------------------------------------------------------- listeners


class _StreamRecorder(asyncio.Protocol):
    def __init__(self, label: str, log: list[str], transports: list[asyncio.BaseTransport]):
        self.label, self.log, self.transports = label, log, transports

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transports.append(transport)
        self.log.append(f"{self.label}: a connection was accepted")

    def data_received(self, data: bytes) -> None:
        self.log.append(f"{self.label}: received {data[:120]!r}")


class _DatagramRecorder(asyncio.DatagramProtocol):
    def __init__(self, log: list[str]):
        self.log = log

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.log.append(f"udp: received {data[:120]!r} from {addr}")


# ---------------------------------------------------------------------------- snapshots


def _tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Names, kinds, owners, modes, times, contents and extended attributes under ``root``."""
    entries: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            path = Path(dirpath, name)
            try:
                st = path.lstat()
                if stat.S_ISREG(st.st_mode):
                    content = path.read_bytes()
                elif stat.S_ISLNK(st.st_mode):
                    content = os.readlink(path).encode()
                else:
                    content = b""
                try:
                    xattrs = tuple(sorted(os.listxattr(path, follow_symlinks=False)))
                except OSError:
                    xattrs = ()
            except OSError as exc:
                entries[str(path.relative_to(root))] = ("unreadable", exc.strerror)
                continue
            entries[str(path.relative_to(root))] = (
                st.st_mode,
                st.st_uid,
                st.st_gid,
                st.st_mtime_ns,
                st.st_nlink if not stat.S_ISDIR(st.st_mode) else 0,
                content,
                xattrs,
            )
    return entries


def _file(path: Path) -> tuple[object, ...]:
    try:
        st = path.stat()
        return (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, path.read_bytes())
    except OSError as exc:
        return ("gone", exc.strerror)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _diff(before: dict[str, tuple[object, ...]], after: dict[str, tuple[object, ...]]) -> str:
    added = sorted(after.keys() - before.keys())
    removed = sorted(before.keys() - after.keys())
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
    return f"added {added}, removed {removed}, changed {changed}"


@dataclass
class _Before:
    pids: set[int]
    canary: dict[str, tuple[object, ...]]
    secret_file: tuple[object, ...]
    decoy_environ: bytes | None
    decoy_cmdline: bytes | None
    decoy_state: bytes | None
    rss: int


class Targets:
    """The decoys for one run, made on entry and destroyed on exit.

    Which process plays the server? ``__SERVER_PID__`` is a separate decoy process, because
    that is the more faithful target: a real server gets its API keys through its environment
    at exec time (which is what /proc/<pid>/environ and the top of its stack hold; a key put
    into os.environ later shows in neither) and keeps files and shared memory open, and the
    decoy has all of these. It also means that an attack which does get through (as in the
    weak mode) kills, stops or rewrites a process we can lose, not the one running the
    checks. The process running the checks is still judged on its own: it holds the same key
    in its os.environ during the run (it must be unchanged after), it must survive (a run
    that killed it would never report), and in the weak mode it is the literal parent that
    getppid-based attacks reach.
    """

    def __init__(self) -> None:
        token = secrets.token_hex(12)
        self.root = Path(tempfile.mkdtemp(prefix="ponder-corpus-"))
        self.file_secret = f"PONDER-FILE-SECRET-{token}"
        self.env_secret = f"PONDER-ENV-SECRET-{secrets.token_hex(12)}"
        self.env_name = f"PONDER_CORPUS_API_KEY_{token[:6].upper()}"
        self.secret_file = self.root / "data" / "traces.sqlite3"
        self.canary_dir = self.root / "canary"
        self.abstract_name = f"ponder-corpus-{token}"
        self.log: list[str] = []
        self.tcp_port = 0
        self.udp_port = 0
        self._servers: list[asyncio.AbstractServer] = []
        self._transports: list[asyncio.BaseTransport] = []
        self._decoy: subprocess.Popen[bytes] | None = None
        self._state_fd = -1
        self._saved_env: str | None = None

    @property
    def decoy_pid(self) -> int:
        assert self._decoy is not None
        return self._decoy.pid

    @property
    def helpers(self) -> set[int]:
        return {self.decoy_pid} if self._decoy is not None else set()

    async def __aenter__(self) -> Targets:
        try:
            self._make_files()
            await self._listen()
            self._start_decoy()
        except BaseException:
            await self.close()
            raise
        # The test process plays the server too: the key is in its os.environ for the run.
        self._saved_env = os.environ.get(self.env_name)
        os.environ[self.env_name] = self.env_secret
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _make_files(self) -> None:
        self.secret_file.parent.mkdir()
        with contextlib.closing(sqlite3.connect(self.secret_file)) as db:
            db.execute("CREATE TABLE traces (id INTEGER PRIMARY KEY, prompt TEXT, api_key TEXT)")
            db.execute(
                "INSERT INTO traces (prompt, api_key) VALUES (?, ?)",
                ("what is 2+2?", self.file_secret),
            )
            db.commit()
        (self.canary_dir / "sub").mkdir(parents=True)
        (self.canary_dir / "note.txt").write_text("canary note: nothing to see\n")
        (self.canary_dir / "sub" / "inner.txt").write_text("inner canary\n")

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()

        def stream(label: str) -> _StreamRecorder:
            return _StreamRecorder(label, self.log, self._transports)

        tcp = await loop.create_server(lambda: stream("tcp"), "127.0.0.1", 0)
        self._servers.append(tcp)
        self.tcp_port = tcp.sockets[0].getsockname()[1]
        with contextlib.suppress(OSError):  # no IPv6 on this host, or the port is taken there
            self._servers.append(
                await loop.create_server(lambda: stream("tcp6"), "::1", self.tcp_port)
            )
        udp, _ = await loop.create_datagram_endpoint(
            lambda: _DatagramRecorder(self.log), local_addr=("127.0.0.1", 0)
        )
        self._transports.append(udp)
        self.udp_port = udp.get_extra_info("sockname")[1]
        self._servers.append(
            await loop.create_unix_server(lambda: stream("unix"), "\0" + self.abstract_name)
        )

    def _start_decoy(self) -> None:
        self._decoy = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                "-c",
                _DECOY_SOURCE,
                str(self.secret_file),
                self.env_name,
                "--api-key",
                self.env_secret,
            ],
            env={self.env_name: self.env_secret},
            cwd=self.canary_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self._decoy.stdout is not None
        line = self._decoy.stdout.readline().split()
        if len(line) != 2:
            raise RuntimeError("the decoy server did not start")
        self._state_fd = int(line[1])

    async def close(self) -> None:
        if self._saved_env is None:
            os.environ.pop(self.env_name, None)
        else:
            os.environ[self.env_name] = self._saved_env
        for transport in self._transports:
            transport.close()
        for server in self._servers:
            server.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        if self._decoy is not None:
            with contextlib.suppress(OSError):
                os.killpg(self._decoy.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                self._decoy.kill()
            self._decoy.wait()
            if self._decoy.stdout is not None:
                self._decoy.stdout.close()
        await asyncio.to_thread(_remove_tree, self.root)

    def substitute(self, source: str) -> str:
        values = {
            "__SECRET_FILE__": str(self.secret_file),
            "__CANARY_DIR__": str(self.canary_dir),
            "__SERVER_PID__": str(self.decoy_pid),
            "__SECRET_ENV__": self.env_name,
            "__TCP_PORT__": str(self.tcp_port),
            "__UDP_PORT__": str(self.udp_port),
            "__UNIX_ABSTRACT__": self.abstract_name,
        }
        for placeholder, value in values.items():
            source = source.replace(placeholder, value)
        return source

    def _decoy_state(self) -> bytes | None:
        return _read(f"/proc/{self.decoy_pid}/fd/{self._state_fd}")

    def snapshot(self) -> _Before:
        return _Before(
            pids=pids(),
            canary=_tree(self.canary_dir),
            secret_file=_file(self.secret_file),
            decoy_environ=_read(f"/proc/{self.decoy_pid}/environ"),
            decoy_cmdline=_read(f"/proc/{self.decoy_pid}/cmdline"),
            decoy_state=self._decoy_state(),
            rss=rss_bytes(),
        )

    def leaks(self, before: _Before) -> list[str]:
        return [
            f"a process of the run outlived it: {what}"
            for _, what in run_processes(before.pids, self.helpers)
        ]

    def changes(self, before: _Before, result: RunResult | None) -> list[str]:
        found = []
        if result is not None:
            for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
                if self.file_secret in text:
                    found.append(f"the secret from the trace database appears in {stream}")
                if self.env_secret in text:
                    found.append(f"the server's API key appears in {stream}")
                if MARKER in text:
                    line = text[text.index(MARKER) :].splitlines()[0]
                    found.append(f"the attack reports success on {stream}: {line[:300]}")
        canary = _tree(self.canary_dir)
        if canary != before.canary:
            found.append(f"the canary directory changed: {_diff(before.canary, canary)}")
        if _file(self.secret_file) != before.secret_file:
            found.append("the trace database (secret file) changed")
        if self.log:
            found.append(f"a listener was reached: {'; '.join(self.log)[:400]}")
        assert self._decoy is not None
        if self._decoy.poll() is not None:
            found.append(f"the decoy server died (status {self._decoy.returncode})")
        else:
            info = _proc_stat(self.decoy_pid)
            if info is None or info[0] in "TtZX":
                found.append(f"the decoy server is not running (state {info and info[0]})")
            if _read(f"/proc/{self.decoy_pid}/environ") != before.decoy_environ:
                found.append("the decoy server's environment was rewritten")
            if _read(f"/proc/{self.decoy_pid}/cmdline") != before.decoy_cmdline:
                found.append("the decoy server's command line was rewritten")
            if self._decoy_state() != before.decoy_state:
                found.append("the decoy server's shared memory was rewritten")
        if os.environ.get(self.env_name) != self.env_secret:
            found.append("this process's own copy of the API key changed")
        return found


def _remove_tree(root: Path) -> None:
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:  # an attack may have taken the write bits away
            path = Path(dirpath, name)
            if not path.is_symlink():
                with contextlib.suppress(OSError):
                    os.chmod(path, 0o700)
    with contextlib.suppress(OSError):
        os.chmod(root, 0o700)
    shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------- one run


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
