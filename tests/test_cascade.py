"""The cascade strategy: the cheap model's confident answer stands, an unsure one goes to
the next stronger model, and a stronger model that policy denies is never reached."""

from __future__ import annotations

from ponder.backends.scripted import Reply, ScriptedBackend
from ponder.config import PonderConfig
from ponder.gateway import Gateway
from ponder.reasoning.strategies.cascade import confidence
from ponder.routing.registry import BackendRegistry
from ponder.types import TokenLogprob
from tests.strategy_helpers import solution


def gateway(models: dict[str, ScriptedBackend], deny: tuple[str, ...] = ()) -> Gateway:
    config = PonderConfig(default_model="cheap", trace_db=":memory:", deny_models=deny)
    registry = BackendRegistry(config)
    for name, backend in models.items():
        registry.register(name, backend)
    return Gateway(config, registry=registry)


CASCADE = {"strategy": "cascade", "models": ["mid", "strong"], "min_confidence": 0.8}


def sure(answer: object) -> Reply:
    return Reply(solution(answer), [-0.01] * 20)  # each token p ~ 0.99


def unsure(answer: object) -> Reply:
    return Reply(solution(answer), [-0.7] * 20)  # each token p ~ 0.5


async def test_a_confident_cheap_answer_stands() -> None:
    cheap, mid, strong = (ScriptedBackend.cycle([r]) for r in (sure(1), sure(2), sure(3)))
    async with gateway({"cheap": cheap, "mid": mid, "strong": strong}) as gw:
        reply = await gw.chat("Which?", strategy=CASCADE)
        assert "The answer is: 1" in reply.text
        assert reply.details[0]["answered_by"] == "request model"
        assert mid.calls == [] and strong.calls == []


async def test_an_unsure_answer_climbs_until_one_is_sure() -> None:
    cheap, mid, strong = (ScriptedBackend.cycle([r]) for r in (unsure(1), unsure(2), unsure(3)))
    async with gateway({"cheap": cheap, "mid": mid, "strong": strong}) as gw:
        reply = await gw.chat("Which?", strategy=CASCADE)
        # Nobody was sure: the strongest one's answer stands.
        assert "The answer is: 3" in reply.text
        assert reply.details[0] == {"answered_by": "strong", "rungs": 3}
        assert len(reply.records) == 3
        assert reply.usage.total_tokens == sum(r.usage.total_tokens for r in reply.records)


async def test_a_denied_stronger_model_is_skipped_and_never_reached() -> None:
    cheap, mid, strong = (ScriptedBackend.cycle([r]) for r in (unsure(1), sure(2), sure(3)))
    async with gateway({"cheap": cheap, "mid": mid, "strong": strong}, deny=("mid",)) as gw:
        reply = await gw.chat("Which?", strategy=CASCADE)
        assert "The answer is: 3" in reply.text
        assert mid.calls == []
        assert reply.trace is not None
        assert any(n["kind"] == "escalation skipped" for n in reply.trace.notes)


def test_confidence_is_the_geometric_mean_token_probability() -> None:
    entries = tuple(TokenLogprob(token="x", logprob=lp) for lp in (-0.1, -0.3))
    assert abs((confidence(entries) or 0) - 0.8187) < 1e-3
    assert confidence(None) is None
