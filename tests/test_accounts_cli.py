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


def test_teams_and_keys_take_a_policy(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # rich tables on one line each
    deny = ["--deny-vendor", "deepseek", "--deny-vendor", "x*"]
    made = runner.invoke(main, ["teams", "create", "acme", "--local-only", *deny])
    assert made.exit_code == 0, made.output
    assert "policy: local-only; deny vendor=deepseek; deny vendor=x*" in made.output
    allow = '{"mode": "allow", "rules": [{"effect": "allow", "region": "eu"}]}'
    created = runner.invoke(
        main, ["keys", "create", "--team", "acme", "--name", "ci", "--redact", "--policy", allow]
    )
    assert created.exit_code == 0, created.output
    key_id = created.output.split()[1]
    assert created.output.strip().splitlines()[-1].startswith("pk-")
    plain = runner.invoke(main, ["keys", "create", "--team", "acme", "--name", "plain"])
    assert "policy" not in plain.output
    listing = runner.invoke(main, ["keys", "list"]).output
    assert "allow-list; redact; allow region=eu" in listing
    teams = runner.invoke(main, ["teams", "list"]).output
    assert "local-only; deny vendor=deepseek; deny vendor=x*" in teams

    set_ = runner.invoke(main, ["keys", "policy", key_id, "--policy", '{"local_only": true}'])
    assert set_.exit_code == 0 and f"key {key_id}: local-only" in set_.output
    cleared = runner.invoke(main, ["teams", "policy", "acme", "--clear"])
    assert cleared.exit_code == 0 and "team acme: no policy" in cleared.output
    assert "deepseek" not in runner.invoke(main, ["teams", "list"]).output
    assert runner.invoke(main, ["teams", "policy", "acme"]).exit_code != 0  # nothing to set
    both = runner.invoke(main, ["keys", "policy", key_id, "--clear", "--redact"])
    assert both.exit_code != 0
    missing = runner.invoke(main, ["keys", "policy", "key_missing", "--redact"])
    assert missing.exit_code == 1 and "no key 'key_missing'" in missing.output


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("{not json", "--policy is not valid JSON"),
        ("[1]", "--policy must be a JSON object"),
        ('{"mode": "maybe"}', '--policy mode must be "allow" or "deny"'),
        ('{"rules": 5}', "--policy rules must be a list of tables"),
        ('{"colour": "red"}', "unknown keys in --policy: colour"),
    ],
)
def test_an_invalid_policy_is_a_one_line_error(
    runner: CliRunner, policy: str, message: str
) -> None:
    runner.invoke(main, ["teams", "create", "acme"])
    for args in (
        ["teams", "create", "other", "--policy", policy],
        ["keys", "create", "--team", "acme", "--name", "ci", "--policy", policy],
        ["teams", "policy", "acme", "--policy", policy],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 1, result.output
        (line,) = result.output.strip().splitlines()
        assert line.startswith("Error: ") and message in line
    assert "other" not in runner.invoke(main, ["teams", "list"]).output
