"""``ponder ask`` as a user runs it, on the tiny model: on a terminal it shows its work as it
goes; piped, stdout is the answer and stderr the progress and one summary line; ``--json``
is the whole result."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

TINY = "smollm2-135m-instruct"


@pytest.fixture
def argv(tmp_path: Path) -> list[str]:
    config = tmp_path / "ponder.toml"
    config.write_text(
        f'database_url = "sqlite:///{tmp_path / "db.sqlite3"}"\n'
        "[engine]\nn_ctx = 2048\nn_seq_max = 4\n"
    )
    return [sys.executable, "-m", "ponder.cli", "--config", str(config), "ask", "What is 2+3?"]


def test_on_a_terminal_the_work_shows_while_it_happens(argv: list[str]) -> None:
    """Read the terminal as the process writes: output arrives in many reads, the first well
    before the end, and it ends with the summary line."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [*argv, "-m", TINY, "-s", "self-consistency", "-p", "n=3", "--max-tokens", "48"],
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    reads: list[tuple[float, bytes]] = []
    try:
        while True:
            ready, _, _ = select.select([controller], [], [], 1.0)
            if ready:
                try:
                    data = os.read(controller, 65536)
                except OSError:  # the process closed the terminal
                    break
                if not data:
                    break
                reads.append((time.monotonic(), data))
            elif proc.poll() is not None:
                break
        assert proc.wait(timeout=300) == 0, b"".join(d for _, d in reads).decode(errors="replace")
    finally:
        os.close(controller)
    output = b"".join(d for _, d in reads).decode(errors="replace")
    assert len(reads) > 1, output
    first_summary = next(t for t, d in reads if b"tokens:" in d)
    # The live line (and the model's tokens) showed while it worked, well before the end.
    assert first_summary - reads[0][0] > 0.5, "nothing showed before the summary"
    assert "writing 3 paths" in output
    assert "path 1:" in output  # the strategy's progress lines
    assert "Answer:" in output
    assert "tokens:" in output and "self-consistency on smollm2" in output
    assert "agreed on" in output  # the decision, in words


def test_piped_the_answer_is_on_stdout_and_the_summary_on_stderr(argv: list[str]) -> None:
    proc = subprocess.run(
        [*argv, "-m", TINY, "--hide-reasoning", "-s", "cot", "--max-tokens", "32"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "\x1b[" not in proc.stdout + proc.stderr  # plain text, no terminal codes
    assert proc.stdout.strip() and "tokens:" not in proc.stdout
    (summary,) = [line for line in proc.stderr.splitlines() if line.strip()]
    assert summary.startswith("tokens: ") and "in 1 call ·" in summary
    assert "cot on smollm2-135m-instruct" in summary and "one chain of thought" in summary


def test_json_is_the_whole_result(argv: list[str]) -> None:
    proc = subprocess.run(
        [*argv, "-m", TINY, "--json", "-s", "self-consistency", "-p", "n=2", "--max-tokens", "32"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["strategy"] == "self-consistency" and data["model"] == TINY
    assert data["trace_id"].startswith("trace-")
    usage = data["usage"]
    assert usage["calls"] == 1
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 0 < usage["completion_tokens"] <= 2 * 32
    assert data["decision"]["details"]["paths"] == 2
    assert "of 2 paths agreed on" in data["decision"]["summary"]
    assert proc.stderr.strip() == ""  # nothing but the JSON, anywhere


def test_an_underspecified_question_is_asked_back_unless_told_not_to(tmp_path: Path) -> None:
    config = tmp_path / "ponder.toml"
    config.write_text(
        f'database_url = "sqlite:///{tmp_path / "db.sqlite3"}"\n'
        "[engine]\nn_ctx = 2048\nn_seq_max = 4\n"
    )
    base = [sys.executable, "-m", "ponder.cli", "--config", str(config), "ask"]
    common = ["-m", TINY, "--hide-reasoning", "--max-tokens", "32", "--effort", "minimal"]
    asked = subprocess.run(
        [*base, "Convert 100 degrees.", *common], capture_output=True, text=True, timeout=300
    )
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.strip()  # the question, whatever the tiny model wrote
    summary = asked.stderr.strip().splitlines()[-1]
    assert "asked back: the request leaves out the unit to convert to" in summary
    assert "in 1 call" in summary
    guessed = subprocess.run(
        [*base, "Convert 100 degrees.", *common, "--no-clarify"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert guessed.returncode == 0, guessed.stderr
    assert "asked back" not in guessed.stderr
    wrong = subprocess.run(
        [*base, "Convert 100 degrees.", "-s", "cot", "--no-clarify"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert wrong.returncode != 0 and "--clarify is for the auto strategy" in wrong.stderr
