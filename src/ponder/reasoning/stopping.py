"""When a vote is settled: stopping rules for sampling in windows.

* ``beta``: with ``a`` votes for the leader and ``b`` for the runner-up, stop when
  P(p_leader > p_runner_up) under Beta(a+1, b+1) exceeds the threshold.
* ``dirichlet``: the same question over all answers, under Dirichlet(counts + 1), estimated
  with a fixed-seed Monte Carlo.
* ``esc``: stop when every answer in the latest window is the same (the window rule of
  Early-Stopping Self-Consistency).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ponder.reasoning.voting import counts


def beta_stop_probability(leader: int, runner_up: int) -> float:
    """P(p1 > p2) for (p1, p2) ~ Beta(leader+1, runner_up+1) on the two-answer simplex.

    For integer parameters, I_x(a, b) = P(Binomial(a+b-1, x) >= a); at x = 1/2 this gives
    P(p1 <= 1/2) exactly, with no numerical integration.
    """
    a, b = leader + 1, runner_up + 1
    n = a + b - 1
    below: float = sum(math.comb(n, k) for k in range(a, n + 1)) / 2**n
    return 1.0 - below


def dirichlet_stop_probability(tally: Sequence[int], samples: int = 4000, seed: int = 0) -> float:
    """P(the current leader has the largest probability) under Dirichlet(tally + 1)."""
    if len(tally) < 2:
        tally = [*tally, 0]
    alpha = np.asarray(tally, dtype=np.float64) + 1.0
    draws = np.random.default_rng(seed).dirichlet(alpha, size=samples)
    leader = int(np.argmax(alpha))
    return float(np.mean(np.argmax(draws, axis=1) == leader))


def should_stop(
    rule: str, answers: Sequence[str | None], window: Sequence[str | None], threshold: float
) -> tuple[bool, float]:
    """Whether to stop, and the confidence the rule computed."""
    tally = sorted(counts(answers).values(), reverse=True)
    if not tally:
        return False, 0.0
    if rule == "esc":
        same = len(window) > 0 and window[0] is not None and all(a == window[0] for a in window)
        return same, 1.0 if same else 0.0
    if rule == "dirichlet":
        confidence = dirichlet_stop_probability(tally)
    else:
        confidence = beta_stop_probability(tally[0], tally[1] if len(tally) > 1 else 0)
    return confidence >= threshold, confidence
