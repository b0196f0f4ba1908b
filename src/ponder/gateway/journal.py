"""The in-flight journal: what each running request has spent, kept durable while it runs,
so a process killed with ``kill -9`` (or by the OOM killer) loses none of it.

A request's ledger row is written when it ends. A process that dies first never writes
it, and its reservation would hold budget until the sweep. So each process appends, to a
journal file of its own, a line when a request begins (who, what, its reservation), a line
when each of its calls ends (what it spent), a line whenever a running call learns what it
has spent so far (an endpoint that reports usage on every chunk), and a line when its
ledger row is committed. Each line is one ``write(2)`` on an ``O_APPEND`` descriptor: once it
returns, the kernel has the line, and killing the process cannot take it back (a power
loss can; this is not an fsync'd log, which would cost a disk flush per token).

When a gateway starts, it reads the journals no live process holds (each process holds an
``flock`` on its own, which the kernel drops when it dies) and writes the ledger row of
every request they began and never ended: outcome ``interrupted``, with what its calls
spent, and its reservation settled with that. A row that was committed just before the
kill is not written or charged twice (settling and recording are both idempotent by id).

The file is rotated when it grows past ``rotate_bytes``: the requests still open are written
again to a new file (a ``begin`` line resets what is known of a request, so a crash between
the two writes counts nothing twice), and the old one is removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import platformdirs

from ponder.metering import CallRecord, Outcome
from ponder.types import Usage

log = logging.getLogger("ponder.gateway")

PREFIX = "inflight-"
ROTATE_BYTES = 16 * 1024 * 1024


def _usage(u: Usage) -> list[int]:
    return [
        u.prompt_tokens,
        u.completion_tokens,
        u.reasoning_tokens,
        u.cached_prompt_tokens,
        u.calls,
    ]


def _from_usage(values: Any) -> Usage:
    prompt, completion, reasoning, cached, calls = (int(v) for v in values)
    return Usage(prompt, completion, reasoning, cached, calls)


@dataclass(slots=True)
class Interrupted:
    """A request a dead process began and never recorded: what is needed to write its row."""

    request_id: str
    begun: dict[str, Any]
    records: dict[int, CallRecord] = field(default_factory=dict)
    # Calls still running at the kill: their last report (backend, usage so far).
    running: dict[int, tuple[str, Usage]] = field(default_factory=dict)

    @property
    def calls(self) -> tuple[CallRecord, ...]:
        """Every call's record; a call still running at the kill counts what it had reported
        (one call, outcome ``cancelled``)."""
        running = [
            CallRecord(backend, usage, 0.0, "cancelled")
            for n, (backend, usage) in sorted(self.running.items())
            if n not in self.records
        ]
        return (*(self.records[n] for n in sorted(self.records)), *running)


class RequestJournal:
    """One request's lines in its process's journal; the request's log reports to it."""

    __slots__ = ("_journal", "request_id")

    def __init__(self, journal: Journal, request_id: str) -> None:
        self._journal = journal
        self.request_id = request_id

    def recorded(self, call: int, record: CallRecord) -> None:
        line = {
            "op": "call",
            "id": self.request_id,
            "n": call,
            "b": record.backend,
            "u": _usage(record.usage),
            "s": round(record.seconds, 6),
            "o": record.outcome,
        }
        self._journal.append(self.request_id, line)

    def progressed(self, call: int, backend: str, usage: Usage) -> None:
        line = {"op": "prog", "id": self.request_id, "n": call, "b": backend, "u": _usage(usage)}
        self._journal.append(self.request_id, line, replaces=("prog", call))


