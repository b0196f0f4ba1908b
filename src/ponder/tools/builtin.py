"""Ponder's built-in tools by the type a request names them with, and the toolbox of one
request (:class:`RequestToolbox`: the built-ins it named, joined with the tools of other
toolboxes, such as the MCP servers it named).

A Responses request names a built-in tool by its ``type`` in ``tools``:

=====================  ===============================================================
``{"type": "python"}``  :class:`~ponder.tools.python.PythonTool`; options ``session``
                        (bool, default false: keep state across calls, by replay) and
                        ``timeout_seconds`` (default 10, at most 60)
``{"type": "code_interpreter", "container": {"type": "auto"}}``
                        OpenAI's name for the same: the python tool with a session on
                        (OpenAI's container keeps state); no files, no container ids
``{"type": "calculator"}``  :class:`~ponder.tools.calculator.CalculatorTool`
=====================  ===============================================================

An option Ponder does not know, or cannot honour, is a 400 naming it (never ignored).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ponder.errors import InvalidRequestError, UnsupportedFeatureError
from ponder.sandbox import ProgramSandbox
from ponder.tools.base import Tool, Toolbox
from ponder.tools.calculator import CalculatorTool
from ponder.tools.python import DEFAULT_SECONDS, MAX_SECONDS, PythonTool

# The request's tool type -> the name the model calls the tool by.
BUILTIN_TYPES: Mapping[str, str] = MappingProxyType(
    {"python": "python", "code_interpreter": "python", "calculator": "calculator"}
)


def _refuse_extra(options: Mapping[str, Any], where: str) -> None:
    if options:
        name = sorted(options)[0]
        raise InvalidRequestError(
            f"{where}: unknown option {name!r} for this tool", param=f"{where}.{name}"
        )


def _container(value: Any, where: str) -> None:
    """OpenAI's container: only a fresh one (``{"type": "auto"}``) without files exists here."""
    param = f"{where}.container"
    if value is None:
        return
    if isinstance(value, str):
        raise UnsupportedFeatureError(
            f"{param}: Ponder has no containers to name; send {{'type': 'auto'}}", param=param
        )
    if not isinstance(value, Mapping) or value.get("type", "auto") != "auto":
        raise UnsupportedFeatureError(f"{param}: only {{'type': 'auto'}} is supported", param=param)
    if value.get("file_ids"):
        raise UnsupportedFeatureError(f"{param}.file_ids: files are not supported", param=param)
    # memory_limit and network_policy ask for more than Ponder's fixed, offline sandbox.
    extra = set(value) - {"type", "file_ids"}
    if extra:
        raise UnsupportedFeatureError(
            f"{param}.{sorted(extra)[0]} is not supported", param=f"{param}.{sorted(extra)[0]}"
        )


def builtin_tool(spec: Mapping[str, Any], sandbox: ProgramSandbox, where: str) -> Tool:
    """The tool a ``tools`` entry of a built-in type asks for, fresh for one request."""
    kind = spec.get("type")
    options = {k: v for k, v in spec.items() if k != "type" and v is not None}
    if kind == "calculator":
        _refuse_extra(options, where)
        return CalculatorTool()
    if kind == "code_interpreter":
        _container(options.pop("container", None), where)
        _refuse_extra(options, where)
        return PythonTool(sandbox, session=True)
    if kind == "python":
        session = options.pop("session", False)
        seconds = options.pop("timeout_seconds", DEFAULT_SECONDS)
        if not isinstance(session, bool):
            raise InvalidRequestError(f"{where}.session must be true or false", param=where)
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 < seconds <= MAX_SECONDS
        ):
            raise InvalidRequestError(
                f"{where}.timeout_seconds must be a number of seconds up to {MAX_SECONDS:g}",
                param=f"{where}.timeout_seconds",
            )
        _refuse_extra(options, where)
        return PythonTool(sandbox, session=session, timeout_seconds=float(seconds))
    raise UnsupportedFeatureError(f"{where}: no built-in tool of type {kind!r}", param=where)


class RequestToolbox:
    """The tools one request may call: the built-ins it named and the tools of the toolboxes
    joined to it (:meth:`joined`), each closed with it. State (a python session) lives as
    long as it."""

    def __init__(self, tools: Sequence[Tool], parts: Sequence[Toolbox] = ()) -> None:
        self._tools = tuple(tools)
        self._parts = tuple(parts)

    @property
    def tools(self) -> Sequence[Tool]:
        return self._tools

    def get(self, name: str) -> Tool | None:
        return next((t for t in self._tools if t.name == name), None)

    def joined(self, other: Toolbox, tools: Sequence[Tool] | None = None) -> RequestToolbox:
        """This toolbox and ``tools`` of ``other`` (default: all of them); ``other`` is
        closed with it. A name already here is a :class:`ValueError` (the model could not
        tell the two apart)."""
        added = tuple(other.tools if tools is None else tools)
        names = [t.name for t in (*self._tools, *added)]
        if len(set(names)) != len(names):
            raise ValueError(f"two tools of one request share a name: {sorted(names)}")
        return RequestToolbox((*self._tools, *added), (*self._parts, other))

    async def ready(self) -> None:
        """Raise what stops a tool from running at all (a sandbox that cannot start), before
        any token is spent."""
        for tool in self._tools:
            if isinstance(tool, PythonTool):
                await tool.ready()

    async def aclose(self) -> None:
        """Close every joined toolbox (the built-ins hold nothing outside memory: a python
        session is its list of cells); one failing to close does not keep the others open."""
        failures: list[Exception] = []
        for part in self._parts:
            try:
                await part.aclose()
            except Exception as exc:
                failures.append(exc)
        if failures:
            raise ExceptionGroup("closing a request's tools failed", failures)


def open_toolbox(
    specs: Sequence[tuple[str, Mapping[str, Any]]], sandbox: ProgramSandbox
) -> RequestToolbox:
    """The toolbox for ``specs`` (each ``(where, tools entry)``); two entries for one tool
    are a 400."""
    tools: list[Tool] = []
    for where, spec in specs:
        tool = builtin_tool(spec, sandbox, where)
        if any(t.name == tool.name for t in tools):
            raise InvalidRequestError(f"{where}: the {tool.name} tool is named twice", param=where)
        tools.append(tool)
    return RequestToolbox(tools)
