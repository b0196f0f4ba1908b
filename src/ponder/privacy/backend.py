"""A Backend that sends a model placeholders instead of personal data, and restores them.

:class:`RedactingBackend` wraps the Backend of a deployment that is not local. Each request
is redacted (:class:`ponder.privacy.redact.Redactor`) with a vault of its own before the
inner backend sees it; each reply has the vault's placeholders restored: every choice's
text, reasoning and tool-call arguments, and in a stream every sequence's deltas, each
through its own :class:`ponder.privacy.redact.StreamRestorer`, flushed at that sequence's
``finish_reason``.

It fails closed: if detection raises, :class:`DataProtectionError` is raised and the inner
backend is never called. Logprobs pass through as the model produced them, so their tokens
may show placeholders (never the values: the model never had them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ponder.backends.base import Backend, Capabilities, GenerationStream
from ponder.privacy.errors import DataProtectionError
from ponder.privacy.redact import Redactor, StreamRestorer, Vault
from ponder.types import Choice, Completion, Delta, GenerationRequest, Usage


class RedactingBackend:
    """Redacts requests to ``inner`` and restores its replies (see the module)."""

    def __init__(self, inner: Backend, redactor: Redactor | None = None) -> None:
        self.inner = inner
        self.redactor = redactor or Redactor()
        self.name = inner.name
        self.capabilities: Capabilities = inner.capabilities

    def redact(self, request: GenerationRequest) -> tuple[GenerationRequest, Vault]:
        """The request as the model will see it, and its vault; fails closed."""
        try:
            return self.redactor.redact_request(request)
        except Exception as exc:
            raise DataProtectionError(
                f"personal data could not be checked for ({type(exc).__name__}), so the "
                f"request was not sent to {self.name}"
            ) from exc

    async def generate(self, request: GenerationRequest) -> Completion:
        redacted, vault = self.redact(request)
        completion = await self.inner.generate(redacted)
        return restore_completion(completion, vault)

    def stream(self, request: GenerationRequest) -> GenerationStream:
        redacted, vault = self.redact(request)
        return RestoringStream(self.inner.stream(redacted), vault)

    async def aclose(self) -> None:
        """The inner backend belongs to whoever made it; it stays open."""


def restore_completion(completion: Completion, vault: Vault) -> Completion:
    """``completion`` with the vault's placeholders restored in every choice."""
    if not len(vault):
        return completion
    return dataclasses.replace(
        completion, choices=tuple(_restore_choice(c, vault) for c in completion.choices)
    )


def _restore_choice(choice: Choice, vault: Vault) -> Choice:
    return dataclasses.replace(
        choice,
        text=vault.restore(choice.text),
        reasoning=vault.restore(choice.reasoning) if choice.reasoning else choice.reasoning,
        tool_calls=(
            tuple(restore_tool_call(c, vault) for c in choice.tool_calls)
            if choice.tool_calls
            else choice.tool_calls
        ),
    )


def restore_tool_call(call: Mapping[str, Any], vault: Vault) -> Mapping[str, Any]:
    """One whole tool call (OpenAI shape) with its arguments restored."""
    function = call.get("function")
    if not isinstance(function, Mapping) or function.get("arguments") is None:
        return call
    arguments = vault.restore_arguments(function["arguments"])
    return {**call, "function": {**function, "arguments": arguments}}


class _Sequence:
    """The restorers of one sequence: its text, its reasoning, each tool call's arguments."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.text = StreamRestorer(vault)
        self.reasoning = StreamRestorer(vault)
        self.arguments: dict[Any, StreamRestorer] = {}

    def tool_calls(
        self, calls: tuple[Mapping[str, Any], ...] | None
    ) -> tuple[Mapping[str, Any], ...] | None:
        """Tool-call deltas restored: whole calls, or pieces of their arguments as a remote
        endpoint streams them (one restorer per call ``index``)."""
        if not calls:
            return calls
        out: list[Mapping[str, Any]] = []
        for position, call in enumerate(calls):
            function = call.get("function")
            arguments = function.get("arguments") if isinstance(function, Mapping) else None
            if not isinstance(function, Mapping) or arguments is None:
                out.append(call)
                continue
            if not isinstance(arguments, str):
                out.append(restore_tool_call(call, self.vault))
                continue
            key = call.get("index", position)
            restorer = self.arguments.setdefault(key, StreamRestorer(self.vault, json_string=True))
            out.append({**call, "function": {**function, "arguments": restorer.push(arguments)}})
        return tuple(out)

    def flush_tool_calls(self) -> list[Mapping[str, Any]]:
        """What the argument restorers still hold, as pieces of their calls."""
        return [
            {"index": key, "function": {"arguments": tail}}
            for key, restorer in self.arguments.items()
            if (tail := restorer.flush())
        ]


class RestoringStream:
    """A GenerationStream whose deltas have the vault's placeholders restored."""

    def __init__(self, inner: GenerationStream, vault: Vault) -> None:
        self.inner = inner
        self.vault = vault
        self._sequences: dict[int, _Sequence] = {}

    def __aiter__(self) -> AsyncIterator[Delta]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Delta]:
        async for delta in self.inner:
            yield self.restore(delta)

    def restore(self, delta: Delta) -> Delta:
        """One delta, restored; at its sequence's end, with what was held back."""
        if not len(self.vault):
            return delta
        sequence = self._sequences.get(delta.index)
        if sequence is None:
            sequence = self._sequences[delta.index] = _Sequence(self.vault)
        text = sequence.text.push(delta.text)
        reasoning = sequence.reasoning.push(delta.reasoning)
        tool_calls = sequence.tool_calls(delta.tool_calls)
        if delta.finish_reason is not None:
            text += sequence.text.flush()
            reasoning += sequence.reasoning.flush()
            tails = sequence.flush_tool_calls()
            if tails:
                tool_calls = (*(tool_calls or ()), *tails)
        return dataclasses.replace(delta, text=text, reasoning=reasoning, tool_calls=tool_calls)

    def cancel(self, index: int) -> None:
        self.inner.cancel(index)

    async def aclose(self) -> None:
        await self.inner.aclose()

    @property
    def usage(self) -> Usage:
        return self.inner.usage
