"""ponder config show: the effective configuration with each value's origin, and every
secret masked (API keys, the admin key, a database URL's password)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ponder.config_cli import config_group


def run(args: list[str], config: Path | None = None) -> str:
    @click.group()
    @click.pass_context
    def root(ctx: click.Context) -> None:
        ctx.meta["config_path"] = str(config) if config else None

    root.add_command(config_group)
    result = CliRunner().invoke(root, ["config", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_values_and_origins_with_secrets_masked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "ponder.toml"
    path.write_text(
        'max_n = 8\n[providers.openai]\nbase_url = "https://api.openai.com/v1"\n'
        'api_key_env = "PONDER_TEST_OPENAI_KEY"\n'
    )
    monkeypatch.setenv("PONDER_TEST_OPENAI_KEY", "sk-live-abcdef123456")
    monkeypatch.setenv("PONDER_DATABASE_URL", "postgresql://ponder:hunter2@db:5432/ponder")
    monkeypatch.setenv("PONDER_ADMIN_KEY", "admin-secret-value")
    monkeypatch.setenv("PONDER_ENGINE__N_CTX", "8192")
    out = run(["show", "--json"], path)
    for secret in ("sk-live-abcdef123456", "hunter2", "admin-secret-value"):
        assert secret not in out
    shown = json.loads(out)
    assert shown["max_n"] == {"value": 8, "origin": f"file {path}"}
    assert shown["engine.n_ctx"] == {"value": 8192, "origin": "env PONDER_ENGINE__N_CTX"}
    assert shown["engine.n_batch"]["origin"] == "default"
    assert shown["providers.openai.api_key"] == {
        "value": "****",
        "origin": "env PONDER_TEST_OPENAI_KEY",
    }
    assert shown["database_url"]["value"] == "postgresql://ponder:***@db:5432/ponder"
    assert shown["admin_key"] == {"value": "****", "origin": "env PONDER_ADMIN_KEY"}


def test_text_output_one_line_per_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PONDER_ADMIN_KEY", raising=False)
    monkeypatch.setenv("PONDER_PORT", "9001")
    lines = run(["show"]).splitlines()
    assert any(
        line.startswith("port") and "9001" in line and "# env PONDER_PORT" in line for line in lines
    )
    assert any(line.startswith("admin_key") and line.endswith("# unset") for line in lines)


def test_mcp_headers_environments_and_url_credentials_are_masked() -> None:
    from ponder.config_cli import masked_secrets

    shown = masked_secrets(
        {
            "mcp_servers": [
                {
                    "name": "gh",
                    "url": "https://user:pw@host:8443/mcp?token=abc",
                    "headers": {"Authorization": "Bearer ghp_secret", "X-Key": "env:GH_TOKEN"},
                },
                {"name": "local", "command": "srv", "env": {"API_TOKEN": "literal-secret"}},
            ]
        }
    )
    text = repr(shown)
    for secret in ("pw", "abc", "ghp_secret", "literal-secret", "user:"):
        assert secret not in text
    assert "env:GH_TOKEN" in text  # a variable's name is no secret, and says where it comes from
    assert "host:8443/mcp" in text
