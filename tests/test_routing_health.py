"""Deployment health: cooldown after repeated failures, Retry-After, rpm and tpm, and the
routing strategies' order over it."""

from __future__ import annotations

import random

from ponder.config import Price, RoutingSettings
from ponder.routing.catalog import Deployment
from ponder.routing.choose import ordered
from ponder.routing.health import Health


def deployment(name: str, **fields: object) -> Deployment:
    base = {"model_name": "m", "model": "m", "kind": "remote", "vendor": "v", "local": False}
    return Deployment(id=name, **{**base, **fields})  # type: ignore[arg-type]


def test_repeated_failures_cool_a_deployment_down() -> None:
    health = Health(RoutingSettings(allowed_fails=2, cooldown_time=60))
    d = deployment("a")
    health.begin(d)
    assert not health.failed(d, "boom")
    health.begin(d)
    assert health.failed(d, "boom")
    snapshot = health.snapshot(d)
    assert snapshot["cooling_down"] and snapshot["cooldowns"] == 1 and snapshot["in_flight"] == 0
    assert not health.available(d)


def test_retry_after_and_rpm_make_a_deployment_wait() -> None:
    health = Health(RoutingSettings(allowed_fails=10))
    d = deployment("a", rpm=1)
    health.begin(d)
    health.failed(d, "429", retry_after=30.0)
    assert not health.available(d)
    assert health.snapshot(d)["retry_after_seconds"] > 29
    e = deployment("b", rpm=1)
    health.succeeded(e, health.begin(e), tokens=5)
    assert not health.available(e)  # one request this minute, of one


def test_strategies_order_and_unavailable_go_last() -> None:
    health = Health(RoutingSettings(allowed_fails=1))
    cheap = deployment("cheap", price=Price(0.1, 0.2))
    dear = deployment("dear", price=Price(5, 15))
    unknown = deployment("unknown")
    rng = random.Random(1)
    assert ordered("lowest-cost", [unknown, dear, cheap], health, rng) == [cheap, dear, unknown]
    health.begin(dear)
    assert ordered("least-busy", [dear, cheap], health, rng) == [cheap, dear]
    health.failed(dear, "down")  # cooled down at once (allowed_fails=1)
    assert ordered("lowest-cost", [dear, cheap], health, rng)[-1] == dear
    heavy, light = deployment("heavy", weight=9.0), deployment("light", weight=1.0)
    firsts = [ordered("weighted", [light, heavy], health, rng)[0].id for _ in range(400)]
    assert 0.8 < firsts.count("heavy") / 400 < 0.97
