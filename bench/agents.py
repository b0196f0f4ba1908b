"""Does the agent loop pay? Each task of bench/agent_tasks.jsonl three ways, in one run:

* ``tools``: the model with the task's tools through ``/v1/responses`` (the python tool,
  the calculator, and the ``lookup`` tool of an MCP server this script starts), Ponder
  running them between model turns;
* ``plain``: the same model, same prompt, no tools;
* ``auto``: ``ponder/auto/<model>``, no tools (Ponder's adaptive strategy instead).

It reports per way the share of tasks answered right and the mean tokens per task (input
plus output, summed over every model call the request made), as a table, and with
``--json`` as a file. An answer is right when the reply's last ``Answer:`` line (else the
whole reply) holds the task's answer: a number within 1e-6 relative (its last number, so
``$1,382.10`` is 1382.1), or the string exactly, once case, whitespace and markdown
around it are ignored.

A task's ``files`` are given in the prompt, for all three ways alike (Ponder's python tool
has no files); every way's instructions ask for a last ``Answer:`` line, and the tools way's
also say to use the tools, so the ways differ only in what they may run. Ponder runs in this process
on the embedded model (``--model``, default qwen2.5-coder-1.5b-instruct), served on a
loopback port under uvicorn, with no default strategy (so ``plain`` is the bare model);
the MCP server (bench/agent_mcp_server.py) is configured as ``[mcp.servers.bench]`` over
stdio, its table the tasks' ``lookup_table``\\s merged.

    python bench/agents.py --limit 3 --model qwen2.5-coder-0.5b-instruct
    python bench/agents.py --json bench/results/agents.json      # all tasks: long on a CPU
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from ponder.config import DEFAULT_MODEL, PonderConfig
from ponder.config.mcp import McpServerConfig
from ponder.server.app import create_app

BENCH = Path(__file__).resolve().parent
TASKS = BENCH / "agent_tasks.jsonl"
MCP_SERVER = BENCH / "agent_mcp_server.py"
LABEL = "bench"  # the MCP server's name: its tool is offered as bench__lookup
ADMIN = "agents-bench-admin"
WAYS = ("tools", "plain", "auto")
# What the tools way adds to every way's instructions (what a client with tools would say).
TOOL_INSTRUCTIONS = (
    "You have tools. Call them for every lookup and every calculation instead of working "
    "it out in your head; a tool call is the call alone, with nothing written before it."
)
INSTRUCTION = (
    "Once you know the result, end your final reply with a last line of the form "
    "`Answer: <value>`: a number without units or thousands separators, or just the word "
    "or code that was asked for."
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One task done one way."""

    task: str
    way: str
    right: bool
    tokens: int  # input + output, every model call of the request
    output_tokens: int
    seconds: float
    tool_calls: int  # the tools Ponder ran for it
    said: str  # the reply's text (or the error)
    error: str | None = None


# -- the tasks -----------------------------------------------------------------------------
def load_tasks(path: Path, limit: int | None) -> list[dict[str, Any]]:
    """The tasks; with ``limit``, the first ``limit`` taken from each kind in turn (so a
    short run still covers every kind: ``--limit 3`` is one of each)."""
    tasks = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if limit is None:
        return tasks
    kinds: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        kinds.setdefault(task["kind"], []).append(task)
    turns = zip_longest(*kinds.values())
    return [t for turn in turns for t in turn if t is not None][:limit]


def prompt_of(task: dict[str, Any]) -> str:
    parts = [task["prompt"]]
    for name, content in (task.get("files") or {}).items():
        # Ponder's python tool has no files: the content is the prompt's, for every way.
        parts.append(f"The file {name} (given here, not on disk):\n```\n{content.rstrip()}\n```")
    return "\n\n".join(parts)


def tools_of(task: dict[str, Any]) -> list[dict[str, Any]]:
    """The task's tools as a Responses request names them."""
    out: list[dict[str, Any]] = []
    for tool in task["tools"]:
        if tool.startswith("mcp:"):
            out.append(
                {
                    "type": "mcp",
                    "server_label": LABEL,
                    "allowed_tools": [tool.removeprefix("mcp:")],
                    "require_approval": "never",
                }
            )
        else:
            out.append({"type": tool})
    return out


