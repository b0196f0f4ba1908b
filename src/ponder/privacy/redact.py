"""Reversible redaction: personal data out of a request, placeholders back into its reply.

A :class:`Vault` belongs to one request. Each value found becomes a placeholder such as
``<EMAIL_1>`` or ``<SECRET_2>`` (the same value, the same placeholder, throughout the
request), which a model copies faithfully and :mod:`ponder.privacy.detect` never detects.
Restoring replaces only placeholders that this vault issued: a reply cannot name another
request's data, which this vault never held. Placeholder-shaped text already in the request
(a user who writes ``<EMAIL_1>``) is reserved, never issued, so it comes back as it was.

:class:`Redactor` redacts every part of a request that reaches a model: the content and the
reasoning of system, user, assistant and tool messages, the arguments of earlier tool calls
(inside their JSON, so that a value split by an escape is still found), and the prefill.

:class:`StreamRestorer` restores a stream of text deltas. It holds back only a possible
start of a placeholder at the end of a delta (``<EMA``), until the next delta completes or
rules it out, so a placeholder split across deltas is restored and no fragment of one
reaches the client.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Final

from ponder.privacy.detect import Detector, Finding, Kind
from ponder.types import GenerationRequest, Message

LABELS: Final[Mapping[Kind, str]] = MappingProxyType(
    {
        "email": "EMAIL",
        "phone": "PHONE",
        "card": "CARD",
        "iban": "IBAN",
        "ip": "IP",
        "secret": "SECRET",
    }
)
PLACEHOLDER: Final = re.compile(r"<(?:EMAIL|PHONE|CARD|IBAN|IP|SECRET)_\d+>")


def _json_escaped(value: str) -> str:
    """``value`` as it is written inside a JSON string."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


class Vault:
    """One request's placeholders and the values they stand for."""

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self._reserved = frozenset(reserved)
        self._by_value: dict[str, str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._by_placeholder)

    def __repr__(self) -> str:  # never the values
        return f"Vault({len(self)} placeholders)"

    @property
    def placeholders(self) -> frozenset[str]:
        return frozenset(self._by_placeholder)

    def pairs(self) -> list[tuple[str, str]]:
        """(value, placeholder), longest value first (so that replacing them in that order
        never breaks a longer value that contains a shorter one)."""
        return sorted(self._by_value.items(), key=lambda item: len(item[0]), reverse=True)

    def placeholder(self, kind: Kind, value: str) -> str:
        """The placeholder for ``value``, issued on first sight."""
        known = self._by_value.get(value)
        if known is not None:
            return known
        label = LABELS[kind]
        while True:
            count = self._counts.get(label, 0) + 1
            self._counts[label] = count
            placeholder = f"<{label}_{count}>"
            if placeholder not in self._reserved:
                break
        self._by_value[value] = placeholder
        self._by_placeholder[placeholder] = value
        return placeholder

    def restore(self, text: str, *, json_string: bool = False) -> str:
        """``text`` with this vault's placeholders replaced by their values (escaped for the
        inside of a JSON string when ``json_string``); other text is left alone."""
        if "<" not in text or not self._by_placeholder:
            return text

        def value(match: re.Match[str]) -> str:
            original = self._by_placeholder.get(match.group())
            if original is None:
                return match.group()
            return _json_escaped(original) if json_string else original

        return PLACEHOLDER.sub(value, text)

    def sweep(self, text: str) -> str:
        """``text`` with every value this vault holds replaced wherever it appears outside a
        placeholder (in one pass, longest value first, so a placeholder just written is
        never swept again)."""
        if not self._by_value or not text:
            return text
        values = re.compile("|".join(re.escape(value) for value, _ in self.pairs()))

        def swap(match: re.Match[str]) -> str:
            return self._by_value[match.group()]

        pieces = PLACEHOLDER.split(text)
        marks = PLACEHOLDER.findall(text)
        out = [values.sub(swap, pieces[0])]
        for mark, piece in zip(marks, pieces[1:], strict=True):
            out += [mark, values.sub(swap, piece)]
        return "".join(out)

    def is_partial(self, tail: str) -> bool:
        """Whether ``tail`` is the start, not the whole, of a placeholder issued here."""
        return any(p.startswith(tail) and p != tail for p in self._by_placeholder)

    def restore_arguments(self, arguments: Any) -> Any:
        """Tool-call arguments (a JSON string, or already decoded) with values restored."""
        if isinstance(arguments, str):
            restored = self.restore(arguments, json_string=True)
            try:
                decoded = json.loads(restored)
            except ValueError:
                return restored
            issued = self._by_placeholder
            if not any(
                m.group() in issued for s in _strings(decoded) for m in PLACEHOLDER.finditer(s)
            ):
                return restored
            # Placeholders written with escapes (\u003c...): restore the decoded value.
            return json.dumps(_map_strings(decoded, self.restore), ensure_ascii=False)
        return _map_strings(arguments, self.restore)


