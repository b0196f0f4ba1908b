"""A throwaway PostgreSQL server for the tests, and a ``database_url`` fixture that runs a
test once on SQLite and once on PostgreSQL.

The server is started once per session from Debian's binaries
(``/usr/lib/postgresql/*/bin/initdb`` and ``pg_ctl``, or ones on ``PATH``), as the
``postgres`` user when the tests run as root (initdb refuses root), with its data in a
temporary directory, listening on 127.0.0.1 on a free port; it is stopped and deleted when the
session ends. Each test gets a database of its own.

PostgreSQL tests are marked ``postgres``. They are skipped, with the reason shown, only when
no PostgreSQL binary exists on the machine (``.ci/run`` installs Debian's ``postgresql``, so
CI never skips them); if the binaries exist but the server cannot start, they fail.

Use it from a test module by importing the fixtures::

    from tests.postgres import database_url, postgres_server  # noqa: F401
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

# One server per session, however many test modules import the fixture.
_SERVER = pytest.StashKey["PostgresServer"]()


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True
        )

    def create_database(self) -> str:
        name = "ponder_test_" + secrets.token_hex(6)
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def postgres_bin_dir() -> Path | None:
    """The directory of the newest PostgreSQL's initdb and pg_ctl, or None."""

    def version(path: str) -> tuple[int, ...]:
        found = re.search(r"/postgresql/([\d.]+)/", path)
        return tuple(int(p) for p in found.group(1).split(".")) if found else (0,)

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(bin_dir: Path) -> tuple[PostgresServer, Path, list[str]]:
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="ponder-pg-"))
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root needs a 'postgres' user to run initdb as (none exists)")
        os.chown(base, account.pw_uid, account.pw_gid)
        runuser = shutil.which("runuser")
        as_user = (
            [runuser, "-u", "postgres", "--"]
            if runuser
            else [
                "setpriv",
                f"--reuid={account.pw_uid}",
                f"--regid={account.pw_gid}",
                "--clear-groups",
            ]
        )
    data, log, port = base / "data", base / "server.log", _free_port()

    def run(*args: str) -> None:
        done = subprocess.run(
            [*as_user, *args], cwd=base, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            server_log = log.read_text() if log.exists() else ""
            pytest.fail(
                f"PostgreSQL failed to start ({' '.join(args[:1])}): "
                f"{done.stdout}{done.stderr}{server_log}"
            )

    run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
        "--no-sync")  # fmt: skip
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
    )
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60",
        "start")  # fmt: skip
    stop = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
    return PostgresServer("127.0.0.1", port, "postgres"), base, stop


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> PostgresServer:
    """The session's PostgreSQL server, started on first use."""
    config = request.config
    if _SERVER in config.stash:
        return config.stash[_SERVER]
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "no PostgreSQL binaries on this machine (no /usr/lib/postgresql/*/bin/initdb, "
            "no initdb on PATH): apt-get install postgresql"
        )
    server, base, stop = _start(bin_dir)

    def cleanup() -> None:
        subprocess.run(stop, cwd=base, capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)

    config.add_cleanup(cleanup)
    config.stash[_SERVER] = server
    return server


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tenancy.sqlite3'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)
