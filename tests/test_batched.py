"""The batched engine on real models: paths, cancellation, stops, concurrency, limits."""

from __future__ import annotations

import asyncio
import math

import pytest

from ponder.backends.embedded import EmbeddedBackend
from ponder.engine.reference import generate_one
from ponder.errors import ContextOverflowError
from ponder.types import GenerationRequest, Message, SamplingParams

STORY = (Message("user", "Write a short story about a cat."),)
COUNT = (Message("user", "Count from 1 to 20, separated by commas."),)


def request(
    messages: tuple[Message, ...] = STORY, n: int = 1, **sampling: object
) -> GenerationRequest:
    return GenerationRequest(messages=messages, n=n, sampling=SamplingParams(**sampling))  # type: ignore[arg-type]


async def test_paths_differ_under_sampling(tiny_backend: EmbeddedBackend) -> None:
    result = await tiny_backend.generate(request(n=4, temperature=1.0, max_tokens=24, seed=7))
    texts = [c.text for c in result.choices]
    assert len(texts) == 4
    assert len(set(texts)) > 1


async def test_paths_identical_at_temperature_zero(tiny_backend: EmbeddedBackend) -> None:
    result = await tiny_backend.generate(request(n=4, temperature=0.0, max_tokens=24))
    texts = [c.text for c in result.choices]
    assert texts[0]
    assert texts == [texts[0]] * 4


async def test_prompt_is_evaluated_once_for_n_paths(tiny_backend: EmbeddedBackend) -> None:
    before = tiny_backend.engine.stats.prompt_tokens
    result = await tiny_backend.generate(request(n=6, temperature=0.8, max_tokens=8, seed=1))
    evaluated = tiny_backend.engine.stats.prompt_tokens - before
    assert result.usage.prompt_tokens == evaluated == tiny_backend.count_prompt_tokens(request())
    assert result.usage.completion_tokens == sum(c.completion_tokens for c in result.choices)
    assert all(0 < c.completion_tokens <= 8 for c in result.choices)


async def test_n1_with_seed_equals_the_simple_path(tiny_backend: EmbeddedBackend) -> None:
    params = dict(temperature=0.9, top_p=0.95, top_k=40, max_tokens=32, seed=1234)
    result = await tiny_backend.generate(request(**params))  # type: ignore[arg-type]
    prompt = tiny_backend.model.chat_tokens(STORY)
    # The engine is idle between requests, so the simple path can borrow its context.
    text, tokens, reason = generate_one(
        tiny_backend.model, prompt, SamplingParams(**params), seed=1234
    )  # type: ignore[arg-type]
    assert result.choices[0].text == text
    assert result.choices[0].completion_tokens == tokens
    assert result.choices[0].finish_reason == reason


async def test_cancel_one_path_mid_stream(tiny_backend: EmbeddedBackend) -> None:
    stream = tiny_backend.stream(
        request(n=3, temperature=0.8, max_tokens=64, seed=3, ignore_eos=True)
    )
    seen = [0, 0, 0]
    finish: dict[int, tuple[str, int]] = {}
    async for delta in stream:
        if delta.text:
            seen[delta.index] += 1
        if seen[1] == 4 and 1 not in finish:
            stream.cancel(1)
        if delta.finish_reason:
            finish[delta.index] = (delta.finish_reason, delta.completion_tokens or 0)
    assert finish[1][0] == "cancelled"
    assert finish[1][1] < 64
    assert finish[0] == ("length", 64)
    assert finish[2] == ("length", 64)
    assert stream.usage.completion_tokens == 64 + 64 + finish[1][1]


async def test_stop_strings_per_path(small_backend: EmbeddedBackend) -> None:
    result = await small_backend.generate(
        request(COUNT, n=3, temperature=0.0, max_tokens=80, stop=("7",))
    )
    for choice in result.choices:
        assert choice.finish_reason == "stop"
        assert "7" not in choice.text
        assert "6" in choice.text


async def test_stop_string_never_leaks_into_a_stream(small_backend: EmbeddedBackend) -> None:
    stream = small_backend.stream(request(COUNT, temperature=0.0, max_tokens=80, stop=("5, 6",)))
    text = "".join([d.text async for d in stream])
    assert text.rstrip().endswith("4,")
    assert "5" not in text


async def test_concurrent_requests_do_not_corrupt_each_other(
    small_backend: EmbeddedBackend,
) -> None:
    # Prompts with one clear greedy continuation: batching changes float summation order, which
    # may flip near-ties in open-ended text, but must never mix two requests' sequences.
    months = (Message("user", "List the twelve months of the year, separated by commas."),)
    a = request(months, n=2, temperature=0.0, max_tokens=40)
    b = request(COUNT, n=3, temperature=0.0, max_tokens=40)
    alone_a = await small_backend.generate(a)
    alone_b = await small_backend.generate(b)
    steps = small_backend.engine.stats.steps
    together_a, together_b = await asyncio.gather(
        small_backend.generate(a), small_backend.generate(b)
    )
    shared_steps = small_backend.engine.stats.steps - steps
    assert [c.text for c in together_a.choices] == [c.text for c in alone_a.choices]
    assert [c.text for c in together_b.choices] == [c.text for c in alone_b.choices]
    assert "December" in together_a.choices[0].text and "12" in together_b.choices[0].text
    # They really ran together: fewer decode steps than one after the other.
    longest = max(c.completion_tokens for c in (*alone_a.choices, *alone_b.choices))
    total = max(c.completion_tokens for c in alone_a.choices) + max(
        c.completion_tokens for c in alone_b.choices
    )
    assert shared_steps < total
    assert shared_steps >= longest


