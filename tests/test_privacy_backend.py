"""RedactingBackend: no labelled value reaches the model, whatever place it is in; replies,
streamed or whole, come back restored exactly; detection that fails stops the request."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ponder.backends.base import Backend, Capabilities, QueueStream
from ponder.backends.scripted import ScriptedBackend
from ponder.privacy import (
    PLACEHOLDER,
    DataProtectionError,
    Detector,
    Finding,
    RedactingBackend,
    Redactor,
)
from ponder.types import Choice, Completion, Delta, GenerationRequest, Message, Usage

DATA = Path(__file__).parent / "data" / "pii_labelled.jsonl"
TEXT = (
    "Reach jo@example.com or +44 20 7946 0958; card 4111 1111 1111 1111; "
    "key AKIAIOSFODNN7EXAMPLE; host 203.0.113.9"
)
Cut = Callable[[str], list[str]]


def whole(text: str) -> list[str]:
    return [text]


class EchoBackend:
    """A model that repeats what it was sent: the last message as text and reasoning, and
    the first tool call's arguments in pieces; ``n`` sequences interleaved delta by delta."""

    name = "echo"
    capabilities = Capabilities(tools=True)

    def __init__(self, cut: Cut = whole) -> None:
        self.cut = cut
        self.seen: list[GenerationRequest] = []
        self.closed = False

    def _call(self, request: GenerationRequest) -> Any:
        calls = [c for m in request.messages for c in m.tool_calls or ()]
        return calls[0] if calls else None

    async def generate(self, request: GenerationRequest) -> Completion:
        self.seen.append(request)
        text = request.messages[-1].content
        call = self._call(request)
        choices = tuple(
            Choice(i, text, "stop", 1, reasoning=text, tool_calls=(call,) if call else None)
            for i in range(request.n)
        )
        return Completion(choices=choices, usage=Usage(completion_tokens=request.n), model="echo")

    def stream(self, request: GenerationRequest) -> QueueStream:
        self.seen.append(request)
        text = request.messages[-1].content
        call = self._call(request)
        pieces: list[dict[str, Any]] = [{"text": p} for p in self.cut(text)]
        pieces += [{"reasoning": p} for p in self.cut(text)]
        if call is not None:
            for k, part in enumerate(self.cut(call["function"]["arguments"])):
                head: dict[str, Any] = {"id": call["id"], "type": "function"} if k == 0 else {}
                fragment = {"index": 0, "function": {"arguments": part}, **head}
                pieces.append({"tool_calls": (fragment,)})
        stream = QueueStream()
        for piece in pieces:  # sequences interleaved: 0, 1, 0, 1, ...
            for i in range(request.n):
                stream.push(Delta(index=i, **piece))
        for i in range(request.n):
            stream.push(Delta(index=i, finish_reason="stop", completion_tokens=len(pieces)))
        stream.finish(Usage(completion_tokens=len(pieces) * request.n, calls=1))
        return stream

    async def aclose(self) -> None:
        self.closed = True


def request_for(text: str, arguments: str | None = None, n: int = 1) -> GenerationRequest:
    arguments = arguments or json.dumps({"query": text, "items": [text, {"note": text}]})
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    return GenerationRequest(
        messages=(
            Message("system", f"Context: {text}"),
            Message("assistant", text, reasoning=text, tool_calls=(call,)),
            Message("tool", text, tool_call_id="call_1"),
            Message("user", text),
        ),
        prefill=text,
        n=n,
    )


def everything_sent(request: GenerationRequest) -> str:
    parts = [request.prefill]
    for m in request.messages:
        parts += [m.content, m.reasoning or "", json.dumps(m.tool_calls or [])]
        parts += [str(c["function"]["arguments"]) for c in m.tool_calls or ()]
    return "\n".join(parts)


def labelled_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DATA.read_text().splitlines()]


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


async def test_backend_protocol(redactor: Redactor) -> None:
    echo = EchoBackend()
    backend = RedactingBackend(echo, redactor)
    assert isinstance(backend, Backend)
    assert backend.name == "echo" and backend.capabilities is echo.capabilities


async def test_no_labelled_value_reaches_the_model(redactor: Redactor) -> None:
    echo = EchoBackend()
    backend = RedactingBackend(echo, redactor)
    leaks = []
    for row in labelled_rows():
        if not row["spans"]:
            continue
        request = request_for(row["text"])
        completion = await backend.generate(request)
        stream = backend.stream(request)
        deltas = [d async for d in stream]
        for seen in echo.seen[-2:]:
            blob = everything_sent(seen)
            for span in row["spans"]:
                value = span["value"]
                if value in blob or json.dumps(value)[1:-1] in blob:
                    leaks.append(span)
        assert completion.text == row["text"]
        assert completion.choices[0].reasoning == row["text"]
        assert "".join(d.text for d in deltas) == row["text"]
        assert "".join(d.reasoning for d in deltas) == row["text"]
    assert leaks == []