class Journal:
    """This process's journal file in ``directory`` (created if missing)."""

    def __init__(self, directory: Path, rotate_bytes: int = ROTATE_BYTES) -> None:
        self.directory = directory
        self.rotate_bytes = rotate_bytes
        directory.mkdir(parents=True, exist_ok=True)
        # The lines of every open request, to write again when the file is rotated; a
        # running call's progress keeps only its latest line.
        self._open: dict[str, dict[Any, bytes]] = {}
        self._fd = -1
        self._path = directory
        self._written = 0
        self._open_file()

    def _open_file(self) -> None:
        # Names sort in the order they were made, so recovery reads older files first.
        name = f"{PREFIX}{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        path = self.directory / name
        # Locked under a name recovery does not read, then renamed: a worker starting at the
        # same moment never takes a live journal for a dead one.
        making = self.directory / f".making-{name}"
        fd = os.open(making, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(making, path)
        self._fd, self._path, self._written = fd, path, 0

    @property
    def path(self) -> Path:
        return self._path

    def begin(
        self,
        request_id: str,
        *,
        key_id: str | None,
        team: str | None,
        model: str,
        strategy: str | None,
        effort: str | None,
        reservation: dict[str, Any] | None,
    ) -> RequestJournal:
        line = {
            "op": "begin",
            "id": request_id,
            "key": key_id,
            "team": team,
            "model": model,
            "strategy": strategy,
            "effort": effort,
            "res": reservation,
            "t": time.time(),
        }
        self._open[request_id] = {}
        self.append(request_id, line, replaces="begin")
        return RequestJournal(self, request_id)

    def end(self, request_id: str) -> None:
        """The request's ledger row is committed: nothing of it is needed any more."""
        if self._open.pop(request_id, None) is not None:
            self._write(json.dumps({"op": "end", "id": request_id}).encode() + b"\n")

    def forget(self, request_id: str) -> None:
        """Stop tracking a request without ending it: its lines stay for recovery (they are
        not written again if the file is rotated, so a later start records it only while
        this file is there)."""
        self._open.pop(request_id, None)

    def append(self, request_id: str, line: dict[str, Any], replaces: Any = None) -> None:
        lines = self._open.get(request_id)
        if lines is None:
            return  # ended already (a call that reports after its request was recorded)
        data = json.dumps(line, separators=(",", ":")).encode() + b"\n"
        lines[replaces if replaces is not None else len(lines)] = data
        self._write(data)
        if self._written > self.rotate_bytes:
            self._rotate()

    def _write(self, data: bytes) -> None:
        if self._fd < 0:
            return
        try:
            os.write(self._fd, data)
            self._written += len(data)
        except OSError as exc:  # a full disk must not fail requests; the ledger still works
            log.warning("the in-flight journal %s cannot be written: %s", self._path, exc)

    def _rotate(self) -> None:
        old_fd, old_path = self._fd, self._path
        self._open_file()
        for lines in self._open.values():
            # The begin line first: it resets the request for whoever reads both files.
            for key in sorted(lines, key=lambda k: k != "begin"):
                self._write(lines[key])
        os.close(old_fd)
        with contextlib.suppress(FileNotFoundError):
            old_path.unlink()

    def close(self) -> None:
        """Close the file; it is removed when no request is left open in it (a clean stop)."""
        if self._fd < 0:
            return
        os.close(self._fd)
        self._fd = -1
        if not self._open:
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()


@contextlib.contextmanager
def orphaned(directory: Path) -> Iterator[list[Interrupted]]:
    """The requests begun and never ended in journals of processes that are gone: each file
    no live process holds, locked while the caller records them and removed after (unless
    the caller fails, so that the next start tries again)."""
    held: list[tuple[int, Path]] = []
    found: dict[str, Interrupted] = {}
    try:
        for path in sorted(directory.glob(f"{PREFIX}*.jsonl")) if directory.is_dir() else []:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a live process's own journal
                continue
            held.append((fd, path))
            _read(path, found)
        yield list(found.values())
        for _, path in held:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    finally:
        for fd, _ in held:
            os.close(fd)


def _read(path: Path, found: dict[str, Interrupted]) -> None:
    with path.open("rb") as lines:
        for raw in lines:
            try:
                line = json.loads(raw)
                rid = str(line["id"])
                op = line["op"]
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by the kill: it told nothing yet
            if op == "begin":
                found[rid] = Interrupted(rid, line)
            elif op == "end":
                found.pop(rid, None)
            elif rid in found:
                entry = found[rid]
                try:
                    n, backend, usage = int(line["n"]), str(line["b"]), _from_usage(line["u"])
                    if op == "call":
                        outcome: Outcome = line.get("o", "cancelled")
                        entry.records[n] = CallRecord(backend, usage, float(line["s"]), outcome)
                    elif op == "prog":
                        entry.running[n] = (backend, usage)
                except (ValueError, KeyError, TypeError):
                    continue


def journal_directory(database_url: str, configured: str | None = None) -> Path | None:
    """Where this database's in-flight journals live: ``configured``, else beside a SQLite
    file, else in the user state directory under a name of the database's own (so that
    servers on one machine that use different databases never record into each other's).
    None for an in-process database, which dies with the process anyway."""
    if configured:
        return Path(configured).expanduser()
    if database_url.startswith("sqlite"):
        _, _, path = database_url.partition(":///")
        if not path or path == ":memory:" or "mode=memory" in path:
            return None
        return Path(path.split("?", 1)[0] + ".journal")
    digest = hashlib.sha256(database_url.encode()).hexdigest()[:16]
    return Path(platformdirs.user_state_dir("ponder")) / "journal" / digest


def begun_at(entry: Interrupted) -> datetime:
    """When an interrupted request began."""
    return datetime.fromtimestamp(float(entry.begun.get("t") or time.time()), UTC)