class StreamRestorer:
    """Restores one stream of text deltas (see the module's docstring)."""

    def __init__(self, vault: Vault, *, json_string: bool = False) -> None:
        self._vault = vault
        self._json = json_string
        self._held = ""

    def push(self, delta: str) -> str:
        """The restored text that can be shown now."""
        text = self._held + delta
        cut = len(text)
        start = text.rfind("<")
        if start >= 0 and self._vault.is_partial(text[start:]):
            cut = start
        self._held = text[cut:]
        return self._vault.restore(text[:cut], json_string=self._json)

    def flush(self) -> str:
        """What is held back, at the end of the stream (never a whole placeholder)."""
        held, self._held = self._held, ""
        return self._vault.restore(held, json_string=self._json)

    @property
    def holding(self) -> bool:
        return bool(self._held)


class Redactor:
    """Replaces what a :class:`Detector` finds by a :class:`Vault`'s placeholders."""

    def __init__(self, detector: Detector | None = None) -> None:
        self.detector = detector or Detector()

    def redact_text(self, text: str, vault: Vault, *, key: str | None = None) -> str:
        """``text`` with each finding replaced by its placeholder. With ``key``, ``text`` is
        looked at as the value of that key (``password: hunter2``), and only the value is
        changed."""
        prefix = "" if key is None else f"{key}: "
        findings: list[Finding] = self.detector.find(prefix + text) if text else []
        parts: list[str] = []
        position = 0
        for finding in findings:
            if finding.end <= len(prefix):
                continue
            start = max(finding.start - len(prefix), 0)
            end = finding.end - len(prefix)
            parts += [text[position:start], vault.placeholder(finding.kind, text[start:end])]
            position = end
        if not parts:
            return text
        parts.append(text[position:])
        return "".join(parts)

    def redact_request(self, request: GenerationRequest) -> tuple[GenerationRequest, Vault]:
        """The request with every value found replaced, and the vault to restore them.

        Two passes: what the detector finds in each text, in its context; then every value
        found anywhere, wherever else in the request it appears (a password found as
        ``password=...`` in one message is replaced where it stands alone in another)."""
        reserved = {
            match.group()
            for text in _request_texts(request)
            for match in PLACEHOLDER.finditer(text)
        }
        vault = Vault(reserved)

        def redact(text: str, key: str | None) -> str:
            return self.redact_text(text, vault, key=key)

        def sweep(text: str, key: str | None) -> str:
            return vault.sweep(text)

        messages = tuple(_rewrite_message(m, redact, vault) for m in request.messages)
        prefill = self.redact_text(request.prefill, vault)
        sent = _rewrite_fields(request, redact)
        if len(vault):
            messages = tuple(_rewrite_message(m, sweep, vault) for m in messages)
            prefill = vault.sweep(prefill)
            sent = _rewrite_fields(request.replace(**sent), sweep)
        return request.replace(messages=messages, prefill=prefill, **sent), vault