async def test_more_paths_than_live_sequences_run_in_waves(tiny_backend: EmbeddedBackend) -> None:
    width = tiny_backend.engine.max_sequences
    result = await tiny_backend.generate(
        request(n=width + 2, temperature=0.7, max_tokens=4, seed=5)
    )
    assert [c.index for c in result.choices] == list(range(width + 2))
    # Two jobs: the prompt was evaluated twice, and usage says so.
    assert result.usage.prompt_tokens == 2 * tiny_backend.count_prompt_tokens(request())


async def test_context_overflow_is_refused_before_decoding(tiny_backend: EmbeddedBackend) -> None:
    steps = tiny_backend.engine.stats.steps
    with pytest.raises(ContextOverflowError) as info:
        tiny_backend.stream(request(max_tokens=tiny_backend.model.n_ctx_seq))
    assert info.value.param == "max_tokens"
    huge = (Message("user", "word " * 5000),)
    with pytest.raises(ContextOverflowError):
        await tiny_backend.generate(request(huge, max_tokens=8))
    assert tiny_backend.engine.stats.steps == steps


async def test_logprobs_come_from_the_sampled_distribution(tiny_backend: EmbeddedBackend) -> None:
    result = await tiny_backend.generate(
        request(n=2, temperature=0.0, max_tokens=6, logprobs=True, top_logprobs=5)
    )
    for choice in result.choices:
        assert choice.logprobs is not None
        assert len(choice.logprobs) == choice.completion_tokens
        for entry in choice.logprobs:
            assert len(entry.top) == 5
            values = [t.logprob for t in entry.top]
            assert values == sorted(values, reverse=True)
            assert sum(math.exp(v) for v in values) <= 1.0 + 1e-4
            # Greedy: the chosen token is the most likely one.
            assert entry.logprob == pytest.approx(values[0], abs=1e-5)


async def test_json_schema_constrains_the_output(small_backend: EmbeddedBackend) -> None:
    import json

    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    req = GenerationRequest(
        messages=(Message("user", "Give a JSON object for a person named Ada who is 36."),),
        sampling=SamplingParams(temperature=0.0, max_tokens=40),
        json_schema=schema,
    )
    result = await small_backend.generate(req)
    data = json.loads(result.text)
    assert set(data) == {"name", "age"}
    assert isinstance(data["age"], int)


async def test_cancel_while_queued_takes_effect_at_admission(tiny_backend: EmbeddedBackend) -> None:
    width = tiny_backend.engine.max_sequences
    blocker = tiny_backend.stream(
        request(n=width, temperature=0.5, max_tokens=16, ignore_eos=True, seed=2)
    )
    queued = tiny_backend.stream(
        request(n=2, temperature=0.5, max_tokens=16, ignore_eos=True, seed=3)
    )
    queued.cancel(1)  # the job is still waiting for free sequences
    finals: dict[int, tuple[str, int]] = {}
    async for delta in queued:
        if delta.finish_reason:
            finals[delta.index] = (delta.finish_reason, delta.completion_tokens or 0)
    assert finals[0] == ("length", 16)
    assert finals[1] == ("cancelled", 0)
    assert queued.usage.completion_tokens == 16
    assert [d async for d in blocker]


async def test_load_shows_running_and_queued_work(tiny_backend: EmbeddedBackend) -> None:
    engine = tiny_backend.engine
    width = engine.max_sequences
    idle = engine.load()
    assert idle.running_sequences == 0 and idle.waiting_requests == 0
    assert idle.free_sequence_slots == idle.sequence_slots == width
    assert idle.kv_cells_reserved == 0
    blocker = tiny_backend.stream(
        request(n=width, temperature=0.5, max_tokens=48, ignore_eos=True, seed=4)
    )
    queued = tiny_backend.stream(request(n=1, temperature=0.5, max_tokens=4, seed=5))
    busy = None
    async for delta in blocker:
        if delta.text:
            busy = engine.load()
            break
    assert busy is not None
    assert busy.running_requests == 1 and busy.running_sequences == width
    assert busy.free_sequence_slots == 0 and busy.waiting_requests == 1
    prompt = tiny_backend.count_prompt_tokens(request())
    assert busy.kv_cells_reserved == prompt + width * 48
    await blocker.aclose()
    assert [d async for d in queued]
    for _ in range(100):  # the engine thread frees the last slots just after finishing
        if engine.load() == idle:
            break
        await asyncio.sleep(0.01)
    assert engine.load() == idle


async def test_a_short_request_backfills_past_a_wide_one(tiny_backend: EmbeddedBackend) -> None:
    engine = tiny_backend.engine
    width = engine.max_sequences
    long = tiny_backend.stream(
        request(n=width - 2, temperature=0.5, max_tokens=300, ignore_eos=True, seed=6)
    )
    deltas = aiter(long)  # held: leaving an `async for` early would close the stream
    await anext(deltas)
    # The wide request needs every slot, so it waits for the long one to end; the short one
    # fits in the two free slots and ends long before then, so it starts at once.
    wide = tiny_backend.stream(request(n=width, temperature=0.5, max_tokens=8, seed=7))
    short = tiny_backend.generate(request(n=1, temperature=0.5, max_tokens=4, seed=8))
    overlong = tiny_backend.stream(
        request(n=2, temperature=0.5, max_tokens=400, ignore_eos=True, seed=9)
    )
    backfilled = engine.stats.backfilled
    result = await short
    assert engine.stats.backfilled == backfilled + 1
    assert result.choices[0].completion_tokens > 0
    load = engine.load()
    # The long request is still running; the overlong one would have held the head's slots
    # past that, so it waits behind the wide request.
    assert load.running_requests == 1 and load.waiting_requests == 2
    assert load.running_sequences == width - 2
    await long.aclose()
    await overlong.aclose()
    assert [d async for d in wide]
