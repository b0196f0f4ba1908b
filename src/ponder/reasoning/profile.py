"""The adaptive controller's profile: thresholds and the escalation ladder per effort level.

A profile is a JSON file that ``ponder calibrate`` fits on a calibration split; the server
loads it. Everything the controller decides comes from here, so changing behaviour never
needs a code change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ponder.errors import ConfigError, InvalidRequestError

Effort = Literal["minimal", "low", "medium", "high", "xhigh"]
FirstPass = Literal["cot", "program"]


class Rung(BaseModel):
    """One step up the ladder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["vote", "program", "escalate"]
    # vote: sample `window` more paths at a time, up to `max_n`, until the Beta test passes.
    window: int = Field(default=4, ge=1, le=32)
    max_n: int = Field(default=8, ge=1, le=64)
    # program: `n` program-aided solutions join the vote with this weight each.
    n: int = Field(default=2, ge=1, le=16)
    weight: float = Field(default=1.0, gt=0.0, le=10.0)
    # escalate: ask this model (routed and policy-checked like any request).
    model: str | None = None


class EffortProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # What answers first: one greedy chain of thought, or one greedy program (for code
    # models that compute more reliably than they reason in prose).
    first_pass: FirstPass = "cot"
    # How many sampled chain-of-thought votes the first pass's answer is worth when the
    # controller climbs (a code model's greedy program is often worth more than one path).
    first_weight: float = Field(default=1.0, gt=0.0, le=10.0)
    # Accept the first pass outright when its answer was extracted and its confidence
    # (mean negative top-k logprob, DeepConf's token confidence) reaches this.
    accept_confidence: float = Field(default=float("inf"), ge=0.0)
    # Stop climbing once P(leader beats runner-up) under Beta(a+1, b+1) reaches this.
    stop_probability: float = Field(default=0.95, gt=0.5, lt=1.0)
    ladder: tuple[Rung, ...] = ()
    budget_tokens: int | None = Field(default=None, ge=1)
    max_tokens: int = Field(default=768, ge=16, le=32768)
    top_logprobs: int = Field(default=5, ge=1, le=20)


class ChatEffort(BaseModel):
    """Chat and free-form requests at one level: one direct greedy answer, accepted when its
    token confidence reaches ``accept_confidence``; below it, ``samples`` more answers are
    drawn and the model picks the one most consistent with the rest (universal
    self-consistency)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accept_confidence: float = Field(default=0.0, ge=0.0)
    samples: int = Field(default=0, ge=0, le=16)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=512, ge=16, le=32768)
    top_logprobs: int = Field(default=5, ge=1, le=20)


class CodeEffort(BaseModel):
    """Code requests at one level: one greedy program, checked against the request's own tests
    (doctests, asserts, worked examples) in the sandbox; where it fails one, ``samples``
    more are drawn and the one that passes the most is kept (test-driven best-of-n)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    samples: int = Field(default=0, ge=0, le=16)
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    max_tokens: int = Field(default=768, ge=16, le=32768)


class AutoProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    model: str | None = None
    calibration: dict[str, object] = Field(default_factory=dict)  # data, rows, command, results
    # Questions with a checkable answer (the ladder), per level; its keys are the levels.
    efforts: dict[str, EffortProfile]
    # The other kinds per level; a level missing here gets the defaults (one greedy answer).
    chat: dict[str, ChatEffort] = Field(default_factory=dict)
    code: dict[str, CodeEffort] = Field(default_factory=dict)

    def chat_effort(self, name: str) -> ChatEffort:
        self.effort(name)  # an unknown level is a 400 for every kind
        return self.chat.get(name, ChatEffort())

    def code_effort(self, name: str) -> CodeEffort:
        self.effort(name)
        return self.code.get(name, CodeEffort())

    def effort(self, name: str) -> EffortProfile:
        """The level a request named; an unknown one is the request's mistake (a 400)."""
        if name not in self.efforts:
            raise InvalidRequestError(
                f"the auto profile has no effort level {name!r}; it has {', '.join(self.efforts)}",
                param="ponder.effort",
            )
        return self.efforts[name]


def load_profile(path: Path) -> AutoProfile:
    try:
        return AutoProfile.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the auto profile {path}: {exc}") from exc


def builtin_profile() -> AutoProfile:
    """The profile shipped with Ponder (``ponder/data/auto_profile.json``)."""
    return load_profile(Path(__file__).resolve().parent.parent / "data" / "auto_profile.json")
