"""Token confidence from a path's logprobs (DeepConf, Fu et al. 2025).

A token's confidence is the negative mean log-probability of its top-k candidates; a path's
group confidence is that averaged over a sliding window of tokens, and its lowest group
confidence is the minimum over windows (a path that gets lost anywhere scores low).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ponder.types import TokenLogprob


def token_confidence(entry: TokenLogprob) -> float:
    values = [t.logprob for t in entry.top] or [entry.logprob]
    return -float(np.mean(values))


def mean_confidence(logprobs: Sequence[TokenLogprob] | None) -> float:
    """Mean token confidence over a whole path (0 when the path carries no logprobs)."""
    if not logprobs:
        return 0.0
    return float(np.mean([token_confidence(e) for e in logprobs]))


def lowest_group_confidence(logprobs: Sequence[TokenLogprob] | None, window: int) -> float:
    """Minimum over sliding windows of the mean token confidence (whole path if shorter)."""
    if not logprobs:
        return 0.0
    conf = np.asarray([token_confidence(e) for e in logprobs], dtype=np.float64)
    if len(conf) <= window:
        return float(conf.mean())
    sums = np.convolve(conf, np.ones(window), mode="valid") / window
    return float(sums.min())


def keep_threshold(confidences: Sequence[float], keep_percent: float) -> float:
    """The confidence above which the top ``keep_percent`` of values lie."""
    return float(np.percentile(np.asarray(confidences), 100.0 - keep_percent))
