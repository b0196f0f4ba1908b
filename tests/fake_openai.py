"""A small OpenAI-compatible server on 127.0.0.1 that mimics real endpoints' quirks.

The base URL picks the behaviour: ``http://127.0.0.1:PORT/<profile>/v1``.

profile        behaviour
-------------  ---------------------------------------------------------------------
vllm           native n, exact usage, thinking in ``reasoning_content``
llama-server   native n, but usage counts only the first choice's completion tokens
ollama         ignores n (always one choice), thinking in ``reasoning``
think-tags     thinking inline as ``<think>…</think>`` in the content
flaky          answers 503 to the first two requests, then behaves like vllm
slow           waits 5 s before answering
detailed       like vllm, and usage also has completion_tokens_details.reasoning_tokens
               (the thinking tokens) and prompt_tokens_details.cached_tokens (always 2)
long           like vllm, but each choice streams LONG_TOKENS tokens (to cut a stream)
               (any profile, n=1: stream_options.continuous_usage_stats puts the usage so
               far on every chunk, as vLLM does)
paced          like long, one chunk every PACED_SECONDS (nothing is in flight between them)
error-NNN      answers HTTP NNN with an OpenAI error body; ``error-NNN-text`` with plain text
hang           waits 30 s before answering (past any test's timeout)
context        400 with code ``context_length_exceeded`` (the prompt is too long for it)
content        400 with code ``content_policy_violation`` (its content filter refuses)
wait-N         429 with ``Retry-After: N`` to its first request, then behaves like vllm
die-mid        streams two chunks, then drops the connection; a whole reply gets a 500
half           503 to every other request (the 1st, 3rd, ...), like vllm otherwise
echo           answers with every message's content, joined by " | ", word by word
tools          calls the request's first tool (arguments {"question": the last user message})
               until the conversation has a tool message; then answers "Tool said: <its
               content>", word by word (streamed: the call in one chunk)
agent          (not streamed) calls the request's first tool while no tool message follows
               the last user message: one call per " ;; "-separated part of that message,
               each part the value of the tool's first required argument; then answers
               "Tool said: <the tool messages since, joined by ' | '>". A tool named in the
               user message as "use:<name>" is called instead of the first
agent-forever  like agent, but calls a tool whenever the request has tools
tools-args     like ``tools``, but the arguments fill each required property of the tool's
               parameters with the last user message (a tool with its own signature works)
tools-split    like ``tools``, but calls every tool of the request (in order), and streamed, each
               call's arguments come in pieces of at most 4 characters, one chunk each

``app.state.requests`` logs each request's (profile, body), ``app.state.headers`` its headers,
and ``app.state.streams`` each stream's end: (profile, chunks sent, whether it completed).

Each choice's text is a fixed list of "tokens"; every token is one streamed chunk and one
logprob entry, so counts are exact and checkable.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

THINKING = ["Let", " me", " think", "."]
LONG_TOKENS = 400
PACED_SECONDS = 0.25  # between the "paced" profile's chunks


def answer_tokens(index: int, seed: int | None) -> list[str]:
    value = 40 + index + (seed or 0) % 7
    return ["The", " answer", " is", f" {value}", "."]


def make_app() -> FastAPI:
    app = FastAPI()
    app.state.calls = {}
    app.state.requests = []
    app.state.headers = []
    app.state.streams = []

    @app.post("/{profile}/v1/chat/completions")
    async def chat(profile: str, request: Request) -> Any:
        body = await request.json()
        app.state.requests.append((profile, body))
        app.state.headers.append(dict(request.headers))
        if profile.startswith("error-"):
            status = int(profile.split("-")[1])
            if profile.endswith("-text"):
                return PlainTextResponse(f"plain failure {status}", status_code=status)
            return JSONResponse(
                status_code=status,
                content={"error": {"message": f"failure {status}", "type": "fake", "code": status}},
                headers={"Retry-After": "1"} if status == 429 else None,
            )
        count = app.state.calls.get(profile, 0) + 1
        app.state.calls[profile] = count
        refusals = {"context": "context_length_exceeded", "content": "content_policy_violation"}
        if profile in refusals:
            return JSONResponse(
                status_code=400,
                content={
                    "error": {
                        "message": "refused",
                        "type": "invalid_request_error",
                        "code": refusals[profile],
                    }
                },
            )
        if (
            profile in ("tools", "tools-split", "tools-args")
            and body.get("tools")
            and not any(m.get("role") == "tool" for m in body["messages"])
        ):
            return _tool_call_reply(
                body, split=profile == "tools-split", by_schema=profile == "tools-args"
            )
        if (
            profile in ("agent", "agent-forever")
            and body.get("tools")
            and (profile == "agent-forever" or not _tool_results(body["messages"]))
        ):
            return _agent_call_reply(body)
        if profile == "hang":
            await asyncio.sleep(30)
        if profile.startswith("wait-") and count == 1:
            return JSONResponse(
                status_code=429,
                content={"error": {"message": "slow down", "type": "rate_limit"}},
                headers={"Retry-After": profile.split("-")[1]},
            )
        if (profile == "half" and count % 2 == 1) or (
            profile == "die-mid" and not body.get("stream")
        ):
            return JSONResponse(
                status_code=503 if profile == "half" else 500,
                content={"error": {"message": "overloaded", "type": "server_error"}},
            )
        if profile == "flaky" and count <= 2:
            return JSONResponse(
                status_code=503,
                content={"error": {"message": "overloaded", "type": "server_error"}},
            )
        if profile == "slow":
            await asyncio.sleep(5)
        n = 1 if profile == "ollama" else int(body.get("n") or 1)
        said_by_tool = [str(m.get("content")) for m in body["messages"] if m.get("role") == "tool"]
        seed = body.get("seed")
        want_logprobs = bool(body.get("logprobs"))
        top = int(body.get("top_logprobs") or 0)
        max_tokens = body.get("max_tokens")
        thinking = "think" in body["model"] or profile == "think-tags"
        choices = []
        for i in range(n):
            tokens = answer_tokens(i, seed)
            if profile in ("tools", "tools-split", "tools-args") and said_by_tool:
                words = f"Tool said: {said_by_tool[-1]}".split(" ")
                tokens = [f" {w}" if k else w for k, w in enumerate(words)]
            if profile.startswith("agent") and _tool_results(body["messages"]):
                words = f"Tool said: {' | '.join(_tool_results(body['messages']))}".split(" ")
                tokens = [f" {w}" if k else w for k, w in enumerate(words)]
            if profile == "echo":
                said = " | ".join(str(m.get("content") or "") for m in body["messages"])
                tokens = [f" {w}" if k else w for k, w in enumerate(said.split(" "))]
            if profile in ("long", "paced"):
                tokens = [f" t{k}" for k in range(LONG_TOKENS)]
            if max_tokens is not None:
                tokens = tokens[: int(max_tokens)]
            choices.append(tokens)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        thought_tokens = len(THINKING) if thinking else 0
        per_choice = [len(t) + thought_tokens for t in choices]
        reported = per_choice[0] if profile == "llama-server" else sum(per_choice)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": reported,
            "total_tokens": prompt_tokens + reported,
        }
        if profile == "detailed":
            usage["completion_tokens_details"] = {"reasoning_tokens": thought_tokens * n}
            usage["prompt_tokens_details"] = {"cached_tokens": 2}
        finish = [
            "stop" if max_tokens is None or len(t) < int(max_tokens) else "length" for t in choices
        ]

        def logprob_entries(tokens: list[str]) -> dict[str, Any]:
            return {
                "content": [
                    {
                        "token": tok,
                        "logprob": -0.25,
                        "bytes": list(tok.encode()),
                        "top_logprobs": [
                            {"token": tok, "logprob": -0.25, "bytes": list(tok.encode())},
                            *(
                                {"token": f"alt{k}", "logprob": -2.0 - k, "bytes": None}
                                for k in range(top - 1)
                            ),
                        ][:top],
                    }
                    for tok in tokens
                ]
            }

        def message_fields(i: int) -> dict[str, Any]:
            text = "".join(choices[i])
            if not thinking:
                return {"content": text}
            thought = "".join(THINKING)
            if profile == "think-tags":
                return {"content": f"<think>{thought}</think>{text}"}
            key = "reasoning" if profile == "ollama" else "reasoning_content"
            return {"content": text, key: thought}

        if not body.get("stream"):
            return {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": i,
                        "message": {"role": "assistant", **message_fields(i)},
                        "logprobs": logprob_entries((THINKING if thinking else []) + choices[i])
                        if want_logprobs
                        else None,
                        "finish_reason": finish[i],
                    }
                    for i in range(n)
                ],
                "usage": usage,
            }

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        continuous = include_usage and bool(body["stream_options"].get("continuous_usage_stats"))

        async def events() -> Any:
            def chunk(choices_: list[dict[str, Any]], usage_: dict[str, Any] | None = None) -> str:
                payload = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": body["model"],
                    "choices": choices_,
                    "usage": usage_,
                }
                return f"data: {json.dumps(payload)}\n\n"

            for i in range(n):
                steps: list[dict[str, Any]] = []
                if thinking:
                    for tok in THINKING:
                        if profile == "think-tags":
                            steps.append({"content": tok if tok != "Let" else "<think>Let"})
                        else:
                            steps.append(
                                {"reasoning" if profile == "ollama" else "reasoning_content": tok}
                            )
                    if profile == "think-tags":
                        steps[-1]["content"] += "</think>"
                steps.extend({"content": tok} for tok in choices[i])
                all_tokens = (THINKING if thinking else []) + choices[i]
                for k, delta in enumerate(steps):
                    last = k == len(steps) - 1
                    entry = {
                        "index": i,
                        "delta": delta,
                        "logprobs": logprob_entries([all_tokens[k]]) if want_logprobs else None,
                        "finish_reason": finish[i] if last else None,
                    }
                    # vLLM's continuous_usage_stats: the usage so far on every chunk.
                    so_far = {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": k + 1,
                        "total_tokens": prompt_tokens + k + 1,
                    }
                    yield chunk([entry], so_far if continuous and n == 1 else None)
                    if profile == "die-mid" and k == 1:
                        raise ConnectionResetError("the endpoint died mid-stream")
                    await asyncio.sleep(PACED_SECONDS if profile == "paced" else 0.01)
            if include_usage:
                yield chunk([], usage)
            yield "data: [DONE]\n\n"

        async def recorded() -> Any:
            sent = 0
            completed = False
            try:
                async for event in events():
                    yield event
                    sent += 1
                completed = True
            finally:
                app.state.streams.append((profile, sent, completed))

        return StreamingResponse(recorded(), media_type="text/event-stream")

    return app


def _tool_call_reply(body: dict[str, Any], *, split: bool = False, by_schema: bool = False) -> Any:
    """The ``tools`` profile's first answer: a call of the request's first tool (``split``:
    of every tool, its streamed arguments in small pieces; ``by_schema``: its arguments
    its required properties, each the last user message)."""
    asked = [str(m.get("content")) for m in body["messages"] if m.get("role") == "user"]
    calls: list[dict[str, Any]]
    if by_schema:
        function = body["tools"][0]["function"]
        required = (function.get("parameters") or {}).get("required") or []
        arguments = json.dumps(dict.fromkeys(required, asked[-1]))
        call = {"id": "call_fake_args", "type": "function"}
        calls = [{**call, "function": {"name": function["name"], "arguments": arguments}}]
    else:
        calls = [
            {
                "id": f"call_fake_{len(body['messages'])}_{k}",
                "type": "function",
                "function": {
                    "name": tool["function"]["name"],
                    # Split, each call's arguments differ (they must not be mixed up).
                    "arguments": json.dumps(
                        {"question": asked[-1], **({"tool": k} if split else {})}
                    ),
                },
            }
            for k, tool in enumerate(body["tools"] if split else body["tools"][:1])
        ]
    usage = {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17}
    if not body.get("stream"):
        return _tool_calls_reply(body, calls, usage)

    def fragments() -> Iterator[dict[str, Any]]:
        for k, call in enumerate(calls):
            # As OpenAI streams a call: its id and name first, then its arguments in pieces.
            function = call["function"]
            yield {**call, "index": k, "function": {"name": function["name"], "arguments": ""}}
            arguments = function["arguments"]
            for at in range(0, len(arguments), 4):
                yield {"index": k, "function": {"arguments": arguments[at : at + 4]}}

    async def events() -> Any:
        chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0}
        pieces = list(fragments()) if split else [None]
        for at, piece in enumerate(pieces):
            parts = [piece] if split else [{"index": k, **c} for k, c in enumerate(calls)]
            delta: dict[str, Any] = {"tool_calls": parts}
            if at == 0:
                delta["role"] = "assistant"
            last = at == len(pieces) - 1
            choice = {"index": 0, "delta": delta, "finish_reason": "tool_calls" if last else None}
            yield f"data: {json.dumps({**chunk, 'model': body['model'], 'choices': [choice]})}\n\n"
        if (body.get("stream_options") or {}).get("include_usage"):
            tail = {**chunk, "model": body["model"], "choices": [], "usage": usage}
            yield f"data: {json.dumps(tail)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def _tool_results(messages: list[dict[str, Any]]) -> list[str]:
    """The tool messages after the last user message."""
    users = [k for k, m in enumerate(messages) if m.get("role") == "user"]
    start = users[-1] + 1 if users else 0
    return [str(m.get("content")) for m in messages[start:] if m.get("role") == "tool"]


def _agent_call_reply(body: dict[str, Any]) -> Any:
    """The ``agent`` profiles' tool-calling turn (see the table above)."""
    asked = [str(m.get("content")) for m in body["messages"] if m.get("role") == "user"][-1]
    tools = [t["function"] for t in body["tools"]]
    named = next((w.removeprefix("use:") for w in asked.split() if w.startswith("use:")), None)
    tool = next((t for t in tools if t["name"] == named), tools[0])
    if named is not None:
        asked = asked.replace(f"use:{named}", "").strip()
    schema = tool.get("parameters") or {}
    argument = (schema.get("required") or list(schema.get("properties") or {}) or ["input"])[0]
    calls = [
        {
            "id": f"call_agent_{len(body['messages'])}_{k}",
            "type": "function",
            "function": {"name": tool["name"], "arguments": json.dumps({argument: part})},
        }
        for k, part in enumerate(asked.split(" ;; "))
    ]
    prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in body["messages"])
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 7 * len(calls),
        "total_tokens": prompt_tokens + 7 * len(calls),
    }
    return _tool_calls_reply(body, calls, usage)


