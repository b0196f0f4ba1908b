"""``ponder teams/keys/budgets/usage`` on a real database file, and ``ponder serve`` refusing
an unauthenticated non-loopback address."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ponder.cli import main


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("PONDER_DATABASE_URL", f"sqlite:///{tmp_path / 'ponder.sqlite3'}")
    monkeypatch.delenv("PONDER_ADMIN_KEY", raising=False)
    return CliRunner()


def test_keys_are_created_listed_rotated_and_revoked(runner: CliRunner) -> None:
    assert runner.invoke(main, ["teams", "create", "acme"]).exit_code == 0
    created = runner.invoke(main, ["keys", "create", "--team", "acme", "--name", "ci"])
    assert created.exit_code == 0, created.output
    secret = created.output.strip().splitlines()[-1]
    key_id = created.output.split()[1]
    assert secret.startswith("pk-")
    listing = runner.invoke(main, ["keys", "list"]).output
    assert secret[3:11] in listing and secret not in listing  # the prefix only, never the secret
    rotated = runner.invoke(main, ["keys", "rotate", key_id])
    assert rotated.exit_code == 0 and rotated.output.strip().splitlines()[-1] != secret
    assert runner.invoke(main, ["keys", "revoke", key_id]).exit_code == 0
    assert runner.invoke(main, ["keys", "rotate", key_id]).exit_code != 0  # revoked: refused


def test_budgets_and_usage(runner: CliRunner) -> None:
    runner.invoke(main, ["teams", "create", "acme"])
    set_ = runner.invoke(
        main, ["budgets", "set", "--team", "acme", "--usd", "5", "--period", "daily"]
    )
    assert set_.exit_code == 0 and "5 usd per daily" in set_.output
    wrong = runner.invoke(main, ["budgets", "set", "--team", "acme"])
    assert wrong.exit_code != 0
    assert runner.invoke(main, ["usage", "--group-by", "team"]).exit_code == 0


def test_serve_refuses_an_open_address_without_keys(runner: CliRunner) -> None:
    result = runner.invoke(main, ["serve", "--host", "0.0.0.0", "-m", "nothing"])
    assert result.exit_code != 0
    assert "refusing to serve on 0.0.0.0 with no API keys" in result.output
