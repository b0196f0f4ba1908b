"""Policy as data, evaluated on the deployment a name resolves to.

A :class:`Scope` stacks the policies one request is under: the operator's ``[policy]`` (with
``deny_models``), the caller's team's and key's (stored with them), and the request's own
``local-only`` mark. A deployment may be used only if every layer allows it:

* ``local_only``: only deployments with ``local = true``;
* a ``deny`` rule that matches refuses it;
* in ``mode = "allow"``, only a deployment some ``allow`` rule matches is allowed.

Rules match deployments, never the string a client sent: ``vendor``, ``region`` and
``model`` are globs compared on normalised text, and ``model`` matches the deployment's id,
its model id and its public name. So ``gpt-4o``, ``GPT‐4o#tag``, ``ponder/cot/gpt-4o`` and a
mixture-of-agents proposer named ``openai/gpt-4o`` all meet the same rule on the same
deployment. The router asks the scope at every hop: the first call, each inner call of a
strategy, proposers, escalation, each retry and each fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from ponder.config import PolicyRule, PolicySettings
from ponder.routing.catalog import Deployment
from ponder.routing.names import normalise
from ponder.types import Purpose


@dataclass(frozen=True, slots=True)
class Layer:
    label: str  # "global", "team research", "key pk-ab12", "request"
    policy: PolicySettings


@dataclass(frozen=True, slots=True)
class Scope:
    """The policies one request is under, outermost first."""

    layers: tuple[Layer, ...] = ()

    def with_layer(self, label: str, policy: PolicySettings | None) -> Scope:
        if policy is None or policy.empty:
            return self
        return Scope((*self.layers, Layer(label, policy)))

    def denial(self, deployment: Deployment, purpose: Purpose) -> str | None:
        """Why ``deployment`` may not be used for ``purpose``; None if it may."""
        for layer in self.layers:
            reason = _layer_denial(layer.policy, deployment)
            if reason is not None:
                return f"{deployment.id} is refused for this {purpose}: {reason} ({layer.label})"
        return None

    @property
    def redact(self) -> bool:
        """Whether personal data is redacted before any non-local deployment."""
        return any(layer.policy.redact for layer in self.layers)

    @property
    def local_only(self) -> bool:
        return any(layer.policy.local_only for layer in self.layers)

    def fallbacks(self, name: str) -> tuple[str, ...]:
        """This scope's own fallbacks for public ``name``: the innermost layer's first."""
        key = normalise(name)
        out: list[str] = []
        for layer in reversed(self.layers):
            out.extend(_fallbacks_of(layer.policy.fallbacks, key))
        return tuple(out)


def _layer_denial(policy: PolicySettings, d: Deployment) -> str | None:
    if policy.local_only and not d.local:
        return "only local deployments may be used"
    allowed = False
    for rule in policy.rules:
        if _matches(rule, d):
            if rule.effect == "deny":
                return f"denied by rule {_describe(rule)}"
            allowed = True
    if policy.mode == "allow" and not allowed:
        return "no allow rule matches it"
    return None


def _matches(rule: PolicyRule, d: Deployment) -> bool:
    if rule.local is not None and rule.local != d.local:
        return False
    if rule.vendor is not None and not _glob(d.vendor, rule.vendor):
        return False
    if rule.region is not None and (d.region is None or not _glob(d.region, rule.region)):
        return False
    return rule.model is None or any(
        _glob(name, rule.model) for name in (d.id, d.model, d.model_name)
    )


def _glob(value: str, pattern: str) -> bool:
    return fnmatchcase(normalise(value), normalise(pattern))


def _fallbacks_of(table: Mapping[str, tuple[str, ...]], key: str) -> tuple[str, ...]:
    for name, targets in table.items():
        if normalise(name) == key:
            return targets
    return ()


def _describe(rule: PolicyRule) -> str:
    parts = [
        f"{field}={value!r}"
        for field, value in (
            ("vendor", rule.vendor),
            ("model", rule.model),
            ("region", rule.region),
            ("local", rule.local),
        )
        if value is not None
    ]
    return " ".join(parts) or "(matches everything)"
