"""The Gateway: one request path for the server, the CLI, the bench and the library.

Pinned here over scripted backends: every model a strategy declares is resolved through the
registry and policy; usage is the sum of the call log's records, on success and on failure;
fields a named strategy cannot honour are refused, and the server's default strategy lets
such a request through to the model instead of dropping them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ponder.backends.scripted import Reply, ScriptedBackend
from ponder.config import PonderConfig, Price, RoutingSettings
from ponder.errors import (
    BackendError,
    BackendUnavailableError,
    InvalidRequestError,
    PolicyError,
    UnsupportedFeatureError,
)
from ponder.gateway import ChatCall, Gateway
from ponder.gateway.identity import Caller
from ponder.reasoning.base import Services
from ponder.reasoning.profile import AutoProfile, EffortProfile, Rung
from ponder.reasoning.runner import StrategySpec
from ponder.routing.registry import BackendRegistry
from ponder.types import GenerationRequest, SamplingParams
from tests.strategy_helpers import ask, solution

AUTO_TO_BIG = AutoProfile(
    efforts={
        "medium": EffortProfile(
            accept_confidence=100.0,  # never accepted at once: the ladder always runs
            ladder=(Rung(kind="escalate", model="big", weight=3.0),),
            max_tokens=64,
            top_logprobs=2,
        )
    }
)


def gateway(
    models: dict[str, ScriptedBackend], *, deny: tuple[str, ...] = (), default: str = "auto"
) -> Gateway:
    config = PonderConfig(
        default_model="small",
        trace_db=":memory:",
        deny_models=deny,
        default_strategy={"strategy": default} if default != "none" else None,
    )
    registry = BackendRegistry(config)
    for name, backend in models.items():
        registry.register(name, backend)
    return Gateway(config, registry=registry, services=Services(auto_profile=AUTO_TO_BIG))


def unsure(answer: object) -> Reply:
    return Reply(solution(answer), [-0.7] * 20)


async def test_the_library_face_runs_a_strategy_and_records_it() -> None:
    small = ScriptedBackend.cycle([solution(7), solution(7), solution(8)])
    async with gateway({"small": small}) as gw:
        reply = await gw.chat("How many?", strategy={"strategy": "self-consistency", "n": 3})
        assert reply.strategy == "self-consistency"
        assert "The answer is: 7" in reply.text
        assert reply.details[0]["votes"] == {"7": 2, "8": 1}
        # The reply's usage is exactly its records' sum; hidden paths count as reasoning.
        assert reply.usage.total_tokens == sum(r.usage.total_tokens for r in reply.records)
        assert reply.usage.reasoning_tokens == reply.usage.completion_tokens - 10
        row = gw.ledger.snapshot()["small"]
        assert row["requests"] == 1 and row["total_tokens"] == reply.usage.total_tokens  # type: ignore[index]
        assert reply.trace is not None
        assert await gw.trace(reply.trace.id, Caller.local()) is not None  # in the database


async def test_auto_escalation_is_resolved_by_the_gateway() -> None:
    small = ScriptedBackend.cycle([unsure(1)])
    big = ScriptedBackend.cycle([Reply(solution(2), [-0.001] * 20)])
    async with gateway({"small": small, "big": big}) as gw:
        # The default strategy: auto, medium; a checkable question climbs its ladder.
        reply = await gw.chat("What is 3 + 4?")
        assert reply.details[0]["rungs"] == ["first", "escalate:big"]
        assert len(big.calls) == 1
        assert {r.backend for r in reply.records} == {"scripted"}  # both leaf calls logged
        assert len(reply.records) == 2


async def test_a_denied_escalation_is_skipped_and_never_reached() -> None:
    small = ScriptedBackend.cycle([unsure(1)])
    big = ScriptedBackend.cycle([solution(2)])
    async with gateway({"small": small, "big": big}, deny=("big",)) as gw:
        reply = await gw.chat("What is 3 + 4?")
        assert reply.details[0]["kind"] == "checkable" and reply.details[0]["rungs"] == ["first"]
        assert big.calls == []


async def test_mixture_of_agents_proposers_resolve_through_policy() -> None:
    a = ScriptedBackend.cycle([solution(3)])
    b = ScriptedBackend.cycle([solution(3)])
    judge = ScriptedBackend.cycle([solution(3)])
    choice = {"strategy": "mixture-of-agents", "proposers": ["a", "b"]}
    async with gateway({"small": judge, "a": a, "b": b}) as gw:
        reply = await gw.chat("Sum?", strategy=choice)
        assert "The answer is: 3" in reply.text
        assert len(a.calls) == 1 and len(b.calls) == 1
    async with gateway({"small": judge, "a": a, "b": b}, deny=("b",)) as gw:
        with pytest.raises(PolicyError):
            await gw.chat("Sum?", strategy=choice)
        assert len(b.calls) == 1  # the denied proposer was never called


async def test_the_cli_and_bench_path_resolve_the_same_models() -> None:
    a = ScriptedBackend.cycle([solution(4)])
    judge = ScriptedBackend.cycle([solution(4)])
    spec = StrategySpec.parse({"strategy": "mixture-of-agents", "proposers": ["a"]})
    async with gateway({"small": judge, "a": a}) as gw:
        result = await gw.solve(spec, ask(), model="small")
        assert result.answer == "4" and len(a.calls) == 1


async def test_a_failure_carries_and_records_what_was_spent() -> None:
    calls = {"n": 0}

    def script(request: GenerationRequest, index: int) -> str:
        calls["n"] += 1
        if calls["n"] > 1:
            raise BackendError("endpoint went away")
        return "Step 2 is wrong.\nVERDICT: WRONG"

    async with gateway({"small": ScriptedBackend(script)}) as gw:
        with pytest.raises(BackendError) as raised:
            await gw.chat("Check it.", strategy="verify-refine")
        spent = raised.value.usage
        assert spent is not None and spent.completion_tokens > 0
        row = gw.ledger.snapshot()["small"]
        assert row["failed"] == 1 and row["total_tokens"] == spent.total_tokens  # type: ignore[index]


async def test_a_named_strategy_refuses_what_it_cannot_honour() -> None:
    small = ScriptedBackend.cycle([solution(1)])
    request = GenerationRequest(
        messages=ask().messages, sampling=SamplingParams(logprobs=True, top_logprobs=2)
    )
    async with gateway({"small": small}) as gw:
        with pytest.raises(UnsupportedFeatureError, match="cannot honour logprobs"):
            await gw.complete(ChatCall("ponder/cot/small", request))
        assert small.calls == []
        # Under the server's default strategy the same request goes to the model as sent.
        reply = await gw.complete(ChatCall("small", request))
        assert reply.strategy is None
        assert reply.choices[0].logprobs
        assert small.calls[0].sampling.logprobs


async def test_from_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "ponder.toml"
    path.write_text('default_strategy = "none"\ntrace_db = ":memory:"\n')
    async with Gateway.from_config(path) as gw:
        assert gw.config.default_strategy is None
        assert "auto" in gw.strategies


def test_ponder_ask_is_the_one_line_library_face(tmp_path: Path) -> None:
    import ponder
    from tests.fake_openai import make_app, serve_app

    with serve_app(make_app()) as url:
        path = tmp_path / "ponder.toml"
        path.write_text(
            'trace_db = ":memory:"\n'
            f'[providers.up]\nbase_url = "{url}/vllm/v1"\nmodels = ["served"]\n'
        )
        reply = ponder.ask("What is 40 + 2?", model="served", strategy="cot", config=str(path))
    assert reply.strategy == "cot" and "The answer is 4" in reply.text
    assert reply.usage.calls == 1 and reply.usage.total_tokens > 0


async def test_a_stream_that_fails_to_open_still_settles_its_reservation() -> None:
    from ponder.backends.base import Capabilities
    from ponder.errors import ContextOverflowError
    from ponder.types import Completion

    class Refuses:
        name = "refuses"
        capabilities = Capabilities()

        async def generate(self, request: GenerationRequest) -> Completion:
            raise ContextOverflowError("too long")

        def stream(self, request: GenerationRequest) -> Any:
            raise ContextOverflowError("too long")

        async def aclose(self) -> None:
            pass

    config = PonderConfig(
        default_model="r", database_url="sqlite:///:memory:", default_strategy=None
    )
    registry = BackendRegistry(config)
    registry.register("r", Refuses())  # type: ignore[arg-type]
    async with Gateway(config, registry=registry) as gw:
        store = gw.accounts.store
        assert store is not None
        await store.create_team("t")
        key, secret = await store.create_key("t", "k")
        await store.set_budget("key", key.id, unit="tokens", period="total", limit=10_000)
        caller = await gw.accounts.caller(secret)
        request = GenerationRequest(messages=ask().messages, sampling=SamplingParams(max_tokens=64))
        call = ChatCall("r", request, caller=caller)
        plan = await gw.plan(call)
        assert plan.admission.reservation is not None
        with pytest.raises(ContextOverflowError):
            await gw.stream(call, plan)
        (budget,) = await store.budgets(key)
        assert budget.reserved == 0 and budget.spent == 0  # released, nothing charged
        (row,) = await store.usage(group_by="key", since=None, until=None)
        assert row["requests"] == 1 and row["ok"] == 0


async def test_a_dollar_budget_is_priced_by_the_deployments() -> None:
    """``auto`` with ``budget_usd`` and no prices of its own takes the deployments' prices;
    a model with no price cannot be held to dollars."""
    small = ScriptedBackend.cycle([Reply(solution(7), [-0.001] * 20)])
    config = PonderConfig(
        default_model="small",
        trace_db=":memory:",
        prices={"small": Price(1.0, 2.0)},
    )
    registry = BackendRegistry(config)
    registry.register("small", small, vendor="cloud", local=False)
    registry.register("unpriced", ScriptedBackend.cycle([solution(7)]), local=False)
    assert registry.model_price("small") == (1.0, 2.0)
    assert registry.model_price("unpriced") is None
    choice = {"strategy": "auto", "effort": "minimal", "budget_usd": 0.5}
    async with Gateway(config, registry=registry) as gw:
        reply = await gw.chat("How many?", strategy=choice)
        assert "7" in reply.text
        with pytest.raises(InvalidRequestError, match="needs prices"):
            await gw.chat("How many?", model="unpriced", strategy=choice)


async def test_routing_decisions_are_in_the_ledger_row(tmp_path: Path) -> None:
    """A deployment policy skipped, a failed attempt and the fallback taken are noted in
    the request's ledger row and its trace; a refused request's row says why."""

    class Down(ScriptedBackend):
        async def generate(self, request: GenerationRequest) -> Any:
            raise BackendUnavailableError("down")

        def stream(self, request: GenerationRequest) -> Any:
            raise BackendUnavailableError("down")

    config = PonderConfig(
        default_model="bad",
        database_url=f"sqlite:///{tmp_path}/ledger.sqlite3",
        default_strategy={"strategy": "cot"},
        deny_models=("denied",),
        routing=RoutingSettings(fallbacks={"bad": ("denied", "good")}, backoff=0.0),
    )
    registry = BackendRegistry(config)
    registry.register("bad", Down(lambda request, index: solution(1)))
    registry.register("good", ScriptedBackend.cycle([solution(2)]))
    registry.register("denied", ScriptedBackend.cycle([solution(3)]))
    async with Gateway(config, registry=registry) as gw:
        reply = await gw.chat("Which?")
        assert "The answer is: 2" in reply.text
        assert reply.trace is not None
        noted = [n["event"] for n in reply.trace.notes if n["kind"] == "routing"]
        with pytest.raises(PolicyError):
            await gw.chat("Which?", model="denied")
        store = gw.accounts.store
        assert store is not None

        def rows(conn: Any) -> list[Any]:
            query = "SELECT model, outcome, routing FROM requests ORDER BY created_at"
            return list(conn.execute(text(query)))

        served, refused = await store._db.run(rows, write=False)
    events = json.loads(served.routing)
    assert events == noted
    assert any(e.startswith("bad failed") for e in events)
    assert any("policy skipped denied" in e for e in events)
    assert "fallback from bad to good" in events
    assert refused.outcome == "client_error"
    assert "refused" in json.loads(refused.routing)[0]