async def test_streams_split_at_every_offset_are_restored_exactly(redactor: Redactor) -> None:
    arguments = json.dumps({"to": "jo@example.com", "text": TEXT})
    redacted, _ = redactor.redact_request(request_for(TEXT, arguments))
    reply = redacted.messages[-1].content
    sent_arguments = redacted.messages[1].tool_calls[0]["function"]["arguments"]  # type: ignore[index]
    assert PLACEHOLDER.search(reply) and PLACEHOLDER.search(sent_arguments)
    longest = max(len(reply), len(sent_arguments))
    for k in range(longest + 1):

        def cut(text: str, k: int = k) -> list[str]:
            return [text[:k], text[k:]]

        for n in (1, 2):
            echo = EchoBackend(cut)
            stream = RedactingBackend(echo, redactor).stream(request_for(TEXT, arguments, n=n))
            deltas = [d async for d in stream]
            for i in range(n):
                mine = [d for d in deltas if d.index == i]
                assert "".join(d.text for d in mine) == TEXT
                assert "".join(d.reasoning for d in mine) == TEXT
                pieces = [c["function"]["arguments"] for d in mine for c in d.tool_calls or ()]
                assert json.loads("".join(pieces)) == json.loads(arguments)
                for d in mine:  # the client never sees a placeholder or a piece of one
                    assert "<" not in d.text + d.reasoning
                    assert all("<" not in str(c) for c in d.tool_calls or ())


async def test_one_character_deltas(redactor: Redactor) -> None:
    echo = EchoBackend(list)
    stream = RedactingBackend(echo, redactor).stream(request_for(TEXT))
    deltas = [d async for d in stream]
    assert "".join(d.text for d in deltas) == TEXT
    assert stream.usage.calls == 1


async def test_whole_tool_calls_are_restored(redactor: Redactor) -> None:
    arguments = json.dumps({"to": "jo@example.com", "pem": "-----BEGIN PRIVATE KEY-----\nQUJD"})
    echo = EchoBackend()
    completion = await RedactingBackend(echo, redactor).generate(request_for(TEXT, arguments))
    (call,) = completion.choices[0].tool_calls or ()
    assert json.loads(call["function"]["arguments"]) == json.loads(arguments)
    assert call["id"] == "call_1"
    assert "jo@example.com" not in everything_sent(echo.seen[0])


async def test_with_the_scripted_backend(redactor: Redactor) -> None:
    """A real Backend of this codebase, whose tokens are words: it repeats the request."""
    scripted = ScriptedBackend(lambda request, index: request.messages[-1].content)
    backend = RedactingBackend(scripted, redactor)
    request = GenerationRequest(messages=(Message("user", TEXT),), n=2)
    completion = await backend.generate(request)
    assert [c.text for c in completion.choices] == [TEXT, TEXT]
    assert "jo@example.com" not in scripted.calls[0].messages[0].content
    stream = backend.stream(request)
    texts = ["", ""]
    async for delta in stream:
        texts[delta.index] += delta.text
    assert texts == [TEXT, TEXT]
    assert stream.usage.calls == 1


async def test_cancel_and_close_reach_the_inner_stream(redactor: Redactor) -> None:
    scripted = ScriptedBackend(lambda request, index: TEXT + " and more words" * 20)
    scripted.token_delay = 0.001
    stream = RedactingBackend(scripted, redactor).stream(
        GenerationRequest(messages=(Message("user", "hi"),), n=2)
    )
    finish: dict[int, str] = {}
    async for delta in stream:
        if delta.index == 1 and not finish:
            stream.cancel(1)
            finish[-1] = "asked"
        if delta.finish_reason:
            finish[delta.index] = delta.finish_reason
    assert finish[1] == "cancelled" and finish[0] == "stop"
    await stream.aclose()


async def test_aclose_leaves_the_inner_backend_open(redactor: Redactor) -> None:
    echo = EchoBackend()
    await RedactingBackend(echo, redactor).aclose()
    assert not echo.closed


class BrokenDetector(Detector):
    def find(self, text: str) -> list[Finding]:
        raise RuntimeError(f"detector crashed on {text!r}")


async def test_fails_closed() -> None:
    echo = EchoBackend()
    backend = RedactingBackend(echo, Redactor(BrokenDetector()))
    request = request_for(TEXT)
    with pytest.raises(DataProtectionError) as caught:
        await backend.generate(request)
    with pytest.raises(DataProtectionError):
        backend.stream(request)
    assert echo.seen == []  # the model received nothing
    error = caught.value
    assert error.status_code == 503
    assert error.code == "data_protection_unavailable"
    assert error.error_type == "server_error"
    assert "jo@example.com" not in error.message and "RuntimeError" in error.message


async def test_a_request_without_personal_data_passes_unchanged(redactor: Redactor) -> None:
    echo = EchoBackend()
    request = GenerationRequest(messages=(Message("user", "What is 6 * 7?"),))
    completion = await RedactingBackend(echo, redactor).generate(request)
    assert echo.seen == [request]
    assert completion.text == "What is 6 * 7?"