def merged_table(tasks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for task in tasks:
        for key, value in (task.get("lookup_table") or {}).items():
            if table.get(key, value) != value:
                raise SystemExit(f"{task['id']}: lookup key {key!r} differs from another task's")
            table[key] = value
    return table


# -- judging -------------------------------------------------------------------------------
ANSWER_LINE = re.compile(r"answer\s*[:=]\s*(.+)", re.IGNORECASE)
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+")
WRAPPING = " \t*`'\".,;:!()[]{}"


def final_answer(text: str) -> str:
    """What the reply gives as its answer: its last ``Answer:`` line, else all of it."""
    found = ANSWER_LINE.findall(text)
    return found[-1].strip() if found else text


def right(text: str, answer: object) -> bool:
    said = final_answer(text)
    if isinstance(answer, int | float) and not isinstance(answer, bool):
        numbers = NUMBER.findall(said) or NUMBER.findall(text)
        if not numbers:
            return False
        try:
            value = float(numbers[-1].replace(",", ""))
        except ValueError:
            return False
        return math.isclose(value, float(answer), rel_tol=1e-6, abs_tol=1e-9)
    return _normal(said) == _normal(str(answer))


def _normal(text: str) -> str:
    return " ".join(text.strip(WRAPPING).split()).casefold()


# -- running -------------------------------------------------------------------------------
@contextmanager
def serving(config: PonderConfig) -> Iterator[str]:
    """Ponder on a loopback port, in a thread of this process; yields its base URL."""
    app = create_app(config, admin_key=ADMIN)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise SystemExit("Ponder did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)


def body_of(task: dict[str, Any], way: str, model: str, max_output: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": f"ponder/auto/{model}" if way == "auto" else model,
        "input": prompt_of(task),
        # The answer's form is asked in the instructions (the system message) for every
        # way: in the prompt, it made the small models answer at once, never calling a tool.
        "instructions": INSTRUCTION,
        "max_output_tokens": max_output,
        "temperature": 0,
        "store": False,
    }
    if way == "tools":
        body["tools"] = tools_of(task)
        body["instructions"] = f"{TOOL_INSTRUCTIONS} {INSTRUCTION}"
    return body


def run_one(
    client: httpx.Client, task: dict[str, Any], way: str, model: str, max_output: int
) -> Outcome:
    started = time.perf_counter()
    reply = client.post("/v1/responses", json=body_of(task, way, model, max_output))
    seconds = time.perf_counter() - started
    if not reply.is_success:
        error = f"{reply.status_code}: {reply.text[:300]}"
        return Outcome(task["id"], way, False, 0, 0, seconds, 0, "", error)
    data = reply.json()
    text = "".join(
        part.get("text", "")
        for item in data["output"]
        if item["type"] == "message"
        for part in item["content"]
    )
    usage = data.get("usage") or {}
    ran = {"code_interpreter_call", "mcp_call", "function_call_output"}
    return Outcome(
        task["id"],
        way,
        right(text, task["answer"]),
        int(usage.get("total_tokens", 0)),
        int(usage.get("output_tokens", 0)),
        seconds,
        sum(item["type"] in ran for item in data["output"]),
        text,
    )


def summary(outcomes: Sequence[Outcome]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for way in WAYS:
        mine = [o for o in outcomes if o.way == way]
        if not mine:
            continue
        out[way] = {
            "tasks": len(mine),
            "success": sum(o.right for o in mine) / len(mine),
            "mean_tokens": statistics.fmean(o.tokens for o in mine),
            "mean_output_tokens": statistics.fmean(o.output_tokens for o in mine),
            "mean_seconds": statistics.fmean(o.seconds for o in mine),
            "mean_tool_calls": statistics.fmean(o.tool_calls for o in mine),
            "errors": sum(o.error is not None for o in mine),
        }
    return out


def table(rows: dict[str, dict[str, float]]) -> str:
    lines = [
        "| way | tasks | success | mean tokens | mean output tokens | tool runs | mean s | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for way, r in rows.items():
        lines.append(
            f"| {way} | {r['tasks']:.0f} | {r['success']:.0%} | {r['mean_tokens']:.0f} | "
            f"{r['mean_output_tokens']:.0f} | {r['mean_tool_calls']:.1f} | "
            f"{r['mean_seconds']:.1f} | {r['errors']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=Path, default=TASKS)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument(
        "--limit", type=int, default=None, help="N tasks only, taken from each kind in turn"
    )
    parser.add_argument("--max-output-tokens", type=int, default=512, help="per model turn")
    parser.add_argument("--ways", default=",".join(WAYS), help="a subset of tools,plain,auto")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    ways = [w for w in args.ways.split(",") if w]
    if not set(ways) <= set(WAYS):
        parser.error(f"--ways: choose from {', '.join(WAYS)}")
    tasks = load_tasks(args.tasks, args.limit)
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="ponder-agents-") as scratch:
        table_file = Path(scratch) / "lookup.json"
        table_file.write_text(json.dumps(merged_table(tasks)))
        config = PonderConfig(
            default_model=args.model,
            default_strategy=None,  # "plain" is the bare model
            database_url=f"sqlite:///{Path(scratch) / 'ponder.sqlite3'}",
            mcp_servers=(
                McpServerConfig(
                    name=LABEL,
                    command=sys.executable,
                    args=(str(MCP_SERVER), str(table_file)),
                    timeout=30,
                ),
            ),
        )
        with (
            serving(config) as url,
            httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=3600
            ) as client,
        ):
            for task in tasks:
                for way in ways:
                    outcome = run_one(client, task, way, args.model, args.max_output_tokens)
                    outcomes.append(outcome)
                    mark = "ok " if outcome.right else "no "
                    said = outcome.error or final_answer(outcome.said)[-60:]
                    print(
                        f"{mark}{task['id']:<10} {way:<5} {outcome.tokens:>6} tok "
                        f"{outcome.tool_calls} runs "
                        f"{outcome.seconds:6.1f}s  {said!r}",
                        flush=True,
                    )
    rows = summary(outcomes)
    print(f"\n{len(tasks)} tasks, model {args.model}\n")
    print(table(rows))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "model": args.model,
                    "tasks": len(tasks),
                    "max_output_tokens": args.max_output_tokens,
                    "summary": rows,
                    "outcomes": [asdict(o) for o in outcomes],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
