"""The command line, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from ponder.cli import main


def test_models_lists_and_verifies() -> None:
    result = CliRunner().invoke(main, ["models", "--verify"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "qwen2.5-coder-1.5b-instruct" in result.output
    assert "(default)" in result.output
    assert result.output.count("verified") == 3


def test_ask_prints_answer_and_tokens(tmp_path: Path) -> None:
    config = tmp_path / "ponder.toml"
    config.write_text("[engine]\nn_ctx = 2048\nn_seq_max = 2\n")
    # A subprocess, as a user would run it: the console script's module entry point.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ponder.cli",
            "--config",
            str(config),
            "ask",
            "What is 2+3?",
            "--model",
            "smollm2-135m-instruct",
            "--max-tokens",
            "40",
            "--hide-reasoning",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Answer:" in proc.stdout
    assert "Reasoning:" not in proc.stdout
    assert "tokens:" in proc.stderr and "completion" in proc.stderr


def test_ask_shows_reasoning_by_default(tmp_path: Path) -> None:
    config = tmp_path / "ponder.toml"
    config.write_text("[engine]\nn_ctx = 2048\nn_seq_max = 2\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ponder.cli",
            "--config",
            str(config),
            "ask",
            "What is 2+3?",
            "--model",
            "smollm2-135m-instruct",
            "--max-tokens",
            "40",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Reasoning:" in proc.stdout


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("nonsense_key = 1\n")
    result = CliRunner().invoke(main, ["--config", str(config), "models"])
    assert result.exit_code != 0
    assert "unknown keys" in result.output
