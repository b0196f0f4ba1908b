"""Every mistake a user can make on the command line ends in one line that says what to do,
and a non-zero exit; never a traceback. In-process (CliRunner) where that is the same as a
user's run, a real ``python -m ponder.cli`` where the mistake is in starting a server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from ponder.cli import main
from ponder.cli.group import PonderGroup

TINY = "smollm2-135m-instruct"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def db_config(tmp_path: Path) -> Path:
    """A configuration whose ledger lives in the test's directory."""
    return write(tmp_path / "db.toml", f'database_url = "sqlite:///{tmp_path / "db.sqlite3"}"\n')


# (name, command line from the test's directory's files, what the one line must contain,
# exit code). {db} is a configuration with its own ledger; {dir}: the test's directory.
CASES: list[tuple[str, list[str], str, int]] = [
    ("unknown model", ["--config", "{db}", "ask", "hi", "-m", "nope-model"], "ponder models", 1),
    ("unknown strategy", ["--config", "{db}", "ask", "hi", "-s", "nope"], "unknown strategy", 1),
    ("unknown effort", ["--config", "{db}", "ask", "hi", "--effort", "nope"], "effort level", 1),
    (
        "effort without auto",
        ["--config", "{db}", "ask", "hi", "-s", "cot", "--effort", "low"],
        "--effort is for the auto strategy",
        1,
    ),
    (
        "bad strategy parameter",
        ["--config", "{db}", "ask", "hi", "-s", "self-consistency", "-p", "n=0"],
        "greater than or equal to 1",
        1,
    ),
    ("parameter not key=value", ["ask", "hi", "-p", "n"], "expected key=value", 2),
    ("unknown key id", ["--config", "{db}", "keys", "revoke", "nope"], "ponder keys list", 1),
    ("missing config file", ["--config", "{dir}/missing.toml", "models"], "does not exist", 1),
    ("config after the command", ["models", "--config", "{dir}/missing.toml"], "does not exist", 1),
    ("config is a directory", ["--config", "{dir}", "models"], "not a readable file", 1),
    ("unknown config key", ["--config", "{dir}/unknown.toml", "models"], "unknown keys", 1),
    ("config not TOML", ["--config", "{dir}/broken.toml", "models"], "cannot read", 1),
    ("provider without base_url", ["--config", "{dir}/nobase.toml", "models"], "base_url", 1),
    ("unknown command", ["nosuchcommand"], "No such command", 2),
    ("missing argument", ["ask"], "Missing argument", 2),
    ("bad max-tokens", ["ask", "hi", "--max-tokens", "0"], "--max-tokens", 2),
    ("zero workers", ["serve", "--workers", "0"], "--workers", 2),
]


def files(tmp_path: Path) -> None:
    write(tmp_path / "unknown.toml", "nonsense_key = 1\n")
    write(tmp_path / "broken.toml", "port = [\n")
    write(tmp_path / "nobase.toml", '[providers.up]\nmodels = ["m"]\n')


def assert_one_line(output: str, expected: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: "), output
    assert expected in lines[0], output
    assert "Traceback" not in output


@pytest.mark.parametrize(("name", "argv", "expected", "code"), CASES, ids=[c[0] for c in CASES])
def test_each_mistake_is_one_line(
    tmp_path: Path, db_config: Path, name: str, argv: list[str], expected: str, code: int
) -> None:
    files(tmp_path)
    args = [a.format(db=db_config, dir=tmp_path) for a in argv]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code, result.output
    assert_one_line(result.output, expected)


def test_global_options_work_after_the_command(tmp_path: Path) -> None:
    """``ponder serve --config x.toml`` parses as ``ponder --config x.toml serve``."""
    group = main
    assert isinstance(group, PonderGroup)
    assert group.hoist_global_options(["serve", "--config", "x.toml", "--port", "1", "-v"]) == [
        "--config",
        "x.toml",
        "-v",
        "serve",
        "--port",
        "1",
    ]
    assert group.hoist_global_options(["ask", "--log-format=json", "--", "-v"]) == [
        "--log-format=json",
        "ask",
        "--",
        "-v",
    ]
    config = write(tmp_path / "c.toml", 'default_model = "smollm2-135m-instruct"\n')
    result = CliRunner().invoke(main, ["models", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "smollm2-135m-instruct" in result.output and "(default)" in result.output


def test_an_unset_api_key_variable_is_one_warning(tmp_path: Path) -> None:
    config = write(
        tmp_path / "key.toml",
        '[providers.up]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["m"]\n'
        'api_key_env = "PONDER_TEST_SURELY_UNSET"\n',
    )
    assert "PONDER_TEST_SURELY_UNSET" not in os.environ
    result = CliRunner().invoke(main, ["--config", str(config), "deployments"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and "WARNING" in warnings[0], result.stderr
    assert "PONDER_TEST_SURELY_UNSET, which is not set" in warnings[0]


def ponder(*args: str, code: str = "") -> subprocess.CompletedProcess[str]:
    """``ponder ARGS`` in a fresh process; ``code`` runs first (to hide a package)."""
    run = f"import sys\n{code}\nfrom ponder.cli import main\nmain()"
    return subprocess.run(
        [sys.executable, "-c", run, *args], capture_output=True, text=True, timeout=120
    )


def taken_port() -> tuple[socket.socket, int]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder, holder.getsockname()[1]


SERVE_CASES: list[tuple[str, Callable[[Path, int], list[str]], str, str]] = [
    (
        "missing GGUF file",
        lambda d, port: ["serve", "--port", str(port), "-m", str(d / "missing.gguf")],
        "does not exist",
        "",
    ),
    (
        "unknown model",
        lambda d, port: ["serve", "--port", str(port), "-m", "nope-model"],
        "ponder models",
        "",
    ),
    (
        "provider without base_url, --config after serve",
        lambda d, port: ["serve", "--config", str(d / "nobase.toml")],
        "[providers.up] needs base_url",
        "",
    ),
    (
        "llama.cpp not installed",
        lambda d, port: ["serve", "--port", str(port), "-m", TINY],
        'pip install "ponder[local]"',
        "sys.modules['llama_cpp'] = None",
    ),
    (
        "several workers on an in-memory ledger",
        lambda d, port: ["--config", str(d / "memory.toml"), "serve", "--workers", "2"],
        "--workers 2 needs a database the workers share",
        "",
    ),
]


@pytest.mark.parametrize(
    ("name", "argv", "expected", "code"), SERVE_CASES, ids=[c[0] for c in SERVE_CASES]
)
def test_each_serve_mistake_is_one_line(
    tmp_path: Path,
    name: str,
    argv: Callable[[Path, int], list[str]],
    expected: str,
    code: str,
) -> None:
    files(tmp_path)
    write(tmp_path / "memory.toml", 'database_url = "sqlite:///:memory:"\n')
    holder, port = taken_port()
    holder.close()  # a free port: these fail before binding it
    proc = ponder(*argv(tmp_path, port), code=code)
    assert proc.returncode == 1, proc.stderr
    assert_one_line(proc.stderr, expected)


def test_a_port_in_use_is_found_before_any_model_loads(tmp_path: Path) -> None:
    holder, port = taken_port()
    try:
        started = time.monotonic()
        # The 1.5B default would take seconds to load (minutes to assemble the first time).
        proc = ponder("serve", "--port", str(port))
        seconds = time.monotonic() - started
    finally:
        holder.close()
    assert proc.returncode == 1, proc.stderr
    assert_one_line(proc.stderr, f"port {port} on 127.0.0.1 is already in use")
    assert "Application startup" not in proc.stderr and seconds < 30
