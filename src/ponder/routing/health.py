"""What the router knows of each deployment: calls in flight, latency, recent failures,
cooldowns and this minute's requests and tokens.

A deployment that fails ``allowed_fails`` times within ``fail_window`` seconds is cooled
down for ``cooldown_time`` seconds: while another deployment can serve, it is not chosen. One
that answered with ``Retry-After`` is not tried again before that time. The state belongs to
one :class:`Health` (one per router, so per gateway), kept only for configured deployments,
and is visible at ``GET /v1/deployments`` and in ``/metrics``.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ponder.config import RoutingSettings
from ponder.routing.catalog import Deployment

# The weight of the newest sample in the latency average.
LATENCY_WEIGHT = 0.3
MINUTE = 60.0


@dataclass(slots=True)
class DeploymentState:
    in_flight: int = 0
    latency: float | None = None  # seconds, an exponential moving average of successes
    requests: int = 0
    failures: int = 0
    cooldowns: int = 0
    cooled_until: float = 0.0
    not_before: float = 0.0  # a Retry-After the endpoint asked for
    last_error: str | None = None
    recent_failures: deque[float] = field(default_factory=deque)
    minute_requests: deque[float] = field(default_factory=deque)
    minute_tokens: deque[tuple[float, int]] = field(default_factory=deque)


class Health:
    def __init__(self, settings: RoutingSettings) -> None:
        self.settings = settings
        self._states: dict[str, DeploymentState] = {}

    def state(self, deployment: Deployment) -> DeploymentState:
        return self._states.setdefault(deployment.id, DeploymentState())

    def available(self, deployment: Deployment, now: float | None = None) -> bool:
        """Not cooled down, not asked to wait, and under its rpm and tpm this minute."""
        now = time.monotonic() if now is None else now
        s = self.state(deployment)
        if s.cooled_until > now or s.not_before > now:
            return False
        _trim(s, now)
        if deployment.rpm is not None and len(s.minute_requests) >= deployment.rpm:
            return False
        return deployment.tpm is None or sum(t for _, t in s.minute_tokens) < deployment.tpm

    def begin(self, deployment: Deployment) -> float:
        s = self.state(deployment)
        now = time.monotonic()
        s.in_flight += 1
        s.requests += 1
        s.minute_requests.append(now)
        return now

    def succeeded(self, deployment: Deployment, started: float, tokens: int) -> None:
        s = self.state(deployment)
        now = time.monotonic()
        s.in_flight -= 1
        seconds = now - started
        s.latency = (
            seconds
            if s.latency is None
            else (1 - LATENCY_WEIGHT) * s.latency + LATENCY_WEIGHT * seconds
        )
        if tokens:
            s.minute_tokens.append((now, tokens))

    def ended(self, deployment: Deployment) -> None:
        """A call that neither succeeded nor failed on the deployment's account (cancelled,
        or refused as the client's own mistake)."""
        self.state(deployment).in_flight -= 1

    def failed(
        self, deployment: Deployment, error: str, *, retry_after: float | None = None
    ) -> bool:
        """Count a failure; True if it cooled the deployment down."""
        s = self.state(deployment)
        now = time.monotonic()
        s.in_flight -= 1
        s.failures += 1
        s.last_error = error
        if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
            # Capped: an endpoint cannot switch itself off for longer than a cooldown.
            longest = max(self.settings.cooldown_time, self.settings.retry_after_max)
            s.not_before = max(s.not_before, now + min(retry_after, longest))
        s.recent_failures.append(now)
        while s.recent_failures and s.recent_failures[0] < now - self.settings.fail_window:
            s.recent_failures.popleft()
        # Calls that chose it before it cooled down may still fail on it: they neither count
        # another cooldown nor extend this one.
        cooling = s.cooled_until > now
        if not cooling and len(s.recent_failures) >= max(self.settings.allowed_fails, 1):
            s.cooled_until = now + self.settings.cooldown_time
            s.cooldowns += 1
            s.recent_failures.clear()
            return True
        return False

    def snapshot(self, deployment: Deployment) -> dict[str, Any]:
        now = time.monotonic()
        s = self.state(deployment)
        _trim(s, now)
        return {
            "in_flight": s.in_flight,
            "latency_seconds": s.latency,
            "requests": s.requests,
            "failures": s.failures,
            "cooldowns": s.cooldowns,
            "cooling_down": s.cooled_until > now,
            "cooldown_left_seconds": max(s.cooled_until - now, 0.0),
            "retry_after_seconds": max(s.not_before - now, 0.0),
            "requests_this_minute": len(s.minute_requests),
            "tokens_this_minute": sum(t for _, t in s.minute_tokens),
            "last_error": s.last_error,
        }


def _trim(s: DeploymentState, now: float) -> None:
    while s.minute_requests and s.minute_requests[0] < now - MINUTE:
        s.minute_requests.popleft()
    while s.minute_tokens and s.minute_tokens[0][0] < now - MINUTE:
        s.minute_tokens.popleft()
