"""ponder doctor: each check says ok, warn or FAIL with its fix, and the exit status is 1
only when something required is broken (here: the port taken, the database unreachable)."""

from __future__ import annotations

import socket
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from ponder.config import load_layers
from ponder.doctor import check_configuration, check_cpu, check_port, doctor


def run(tmp_path: Path, toml: str) -> Result:
    path = tmp_path / "ponder.toml"
    path.write_text(toml)

    @click.group()
    @click.pass_context
    def root(ctx: click.Context) -> None:
        ctx.meta["config_path"] = str(path)

    root.add_command(doctor)
    return CliRunner().invoke(root, ["doctor"])


@pytest.fixture(autouse=True)
def own_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PONDER_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")


def test_a_taken_port_fails_with_a_fix(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(tmp_path, f"port = {port}\n")
    assert result.exit_code == 1, result.output
    assert f"[FAIL] port: 127.0.0.1:{port} cannot be bound" in result.output
    assert "fix: stop what listens there" in result.output
    assert "[ ok ] database" in result.output and "[ ok ] cpu" in result.output


def test_an_unreachable_database_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PONDER_DATABASE_URL", "postgresql://ponder:pw@127.0.0.1:1/ponder")
    result = run(tmp_path, "port = 0\n")
    assert result.exit_code == 1
    assert (
        "[FAIL] database: postgresql://ponder:***@127.0.0.1:1/ponder unreachable" in result.output
    )
    assert "pw@" not in result.output


def test_the_exit_status_follows_the_failures(tmp_path: Path) -> None:
    result = run(tmp_path, "port = 0\n")  # 0: any free port
    assert "[ ok ] port" in result.output and "[ ok ] database" in result.output
    assert result.exit_code == (1 if "[FAIL]" in result.output else 0)


def test_unset_key_variable_and_too_many_threads_are_warnings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PONDER_TEST_MISSING_KEY", raising=False)
    path = tmp_path / "p.toml"
    path.write_text(
        '[providers.x]\nbase_url = "http://h/v1"\napi_key_env = "PONDER_TEST_MISSING_KEY"\n'
        "[engine]\nn_threads = 100000\n"
    )
    loaded = load_layers(path)
    (warning,) = [c for c in check_configuration(loaded) if c.status == "warn"]
    assert "PONDER_TEST_MISSING_KEY" in warning.detail and warning.fix
    (cpu,) = check_cpu(loaded.config)
    assert cpu.status == "warn" and "n_threads" in (cpu.fix or "")
    (port,) = check_port(loaded.config.replace(port=0))
    assert port.status == "ok"
