"""The configuration of routing and governance: deployments (where a public model name is
served), how requests are routed among them and fall back, and the policy on what they may
reach, globally ([policy]) and per team and key (stored as JSON, read by the same parser)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from ponder.config.tables import EndpointConfig, Price, api_key_from, check_keys, parse_prices
from ponder.config.validation import Sources, build
from ponder.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class DeploymentConfig:
    """One place a public model name is served: a provider's endpoint (``provider``, or an
    endpoint of its own as in a LiteLLM ``model_list``) and the model id there, or a bundled
    model or GGUF file when both are unset. Metadata left unset comes from the provider."""

    model_name: str  # the name clients use
    model: str  # the endpoint's id for it (a bundled model's name, a GGUF path)
    provider: str | None = None
    endpoint: EndpointConfig | None = None
    id: str | None = None  # unique; default "<provider>/<model>"
    vendor: str | None = None
    region: str | None = None
    local: bool | None = None
    price: Price | None = None
    context_window: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    weight: float = 1.0


RoutingStrategyName = Literal["weighted", "least-busy", "latency", "lowest-cost"]


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    """How a deployment is chosen, retried, cooled down and fallen back from ([routing])."""

    strategy: RoutingStrategyName = "weighted"
    # Attempts after the first, across a model's deployments, before its fallbacks.
    num_retries: int = 2
    # Backoff between attempts: base * 2**attempt, capped; a Retry-After the endpoint sent
    # is honoured up to retry_after_max seconds (longer: that deployment is skipped).
    backoff: float = 0.1
    backoff_max: float = 2.0
    retry_after_max: float = 10.0
    # A deployment that fails allowed_fails times within fail_window seconds is cooled down
    # (not chosen while another is healthy) for cooldown_time seconds.
    allowed_fails: int = 3
    fail_window: float = 60.0
    cooldown_time: float = 30.0
    # Per attempt, in seconds; None: the endpoint's own timeout.
    timeout: float | None = None
    # Public name -> names tried, in order, when all its deployments fail.
    fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # ... when the prompt does not fit its context window; ... when its content filter refuses.
    context_window_fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    content_policy_fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Another name -> a public name.
    aliases: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyRule:
    """Allows or denies the deployments it matches: every field set must match (globs,
    matched case-insensitively on normalised names; ``model`` matches a deployment's id,
    its model id or its public name)."""

    effect: Literal["allow", "deny"]
    vendor: str | None = None
    model: str | None = None
    region: str | None = None
    local: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySettings:
    """Rules on the deployments a request may reach ([policy], and per team and key).
    ``mode = "deny"``: what no deny rule matches is allowed; ``"allow"``: only what an allow
    rule matches, and no deny rule. ``local_only``: only deployments with ``local = true``.
    ``fallbacks``: this scope's own fallbacks (public name -> names), tried before the
    model's. ``allow_tools``: globs of the tool names (``server__tool`` for an MCP tool) an
    agent loop may offer under this policy; None: no limit of its own (each layer of a
    scope can only narrow what the others allow; ``ponder.tools.policy``)."""

    mode: Literal["allow", "deny"] = "deny"
    rules: tuple[PolicyRule, ...] = ()
    local_only: bool = False
    redact: bool = False
    fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    allow_tools: tuple[str, ...] | None = None

    @property
    def empty(self) -> bool:
        return (
            self.mode == "deny"
            and not self.rules
            and not self.local_only
            and not self.redact
            and not self.fallbacks
            and self.allow_tools is None  # [] is a policy: no tools at all
        )


def parse_deployment(raw: dict[str, Any], sources: Sources | None = None) -> DeploymentConfig:
    where = f"[[deployments]] {raw.get('model_name', '?')!r}"
    check_keys(
        where,
        raw,
        {f.name for f in fields(DeploymentConfig)} - {"endpoint"}
        | {"base_url", "api_key_env"}
        | {f.name for f in fields(EndpointConfig)},
    )
    for key in ("model_name", "model"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ConfigError(f"{where}: {key} must be a non-empty string")
    endpoint_keys = {f.name for f in fields(EndpointConfig)}
    endpoint = {k: raw.pop(k) for k in list(raw) if k in endpoint_keys}
    key_env = raw.pop("api_key_env", None)
    if key_env is not None:
        endpoint["api_key"] = api_key_from(key_env, where)
    if endpoint:
        if "base_url" not in endpoint:
            raise ConfigError(
                f"{where}: endpoint settings need a base_url (or provider = a [providers] name)"
            )
        raw["endpoint"] = build(EndpointConfig, endpoint, where=where, sources=sources)
    if "price" in raw:
        raw["price"] = parse_prices({where: raw["price"]})[where]
    for key in ("context_window", "rpm", "tpm"):
        if raw.get(key) is not None and (not isinstance(raw[key], int) or raw[key] < 1):
            raise ConfigError(f"{where}: {key} must be a positive integer")
    if not isinstance(raw.get("weight", 1.0), int | float) or raw.get("weight", 1.0) <= 0:
        raise ConfigError(f"{where}: weight must be a positive number")
    return build(DeploymentConfig, raw, where=where, sources=sources)


def parse_routing(raw: dict[str, Any], sources: Sources | None = None) -> RoutingSettings:
    check_keys("[routing]", raw, {f.name for f in fields(RoutingSettings)})
    strategies = ("weighted", "least-busy", "latency", "lowest-cost")
    if raw.get("strategy", "weighted") not in strategies:
        raise ConfigError(f"[routing] strategy must be one of {', '.join(strategies)}")
    for key in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
        if key in raw:
            raw[key] = _name_lists(raw[key], f"[routing] {key}")
    if "aliases" in raw:
        aliases = raw["aliases"]
        if not isinstance(aliases, Mapping) or not all(
            isinstance(v, str) for v in aliases.values()
        ):
            raise ConfigError("[routing] aliases must map names to names")
        raw["aliases"] = dict(aliases)
    routing = build(RoutingSettings, raw, where="[routing]", prefix="routing", sources=sources)
    for key in ("num_retries", "allowed_fails"):
        if getattr(routing, key) < 0:
            raise ConfigError(f"[routing] {key} must be a non-negative integer")
    return routing


def _name_lists(value: Any, where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must map a model name to a list of names")
    out: dict[str, tuple[str, ...]] = {}
    for name, targets in value.items():
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, list | tuple) or not all(isinstance(t, str) for t in targets):
            raise ConfigError(f"{where}: {name!r} must list model names")
        out[str(name)] = tuple(targets)
    return out


def policy_from_mapping(data: Any, *, where: str) -> PolicySettings:
    """A policy from its TOML table or its stored JSON (a team's or key's)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a table")
    if not _encodable(data):
        raise ConfigError(f"{where} holds text that is not valid Unicode (a lone surrogate)")
    raw = dict(data)
    check_keys(where, raw, {f.name for f in fields(PolicySettings)})
    if raw.get("mode", "deny") not in ("allow", "deny"):
        raise ConfigError(f'{where} mode must be "allow" or "deny"')
    for key in ("local_only", "redact"):
        if not isinstance(raw.get(key, False), bool):
            raise ConfigError(f"{where} {key} must be true or false")
    rules = []
    if not isinstance(raw.get("rules", ()), list | tuple):
        raise ConfigError(f"{where} rules must be a list of tables")
    for rule in raw.get("rules", ()):
        if not isinstance(rule, Mapping):
            raise ConfigError(f"{where} rules must be tables")
        check_keys(f"{where} rule", rule, {f.name for f in fields(PolicyRule)})
        if rule.get("effect") not in ("allow", "deny"):
            raise ConfigError(f'{where} rule effect must be "allow" or "deny"')
        for key in ("vendor", "model", "region"):
            if rule.get(key) is not None and not isinstance(rule[key], str):
                raise ConfigError(f"{where} rule {key} must be a string")
        if rule.get("local") is not None and not isinstance(rule["local"], bool):
            raise ConfigError(f"{where} rule local must be true or false")
        rules.append(PolicyRule(**rule))
    raw["rules"] = tuple(rules)
    if "fallbacks" in raw:
        raw["fallbacks"] = _name_lists(raw["fallbacks"], f"{where} fallbacks")
    if raw.get("allow_tools") is not None:
        tools = raw["allow_tools"]
        if not isinstance(tools, list | tuple) or not all(isinstance(t, str) and t for t in tools):
            raise ConfigError(f"{where} allow_tools must be a list of tool names (globs)")
        raw["allow_tools"] = tuple(tools)
    return PolicySettings(**raw)


def policy_as_mapping(policy: PolicySettings) -> dict[str, Any]:
    """The JSON a team's or key's policy is stored as (what policy_from_mapping reads)."""
    out: dict[str, Any] = {}
    if policy.mode != "deny":
        out["mode"] = policy.mode
    if policy.rules:
        out["rules"] = [
            {
                f.name: getattr(r, f.name)
                for f in fields(PolicyRule)
                if getattr(r, f.name) is not None
            }
            for r in policy.rules
        ]
    for key in ("local_only", "redact"):
        if getattr(policy, key):
            out[key] = True
    if policy.fallbacks:
        out["fallbacks"] = {k: list(v) for k, v in policy.fallbacks.items()}
    if policy.allow_tools is not None:
        out["allow_tools"] = list(policy.allow_tools)
    return out


def _encodable(value: Any) -> bool:
    """Whether every string in ``value`` (keys included) can be written as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, Mapping):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_encodable(v) for v in value)
    return True
