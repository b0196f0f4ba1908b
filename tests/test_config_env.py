"""Configuration from PONDER_* environment variables: nested variables map onto the TOML's
keys, the one parser checks both, the environment wins over the file, and a bad value is a
ConfigError that names the variable."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ponder.config import config_from_mapping, load_config, load_layers
from ponder.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for var in list(os.environ):
        if var.upper().startswith("PONDER_"):
            monkeypatch.delenv(var)


def test_nested_variables_set_tables_and_are_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PONDER_PORT", "9000")
    monkeypatch.setenv("PONDER_ENGINE__N_CTX", "8192")
    monkeypatch.setenv("PONDER_ENGINE__FLASH_ATTN", "false")
    monkeypatch.setenv("PONDER_DENY_MODELS", '["gpt-3*"]')
    monkeypatch.setenv("PONDER_PROVIDERS__HOME__BASE_URL", "http://10.0.0.5:8000/v1")
    monkeypatch.setenv("PONDER_PROVIDERS__HOME__MODELS", '["qwen"]')
    monkeypatch.setenv("PONDER_ROUTING__NUM_RETRIES", "4")
    monkeypatch.setenv("PONDER_POLICY__LOCAL_ONLY", "true")
    config = load_config(None)
    assert config.port == 9000
    assert config.engine.n_ctx == 8192 and config.engine.flash_attn is False
    assert config.deny_models == ("gpt-3*",)
    (home,) = config.providers
    assert (home.name, home.base_url, home.models) == ("home", "http://10.0.0.5:8000/v1", ("qwen",))
    assert config.routing.num_retries == 4 and config.policy.local_only


def test_environment_wins_over_file_which_wins_over_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "ponder.toml"
    path.write_text("port = 7000\nmax_n = 8\n[engine]\nn_ctx = 4096\nn_batch = 256\n")
    monkeypatch.setenv("PONDER_ENGINE__N_CTX", "2048")
    loaded = load_layers(path)
    engine = loaded.config.engine
    assert (loaded.config.port, loaded.config.max_n) == (7000, 8)  # file
    assert (engine.n_ctx, engine.n_batch, engine.n_seq_max) == (2048, 256, 16)  # env, file, default
    assert loaded.origin("engine.n_ctx").describe() == "env PONDER_ENGINE__N_CTX"
    assert loaded.origin("engine.n_batch").describe() == f"file {path}"
    assert loaded.origin("engine.n_seq_max").describe() == "default"
    assert load_config(path, environment=False).engine.n_ctx == 4096


def test_a_whole_table_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PONDER_SANDBOX", '{"mode": "process", "seccomp": false}')
    loaded = load_layers(None)
    assert loaded.config.sandbox.mode == "process" and loaded.config.sandbox.seccomp is False
    assert loaded.origin("sandbox.mode").name == "PONDER_SANDBOX"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("PONDER_ENGINE__N_CTX", "big"),
        ("PONDER_ENGINE__N_CTX", "0"),
        ("PONDER_PORT", "70000"),
        ("PONDER_SANDBOX__SECCOMP", "maybe"),
        ("PONDER_DENY_MODELS", "gpt*"),
        ("PONDER_ENGINE__N_CTX", "{oops"),
        ("PONDER_TELEMETRY__EXPORTER", "zipkin"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=var):
        load_config(None)


def test_existing_variables_keep_working_and_are_not_keys(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PONDER_DATABASE_URL", "sqlite:////tmp/x.db")
    monkeypatch.setenv("PONDER_MAX_N", "12")
    monkeypatch.setenv("PONDER_ADMIN_KEY", "secret")
    monkeypatch.setenv("PONDER_LOG_FORMAT", "json")
    with caplog.at_level(logging.WARNING, logger="ponder.config"):
        config = load_config(None)
    assert config.database_url == "sqlite:////tmp/x.db" and config.max_n == 12
    assert "PONDER_ADMIN_KEY" not in caplog.text and "PONDER_LOG_FORMAT" not in caplog.text


def test_an_unknown_variable_is_warned_about_not_fatal(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PONDER_ENGNE__N_CTX", "8")
    monkeypatch.setenv("PONDER_EMPTY_ONE", "")  # empty: unset
    with caplog.at_level(logging.WARNING, logger="ponder.config"):
        assert load_config(None).engine.n_ctx == 32768
    assert "PONDER_ENGNE__N_CTX" in caplog.text and "PONDER_EMPTY_ONE" not in caplog.text


def test_the_file_is_type_checked_too() -> None:
    with pytest.raises(ConfigError, match="port"):
        config_from_mapping({"port": "web"})
    with pytest.raises(ConfigError, match=r"\[routing\] backoff"):
        config_from_mapping({"routing": {"backoff": "soon"}})
