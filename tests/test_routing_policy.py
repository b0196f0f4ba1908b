"""Policy rules, matched on deployments: every layer must allow, deny wins, allow-lists,
local-only, and the text of names never matters more than the deployment behind them."""

from __future__ import annotations

from ponder.config import PolicyRule, PolicySettings, Price
from ponder.routing.catalog import Deployment
from ponder.routing.policy import Scope

OPENAI = Deployment(
    id="openai/gpt-4o",
    model_name="gpt-4o",
    model="gpt-4o-2024",
    kind="remote",
    vendor="openai",
    local=False,
    region="us",
    price=Price(),
)
HOME = Deployment(
    id="home/qwen",
    model_name="qwen",
    model="Qwen/Qwen2.5",
    kind="remote",
    vendor="vllm",
    local=True,
)


def scope(**policy: object) -> Scope:
    return Scope().with_layer("global", PolicySettings(**policy))  # type: ignore[arg-type]


def deny(**rule: object) -> PolicyRule:
    return PolicyRule(effect="deny", **rule)  # type: ignore[arg-type]


def test_a_deny_rule_matches_by_vendor_model_region_and_local() -> None:
    for rule in (
        deny(vendor="OpenAI"),
        deny(model="*GPT‐4*"),
        deny(region="u?"),
        deny(local=False),
        deny(model="gpt-4o-2024"),
        deny(model="openai/*"),
    ):
        assert scope(rules=(rule,)).denial(OPENAI, "request") is not None, rule
        assert scope(rules=(rule,)).denial(HOME, "request") is None, rule


def test_every_field_of_a_rule_must_match() -> None:
    both = scope(rules=(deny(vendor="openai", region="eu"),))
    assert both.denial(OPENAI, "request") is None


def test_allow_mode_allows_only_what_a_rule_allows_and_deny_still_wins() -> None:
    allow = scope(mode="allow", rules=(PolicyRule(effect="allow", vendor="*"), deny(local=False)))
    assert allow.denial(HOME, "proposer") is None
    assert "denied by rule" in (allow.denial(OPENAI, "proposer") or "")
    empty = scope(mode="allow")
    assert "no allow rule" in (empty.denial(HOME, "request") or "")


def test_layers_all_apply_and_say_which_refused() -> None:
    layered = (
        Scope()
        .with_layer("global", PolicySettings())
        .with_layer("team research", PolicySettings(local_only=True))
        .with_layer("key pk-1", None)
    )
    assert len(layered.layers) == 1  # empty policies add nothing
    reason = layered.denial(OPENAI, "escalation") or ""
    assert "team research" in reason and "escalation" in reason and "local" in reason
    assert layered.local_only and not layered.redact


def test_fallbacks_come_innermost_first() -> None:
    layered = (
        Scope()
        .with_layer("team", PolicySettings(fallbacks={"gpt-4o": ("a",)}))
        .with_layer("key", PolicySettings(fallbacks={"GPT-4o": ("b",)}))
    )
    assert layered.fallbacks("gpt-4o") == ("b", "a")