def _rewrite_fields(request: GenerationRequest, rewrite: Rewrite) -> dict[str, Any]:
    """The request's other fields that reach the model, rewritten: tool definitions, the
    tool choice, the response schema, stop strings and per-backend extras (everything a
    remote endpoint is sent besides the messages)."""
    out: dict[str, Any] = {}
    if request.tools:
        out["tools"] = tuple(_rewrite_json(t, rewrite) for t in request.tools)
    if isinstance(request.tool_choice, Mapping):
        out["tool_choice"] = _rewrite_json(request.tool_choice, rewrite)
    if request.json_schema is not None:
        out["json_schema"] = _rewrite_json(request.json_schema, rewrite)
    if request.extra:
        out["extra"] = _rewrite_json(request.extra, rewrite)
    if request.sampling.stop:
        stop = tuple(rewrite(s, None) for s in request.sampling.stop)
        out["sampling"] = request.sampling.replace(stop=stop)
    return out


Rewrite = Callable[[str, "str | None"], str]


def _rewrite_message(message: Message, rewrite: Rewrite, vault: Vault) -> Message:
    """``message`` with ``rewrite`` applied to its content, reasoning and tool arguments."""
    changes: dict[str, Any] = {"content": rewrite(message.content, None)}
    if message.name:
        changes["name"] = rewrite(message.name, None)
    if message.reasoning:
        changes["reasoning"] = rewrite(message.reasoning, None)
    if message.tool_calls:
        changes["tool_calls"] = tuple(
            _rewrite_call(call, rewrite, vault) for call in message.tool_calls
        )
    return dataclasses.replace(message, **changes)


def _rewrite_call(call: Mapping[str, Any], rewrite: Rewrite, vault: Vault) -> Mapping[str, Any]:
    function = call.get("function")
    if not isinstance(function, Mapping) or function.get("arguments") is None:
        return call
    arguments = _rewrite_arguments(function["arguments"], rewrite, vault)
    return {**call, "function": {**function, "arguments": arguments}}


def _rewrite_arguments(arguments: Any, rewrite: Rewrite, vault: Vault) -> Any:
    """Tool-call arguments rewritten inside their JSON: each key, and each string value
    together with its key (so that ``{"password": "hunter2"}`` is seen as an assignment)."""
    if not isinstance(arguments, str):
        return _rewrite_json(arguments, rewrite)
    try:
        decoded = json.loads(arguments)
    except ValueError:
        return rewrite(arguments, None)
    rewritten = _rewrite_json(decoded, rewrite)
    if rewritten == decoded:
        return arguments
    # Keep the caller's formatting where possible: each value's JSON form replaced in
    # place, kept only if it decodes to the rewritten arguments.
    raw = arguments
    for value, placeholder in vault.pairs():
        raw = raw.replace(_json_escaped(value), placeholder)
    try:
        if json.loads(raw) == rewritten:
            return raw
    except ValueError:
        pass
    return json.dumps(rewritten, ensure_ascii=False)


def _rewrite_json(value: Any, rewrite: Rewrite) -> Any:
    """Decoded JSON with every key and string value rewritten, each value with its key."""
    if isinstance(value, str):
        return rewrite(value, None)
    if isinstance(value, Mapping):
        return {
            rewrite(str(k), None): (
                rewrite(v, str(k)) if isinstance(v, str) else _rewrite_json(v, rewrite)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_rewrite_json(v, rewrite) for v in value]
    return value


def _request_texts(request: GenerationRequest) -> Iterator[str]:
    yield request.prefill
    yield from request.sampling.stop
    for field in (request.tools, request.tool_choice, request.json_schema, request.extra):
        yield from _strings(field)
    for message in request.messages:
        yield message.content
        if message.name:
            yield message.name
        if message.reasoning:
            yield message.reasoning
        for call in message.tool_calls or ():
            yield json.dumps(call, ensure_ascii=False, default=str)
            function = call.get("function")
            arguments = function.get("arguments") if isinstance(function, Mapping) else None
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except ValueError:
                    continue
            yield from _strings(arguments)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _map_strings(value: Any, change: Callable[[str], str]) -> Any:
    """``value`` (decoded JSON) with ``change`` applied to every string, keys included."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, Mapping):
        return {change(str(k)): _map_strings(v, change) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_map_strings(v, change) for v in value]
    return value
