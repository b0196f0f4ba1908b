"""MCP servers as tools (ponder.tools.mcp), against a real server built with the SDK
(tests/mcp_server.py) over stdio and over streamable HTTP; the ``[mcp.servers.NAME]``
configuration and its ``PONDER_MCP__...`` variables; and the ``allow_tools`` policy."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ponder.config import PolicySettings, load_config, policy_as_mapping, policy_from_mapping
from ponder.config.mcp import McpServerConfig, parse_mcp
from ponder.errors import ConfigError
from ponder.tools.base import as_function_tool
from ponder.tools.policy import allowed_tools, tool_allowed
from tests.processes import alive

pytestmark = pytest.mark.timeout(90)

SERVER = Path(__file__).with_name("mcp_server.py")
OPENAI_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ALL_TOOLS = {"add", "lookup", "stats", "picture", "slow", "boom", "die", "whoami", "pid"}


def stdio(timeout: float = 5.0, **extra: Any) -> McpServerConfig:
    return McpServerConfig(
        name="local",
        command=sys.executable,
        args=(str(SERVER),),
        env={"TEST_MCP_SECRET": "env:PONDER_TEST_MCP_SECRET"},
        timeout=timeout,
        **extra,
    )


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    pytest.importorskip("mcp")
    monkeypatch.setenv("PONDER_TEST_MCP_SECRET", "s3cret")
    return "s3cret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def http_server(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """The test server over streamable HTTP on ``port``, in a process of its own."""
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "--http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "the MCP test server exited"
            assert time.monotonic() < deadline, "the MCP test server did not start"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield process
    finally:
        process.kill()
        process.wait(10)


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    pytest.importorskip("mcp")
    port = free_port()
    with http_server(port):
        yield f"http://127.0.0.1:{port}/mcp"


# --- over stdio -------------------------------------------------------------------------


async def test_stdio_tools_are_listed_under_the_servers_name(secret: str) -> None:
    from ponder.tools.mcp import McpServers

    async with McpServers([stdio()]) as servers:
        box = await servers.toolbox()
        names = {tool.name for tool in box.tools}
        assert names == {f"local__{name}" for name in ALL_TOOLS}
        assert all(OPENAI_NAME.match(name) for name in names)
        add = next(t for t in box.tools if t.name == "local__add")
        assert add.description == "Add two integers."
        assert set(add.parameters["properties"]) == {"a", "b"}
        assert as_function_tool(add)["function"]["name"] == "local__add"


async def test_stdio_calls_return_the_tools_text(secret: str) -> None:
    from ponder.tools.mcp import McpServers

    async with McpServers([stdio()]) as servers:
        tools = {tool.name: tool for tool in (await servers.toolbox()).tools}
        added = await tools["local__add"].call({"a": 2, "b": 3})
        assert (added.output, added.is_error) == ("5", False)
        assert added.details["server"] == "local"
        assert (await tools["local__lookup"].call({"key": "beta"})).output == "second"
        stats = await tools["local__stats"].call({"values": [1, 2, 6]})
        assert json.loads(stats.output) == {"count": 3, "mean": 3}
        # The server's environment got the variable's value, read at connect time.
        assert (await tools["local__whoami"].call({})).output == secret


async def test_tool_errors_and_unreadable_results_are_errors_the_model_sees(
    secret: str,
) -> None:
    from ponder.tools.mcp import McpServers

    async with McpServers([stdio()]) as servers:
        tools = {tool.name: tool for tool in (await servers.toolbox()).tools}
        boom = await tools["local__boom"].call({})
        assert boom.is_error and "'boom'" in boom.output and "reported an error" in boom.output
        picture = await tools["local__picture"].call({})
        assert picture.is_error and "image" in picture.output
        bad = await tools["local__add"].call({"a": "not a number"})
        assert bad.is_error
        # None of these cost the connection.
        assert (await tools["local__add"].call({"a": 1, "b": 1})).output == "2"


async def test_a_timeout_is_an_error_and_the_next_call_works(secret: str) -> None:
    from ponder.tools.mcp import CALL_GRACE, McpServers

    async with McpServers([stdio(timeout=1.0)]) as servers:
        tools = {tool.name: tool for tool in (await servers.toolbox()).tools}
        started = time.monotonic()
        slow = await tools["local__slow"].call({})
        assert time.monotonic() - started < 1.0 + CALL_GRACE
        assert slow.is_error and "timed out after 1 seconds" in slow.output
        assert (await tools["local__add"].call({"a": 4, "b": 4})).output == "8"


async def test_a_crashed_server_is_an_error_then_restarted(secret: str) -> None:
    from ponder.tools.mcp import McpServers

    async with McpServers([stdio()]) as servers:
        tools = {tool.name: tool for tool in (await servers.toolbox()).tools}
        first = int((await tools["local__pid"].call({})).output)
        died = await tools["local__die"].call({})
        assert died.is_error and "closed its connection" in died.output
        assert not servers.servers[0].connected
        # The next call starts the server again.
        assert (await tools["local__add"].call({"a": 1, "b": 2})).output == "3"
        second = int((await tools["local__pid"].call({})).output)
        assert second != first and not alive(first)
    assert not alive(second)  # closing the manager stopped the server


async def test_calls_share_one_connection_concurrently(secret: str) -> None:
    from ponder.tools.mcp import McpServers

    async with McpServers([stdio()]) as servers:
        tools = {tool.name: tool for tool in (await servers.toolbox()).tools}
        results = await asyncio.gather(
            *(tools["local__add"].call({"a": i, "b": i}) for i in range(20)),
            tools["local__pid"].call({}),
            tools["local__pid"].call({}),
        )
        assert [r.output for r in results[:20]] == [str(2 * i) for i in range(20)]
        assert results[20].output == results[21].output  # one server process


async def test_the_servers_allow_list_limits_its_tools(secret: str) -> None:
    from ponder.tools.mcp import McpServers

    async with McpServers([stdio(tools=("add", "look*"))]) as servers:
        names = {tool.name for tool in (await servers.toolbox()).tools}
        assert names == {"local__add", "local__lookup"}


async def test_a_server_that_cannot_start_offers_nothing_and_fails_calls_fast() -> None:
    pytest.importorskip("mcp")
    from ponder.tools.mcp import McpServer, McpServers

    missing = McpServerConfig(name="gone", command="/nonexistent/mcp-server", timeout=1.0)
    async with McpServers([missing], retry_after=60) as servers:
        assert (await servers.toolbox()).tools == ()
        server: McpServer = servers.servers[0]
        first = await server.call("add", {"a": 1})
        assert first.is_error and "unavailable" in first.output
        started = time.monotonic()
        again = await server.call("add", {"a": 1})
        assert again.is_error and time.monotonic() - started < 0.5  # not retried yet


# --- over streamable HTTP ---------------------------------------------------------------


async def test_http_tools_headers_and_timeouts(
    http_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ponder.tools.mcp import McpServers

    monkeypatch.setenv("PONDER_TEST_MCP_TOKEN", "t0ken")
    config = parse_mcp(
        {
            "servers": {
                "remote": {
                    "url": http_url,
                    "headers_env": {"X-Test-Token": "PONDER_TEST_MCP_TOKEN"},
                    "timeout": 1,
                }
            }
        }
    )
    async with McpServers(config) as servers:
        tools = {tool.name: tool for tool in (await servers.toolbox()).tools}
        assert set(tools) == {f"remote__{name}" for name in ALL_TOOLS}
        assert (await tools["remote__add"].call({"a": 20, "b": 22})).output == "42"
        assert (await tools["remote__whoami"].call({})).output == "t0ken"
        slow = await tools["remote__slow"].call({})
        assert slow.is_error and "timed out" in slow.output
        assert (await tools["remote__lookup"].call({"key": "alpha"})).output == "first"


async def test_an_http_server_that_went_away_is_an_error_until_it_is_back() -> None:
    pytest.importorskip("mcp")
    from ponder.tools.mcp import CALL_GRACE, McpServers

    port = free_port()
    config = McpServerConfig(name="web", url=f"http://127.0.0.1:{port}/mcp", timeout=2)
    async with McpServers([config], retry_after=0) as servers:
        with http_server(port):
            await servers.start()
            (add,) = [t for t in (await servers.toolbox()).tools if t.name == "web__add"]
            assert (await add.call({"a": 1, "b": 1})).output == "2"
        started = time.monotonic()
        gone = await add.call({"a": 1, "b": 1})
        assert gone.is_error and time.monotonic() - started < 2 + CALL_GRACE
        with http_server(port):
            assert (await add.call({"a": 2, "b": 2})).output == "4"


async def test_an_http_server_that_is_down_is_an_error() -> None:
    pytest.importorskip("mcp")
    from ponder.tools.mcp import McpServer

    port = free_port()  # nothing listens on it
    server = McpServer(McpServerConfig(name="down", url=f"http://127.0.0.1:{port}/mcp"))
    try:
        result = await server.call("add", {})
        assert result.is_error and "unavailable" in result.output
    finally:
        await server.aclose()


# --- which tools a request is offered ---------------------------------------------------


class Named:
    def __init__(self, name: str) -> None:
        self.name, self.description, self.parameters = name, "", {"type": "object"}

    async def call(self, arguments: Any) -> Any:
        raise NotImplementedError


def test_every_policy_with_allow_tools_must_allow_a_tool() -> None:
    tools = [Named(n) for n in ("python", "gh__search", "gh__delete_repo", "files__read")]
    team = PolicySettings(allow_tools=("gh__*", "files__*"))
    key = PolicySettings(allow_tools=("*search", "FILES__READ"))
    assert [t.name for t in allowed_tools(tools, [team])] == [
        "gh__search",
        "gh__delete_repo",
        "files__read",
    ]
    assert [t.name for t in allowed_tools(tools, [team, key])] == ["gh__search", "files__read"]
    assert [t.name for t in allowed_tools(tools, [PolicySettings()])] == [t.name for t in tools]
    assert allowed_tools(tools, [PolicySettings(allow_tools=())]) == []
    assert tool_allowed("anything", [])


async def test_the_toolbox_leaves_out_what_the_policy_does_not_allow(secret: str) -> None:
    from ponder.tools.mcp import McpServers

    async with McpServers([stdio()]) as servers:
        policies = [PolicySettings(allow_tools=("local__add", "local__l*"))]
        names = {tool.name for tool in (await servers.toolbox(policies)).tools}
        assert names == {"local__add", "local__lookup"}


def test_allow_tools_is_stored_with_a_policy_and_keeps_it_from_being_empty() -> None:
    policy = policy_from_mapping({"allow_tools": ["gh__*"]}, where="key")
    assert policy.allow_tools == ("gh__*",) and not policy.empty
    assert policy_as_mapping(policy) == {"allow_tools": ["gh__*"]}
    assert policy_from_mapping(policy_as_mapping(policy), where="key") == policy
    nothing = PolicySettings(allow_tools=())
    assert not nothing.empty and policy_as_mapping(nothing) == {"allow_tools": []}
    assert "allow_tools" not in policy_as_mapping(PolicySettings())
    for bad in ("gh__*", [1], [""]):
        with pytest.raises(ConfigError, match="allow_tools"):
            policy_from_mapping({"allow_tools": bad}, where="key")


# --- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("servers", "message"),
    [
        ({"x": {"command": "a", "url": "http://h/mcp"}}, "not both"),
        ({"x": {"timeout": 3}}, "needs command"),
        ({"a.b": {"command": "a"}}, "name"),
        ({"a__b": {"command": "a"}}, "name"),
        ({"x": {"url": "ftp://h/mcp"}}, "url must be"),
        ({"x": {"url": "http://h/mcp", "args": ["-v"]}}, "args"),
        ({"x": {"command": "a", "headers": {"A": "b"}}}, "headers"),
        ({"x": {"command": "a", "args": "-v"}}, "args must be a list"),
        ({"x": {"command": "a", "env": {"A": 5}}}, "env must be a table of strings"),
        ({"x": {"command": "a", "env": {"A": "env:not a name"}}}, "environment variable"),
        ({"x": {"command": "a", "timeout": 0}}, "timeout"),
        ({"x": {"command": "a", "timeout": "soon"}}, "timeout"),
        ({"x": {"command": "a", "tools": "add"}}, "tools"),
        ({"x": {"command": "a", "cmd": "b"}}, "unknown keys in \\[mcp.servers.x\\]: cmd"),
        (
            {"x": {"url": "http://h/mcp", "headers": {"A": "b"}, "headers_env": {"A": "V"}}},
            "set it once",
        ),
        ({"x": "python server.py"}, "must be a table"),
    ],
)
def test_configuration_mistakes_name_their_key(servers: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_mcp({"servers": servers})


def test_the_mcp_table_itself_is_checked() -> None:
    with pytest.raises(ConfigError, match="unknown keys in \\[mcp\\]: server"):
        parse_mcp({"server": {}})
    with pytest.raises(ConfigError, match="unknown keys in top level: mcp_servers"):
        load_config_from({"mcp_servers": []})


def load_config_from(data: dict[str, Any]) -> Any:
    from ponder.config import config_from_mapping

    return config_from_mapping(data)


def test_secrets_stay_variable_names_until_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PONDER_TEST_MCP_TOKEN", raising=False)
    (server,) = parse_mcp(
        {
            "servers": {
                "gh": {
                    "url": "https://h/mcp",
                    "headers": {"X-Team": "research", "Authorization": "env:PONDER_TEST_MCP_TOKEN"},
                }
            }
        }
    )
    assert server.headers["Authorization"] == "env:PONDER_TEST_MCP_TOKEN"
    with pytest.raises(ConfigError, match="PONDER_TEST_MCP_TOKEN is not set"):
        server.resolved_headers()
    monkeypatch.setenv("PONDER_TEST_MCP_TOKEN", "Bearer abc")
    assert server.resolved_headers() == {"X-Team": "research", "Authorization": "Bearer abc"}
    assert server.transport == "http"


def test_the_toml_table_and_ponder_mcp_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ponder.toml"
    path.write_text(
        "[mcp.servers.files]\n"
        'command = "uvx"\n'
        'args = ["mcp-server-filesystem", "/srv"]\n'
        'tools = ["read_*"]\n'
    )
    monkeypatch.setenv("PONDER_MCP__SERVERS__FILES__TIMEOUT", "7.5")
    monkeypatch.setenv("PONDER_MCP__SERVERS__GH__URL", "https://h/mcp")
    monkeypatch.setenv("PONDER_MCP__SERVERS__GH__HEADERS_ENV", '{"Authorization": "GH_TOKEN"}')
    servers = {s.name: s for s in load_config(path).mcp_servers}
    assert servers["files"] == McpServerConfig(
        name="files",
        command="uvx",
        args=("mcp-server-filesystem", "/srv"),
        timeout=7.5,
        tools=("read_*",),
    )
    assert servers["gh"].url == "https://h/mcp"
    assert servers["gh"].headers == {"Authorization": "env:GH_TOKEN"}
    assert load_config(None, environment=False).mcp_servers == ()
    monkeypatch.setenv("PONDER_MCP__SERVERS__FILES__TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="PONDER_MCP__SERVERS__FILES__TIMEOUT"):
        load_config(path)


def test_servers_without_the_sdk_fail_at_start_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from ponder.tools.mcp import McpServers

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mcp" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"ponder\[mcp\]"):
        McpServers([stdio()])
    assert McpServers([]).servers == ()  # no servers: no SDK needed


def test_the_modules_import_without_the_sdk() -> None:
    """What the gateway imports unconditionally must not need the mcp extra."""
    code = (
        "import sys; sys.modules['mcp'] = None\n"
        "import ponder.config, ponder.tools.mcp, ponder.tools.policy\n"
        "assert ponder.tools.mcp.McpServers([]).servers == ()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env=env)