def _tool_calls_reply(
    body: dict[str, Any], calls: list[dict[str, Any]], usage: dict[str, int]
) -> dict[str, Any]:
    """A whole reply whose one choice is ``calls``."""
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "tool_calls": calls},
                "finish_reason": "tool_calls",
            }
        ],
        "usage": usage,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Run an ASGI app with uvicorn on a loopback port in a thread; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def make_proxy(upstream: str, samples: int = 2) -> FastAPI:
    """A reasoning proxy shaped like optillm: it asks ``upstream`` ``samples`` times with the
    model name passed through, answers with the first reply, and reports completion tokens
    only. ``app.state.seen`` holds the usage of every upstream reply, for tests to compare."""
    import httpx

    app = FastAPI()
    app.state.seen = []

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        replies = []
        async with httpx.AsyncClient(timeout=120) as client:
            for _ in range(samples):
                reply = await client.post(
                    f"{upstream}/v1/chat/completions",
                    json={
                        "model": body["model"],
                        "messages": body["messages"],
                        "max_tokens": body.get("max_tokens", 16),
                    },
                )
                reply.raise_for_status()
                replies.append(reply.json())
        app.state.seen.extend(r["usage"] for r in replies)
        first = replies[0]
        completion = sum(r["usage"]["completion_tokens"] for r in replies)
        first["usage"] = {"prompt_tokens": 0, "completion_tokens": completion}
        return first

    return app
