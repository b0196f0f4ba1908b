"""Routing strategies: the order a group's deployments are tried in.

Each takes the allowed deployments and the router's :class:`~ponder.routing.health.Health`
and returns them in the order to try. A registry maps the configured name to the function:

* ``weighted``: a weighted shuffle by ``weight`` (LiteLLM's ``simple-shuffle``);
* ``least-busy``: fewest calls in flight first;
* ``latency``: lowest average latency first (one never measured goes first, to learn it);
* ``lowest-cost``: cheapest (prompt + completion price per 1M tokens) first, unpriced last.

Ties are broken at random, so equal deployments share the load. Deployments that are cooled
down, asked to wait (Retry-After) or over their rpm/tpm go after all the others: they are
tried only if every healthy one fails.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from ponder.config import RoutingStrategyName
from ponder.routing.catalog import Deployment
from ponder.routing.health import Health

Order = Callable[[list[Deployment], Health, random.Random], list[Deployment]]


def weighted(candidates: list[Deployment], health: Health, rng: random.Random) -> list[Deployment]:
    # Efraimidis-Spirakis: sorting by u ** (1 / w) draws without replacement by weight.
    return sorted(candidates, key=lambda d: rng.random() ** (1.0 / d.weight), reverse=True)


def least_busy(
    candidates: list[Deployment], health: Health, rng: random.Random
) -> list[Deployment]:
    return sorted(candidates, key=lambda d: (health.state(d).in_flight, rng.random()))


def lowest_latency(
    candidates: list[Deployment], health: Health, rng: random.Random
) -> list[Deployment]:
    return sorted(candidates, key=lambda d: (health.state(d).latency or 0.0, rng.random()))


def lowest_cost(
    candidates: list[Deployment], health: Health, rng: random.Random
) -> list[Deployment]:
    def cost(d: Deployment) -> float:
        return d.price.prompt + d.price.completion if d.price is not None else float("inf")

    return sorted(candidates, key=lambda d: (cost(d), rng.random()))


STRATEGIES: Mapping[RoutingStrategyName, Order] = {
    "weighted": weighted,
    "least-busy": least_busy,
    "latency": lowest_latency,
    "lowest-cost": lowest_cost,
}


def ordered(
    strategy: RoutingStrategyName,
    candidates: list[Deployment],
    health: Health,
    rng: random.Random,
) -> list[Deployment]:
    """``candidates`` in the order to try: the strategy's order, unavailable ones last."""
    if len(candidates) <= 1:
        return candidates
    ranked = STRATEGIES[strategy](candidates, health, rng)
    return [d for d in ranked if health.available(d)] + [
        d for d in ranked if not health.available(d)
    ]
