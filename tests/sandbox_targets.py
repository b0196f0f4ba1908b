"""The decoys one escape attempt is pointed at, made for that run and thrown away after it:
a secret file, a canary directory, a decoy server process, and loopback listeners that record
anything reaching them (see tests/sandbox_harness.py for what each placeholder becomes)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.sandbox import RunResult

try:
    from tests.sandbox_processes import _proc_stat, pids, rss_bytes, run_processes
except ImportError:  # loaded by bench/sandbox_escapes.py with this directory on sys.path
    from sandbox_processes import _proc_stat, pids, rss_bytes, run_processes  # type: ignore[no-redef]

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


MARKER = "ESCAPED:"  # what an attack prints when it believes it got out


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
