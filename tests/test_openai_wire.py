"""The OpenAI wire format: request bodies, reply parsing and error mapping, without a network."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion

from ponder.backends.openai_wire import chat_params, map_openai_error, parse_reply
from ponder.errors import (
    BackendTimeoutError,
    BackendUnavailableError,
    InvalidRequestError,
    ModelNotFoundError,
)
from ponder.types import GenerationRequest, Message, SamplingParams

ASK = (Message("user", "2+2?"),)


def params(request: GenerationRequest, n: int = 1, **kw: Any) -> dict[str, Any]:
    options: dict[str, Any] = dict(
        model="m", extra_body={}, prefill=None, endpoint="lab/m", count_tokens=False
    )
    return chat_params(request, n, **(options | kw))


def test_fields_outside_the_openai_schema_go_in_the_extra_body() -> None:
    sampling = SamplingParams(
        temperature=0.3, top_k=20, min_p=0.05, repeat_penalty=1.1, ignore_eos=True, seed=4
    )
    request = GenerationRequest(ASK, sampling, extra={"chat_template_kwargs": {"x": 1}})
    body = params(request, extra_body={"priority": 1, "chat_template_kwargs": {}})
    assert "n" not in body and "logprobs" not in body
    assert body["seed"] == 4 and body["temperature"] == 0.3
    assert body["extra_body"] == {
        "priority": 1,
        "chat_template_kwargs": {"x": 1},  # the request's own options win
        "top_k": 20,
        "min_p": 0.05,
        "repetition_penalty": 1.1,
        "ignore_eos": True,
    }


def test_counting_tokens_asks_for_logprobs_and_n_is_sent_when_wider_than_one() -> None:
    body = params(GenerationRequest(ASK), 3, count_tokens=True)
    assert body["n"] == 3 and body["logprobs"] is True and "top_logprobs" not in body
    assert "extra_body" not in body


def test_prefill_needs_an_endpoint_that_continues_a_message() -> None:
    request = GenerationRequest(ASK, prefill="The answer is")
    with pytest.raises(InvalidRequestError, match="lab/m"):
        params(request)
    vllm = params(request, prefill="vllm")
    assert vllm["messages"][-1] == {"role": "assistant", "content": "The answer is"}
    assert vllm["extra_body"] == {"continue_final_message": True, "add_generation_prompt": False}
    assert "extra_body" not in params(request, prefill="trailing")


def reply(usage_completion: int, tokens_per_choice: list[int]) -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": i,
                    "finish_reason": "length",
                    "message": {"role": "assistant", "content": "a" * k},
                    "logprobs": {
                        "content": [
                            {"token": "a", "logprob": -0.1, "bytes": [97], "top_logprobs": []}
                        ]
                        * k
                    },
                }
                for i, k in enumerate(tokens_per_choice)
            ],
            "usage": {
                "prompt_tokens": 7,
                "completion_tokens": usage_completion,
                "total_tokens": 7 + usage_completion,
            },
        }
    )


def test_an_under_reported_reply_is_counted_per_choice() -> None:
    choices, usage = parse_reply(reply(3, [3, 5]), GenerationRequest(ASK), offset=2, counted=True)
    assert [c.index for c in choices] == [2, 3]
    assert [c.completion_tokens for c in choices] == [3, 5]
    assert usage.completion_tokens == 8 and usage.prompt_tokens == 7
    assert all(c.logprobs is None for c in choices)  # counted, not asked for
    _, reported = parse_reply(reply(3, [3, 5]), GenerationRequest(ASK), offset=0, counted=False)
    assert reported.completion_tokens == 3


def test_sdk_errors_map_to_typed_ponder_errors() -> None:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")

    def status(code: int) -> httpx.Response:
        return httpx.Response(code, request=request, json={"error": {"message": "no"}})

    timeout = map_openai_error(openai.APITimeoutError(request=request), "lab/m")
    assert isinstance(timeout, BackendTimeoutError) and "lab/m" in timeout.message
    missing = openai.NotFoundError("gone", response=status(404), body=None)
    assert isinstance(map_openai_error(missing, "lab/m"), ModelNotFoundError)
    bad = openai.BadRequestError("bad", response=status(400), body=None)
    assert isinstance(map_openai_error(bad, "lab/m"), InvalidRequestError)
    busy = openai.RateLimitError("slow down", response=status(429), body=None)
    assert isinstance(map_openai_error(busy, "lab/m"), BackendUnavailableError)
