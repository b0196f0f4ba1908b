"""Reversible redaction: the vault, whole requests, and restoring streams split anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.privacy import PLACEHOLDER, Redactor, StreamRestorer, Vault
from ponder.types import GenerationRequest, Message

DATA = Path(__file__).parent / "data" / "pii_labelled.jsonl"
MIXED = (
    "Hi, I'm jo@example.com (+44 20 7946 0123); card 4111 1111 1111 1111, "
    "IBAN DE89 3704 0044 0532 0130 00, from 203.0.113.9 with AKIAIOSFODNN7EXAMPLE. "
    "Again: jo@example.com."
)
PEM = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg"quoted"\\back\nAwEHoUQDQgAE\n-----END EC PRIVATE KEY-----'


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


def rows() -> list[dict[str, object]]:
    return [json.loads(line) for line in DATA.read_text().splitlines()]


def test_round_trip_over_the_labelled_set(redactor: Redactor) -> None:
    for row in rows():
        text = str(row["text"])
        vault = Vault(PLACEHOLDER.findall(text))
        redacted = redactor.redact_text(text, vault)
        for span in row["spans"]:  # type: ignore[attr-defined]
            assert span["value"] not in redacted, (span, redacted)
        assert vault.restore(redacted) == text


def test_the_same_value_gets_the_same_placeholder(redactor: Redactor) -> None:
    vault = Vault()
    redacted = redactor.redact_text(MIXED, vault)
    assert redacted.count("<EMAIL_1>") == 2
    assert "<PHONE_1>" in redacted and "<CARD_1>" in redacted and "<IBAN_1>" in redacted
    assert "<IP_1>" in redacted and "<SECRET_1>" in redacted
    assert len(vault) == 6
    assert "jo@example.com" not in repr(vault)


def test_placeholders_already_in_the_text_are_reserved_and_left_alone(
    redactor: Redactor,
) -> None:
    request = GenerationRequest(
        messages=(Message("user", "Is <EMAIL_1> a template? Mine is jo@example.com"),)
    )
    redacted, vault = redactor.redact_request(request)
    assert redacted.messages[0].content == "Is <EMAIL_1> a template? Mine is <EMAIL_2>"
    assert vault.restore("<EMAIL_1> / <EMAIL_2>") == "<EMAIL_1> / jo@example.com"


def test_restore_knows_only_its_own_request(redactor: Redactor) -> None:
    mine, theirs = Vault(), Vault()
    redactor.redact_text("me: jo@example.com", mine)
    redactor.redact_text("them: someone@example.org and +44 20 7946 0958", theirs)
    # A reply that names placeholders this request never issued gets nothing of theirs.
    assert mine.restore("<EMAIL_1> <PHONE_1> <EMAIL_2>") == "jo@example.com <PHONE_1> <EMAIL_2>"


def test_redact_request_covers_every_place(redactor: Redactor) -> None:
    text = "mail jo@example.com, call +44 20 7946 0958"
    arguments = json.dumps({"to": "jo@example.com", "password": "hunter2x", "n": 3}, indent=2)
    call = {"id": "c1", "type": "function", "function": {"name": "send", "arguments": arguments}}
    request = GenerationRequest(
        messages=(
            Message("system", text),
            Message("user", text, name="alice"),
            Message("assistant", text, reasoning=text, tool_calls=(call,)),
            Message("tool", text, tool_call_id="c1"),
        ),
        prefill=text,
    )
    redacted, vault = redactor.redact_request(request)
    seen = json.dumps(
        [[m.content, m.reasoning, m.tool_calls] for m in redacted.messages] + [redacted.prefill]
    )
    for value in ("jo@example.com", "+44 20 7946 0958", "hunter2x"):
        assert value not in seen
    assert redacted.messages[1].name == "alice"
    assert redacted.messages[3].tool_call_id == "c1"
    new_arguments = redacted.messages[2].tool_calls[0]["function"]["arguments"]  # type: ignore[index]
    # The caller's formatting is kept: only the values changed.
    assert new_arguments == arguments.replace("jo@example.com", "<EMAIL_1>").replace(
        "hunter2x", "<SECRET_1>"
    )
    assert vault.restore_arguments(new_arguments) == arguments
    assert vault.restore(redacted.prefill) == text


def test_decoded_tool_arguments_are_redacted_too(redactor: Redactor) -> None:
    call = {"id": "c1", "function": {"name": "f", "arguments": {"ip": "203.0.113.9", "k": [1]}}}
    request = GenerationRequest(messages=(Message("assistant", "", tool_calls=(call,)),))
    redacted, _ = redactor.redact_request(request)
    assert redacted.messages[0].tool_calls[0]["function"]["arguments"] == {  # type: ignore[index]
        "ip": "<IP_1>",
        "k": [1],
    }


def test_a_value_found_in_one_place_is_replaced_everywhere(redactor: Redactor) -> None:
    request = GenerationRequest(
        messages=(
            Message("user", "DB_PASSWORD=Zebra!stripes"),
            Message("user", "did Zebra!stripes work?"),
        )
    )
    redacted, vault = redactor.redact_request(request)
    assert [m.content for m in redacted.messages] == [
        "DB_PASSWORD=<SECRET_1>",
        "did <SECRET_1> work?",
    ]
    assert vault.restore(redacted.messages[1].content) == "did Zebra!stripes work?"


def test_sweeping_never_rewrites_a_placeholder(redactor: Redactor) -> None:
    # The value is part of its own placeholder's text: "<SECRET_1>" holds "SECRET_1".
    request = GenerationRequest(messages=(Message("user", "password: SECRET_1 or SECRET_1"),))
    redacted, vault = redactor.redact_request(request)
    assert redacted.messages[0].content == "password: <SECRET_1> or <SECRET_1>"
    assert vault.restore(redacted.messages[0].content) == "password: SECRET_1 or SECRET_1"


def splits(text: str) -> list[list[str]]:
    """Every way to cut ``text`` into two deltas, into one-character deltas, and into three
    deltas around each placeholder."""
    out = [[text[:k], text[k:]] for k in range(len(text) + 1)]
    out.append(list(text))
    for match in PLACEHOLDER.finditer(text):
        for a in range(match.start(), match.end() + 1):
            for b in range(a, match.end() + 1):
                out.append([text[:a], text[a:b], text[b:]])
    return out


def test_stream_restorer_restores_placeholders_split_anywhere(redactor: Redactor) -> None:
    vault = Vault()
    redacted = redactor.redact_text(MIXED, vault)
    fragments = {p[:k] for p in vault.placeholders for k in range(2, len(p) + 1)}
    for deltas in splits(redacted):
        restorer = StreamRestorer(vault)
        shown = [restorer.push(d) for d in deltas] + [restorer.flush()]
        assert "".join(shown) == MIXED
        for piece in shown:  # no placeholder, nor the start of one, ever reaches the client
            assert not any(piece.endswith(f) or f in piece for f in fragments if len(f) > 1)


def test_stream_restorer_holds_back_only_a_possible_placeholder() -> None:
    vault = Vault()
    vault.placeholder("email", "jo@example.com")
    vault.placeholder("email", "x@example.org")
    restorer = StreamRestorer(vault)
    assert restorer.push("a < b and <EM") == "a < b and "
    assert restorer.holding
    assert restorer.push("PTY> <EMAIL_") == "<EMPTY> "  # ruled out: shown as it was
    assert restorer.push("1") == ""  # "<EMAIL_1" is not a placeholder until its ">"
    assert restorer.push(">!") == "jo@example.com!"
    assert restorer.push("<EMAIL_2") == ""
    assert restorer.flush() == "<EMAIL_2"  # the stream ended mid-way: no value, no guess


def test_json_restore_escapes_values_for_json_strings(redactor: Redactor) -> None:
    vault = Vault()
    placeholder = vault.placeholder("secret", PEM)
    arguments = json.dumps({"key": placeholder, "note": "ok"})
    restored = vault.restore_arguments(arguments)
    assert json.loads(restored) == {"key": PEM, "note": "ok"}
    # Streamed in pieces, split inside the placeholder.
    for k in range(len(arguments) + 1):
        restorer = StreamRestorer(vault, json_string=True)
        text = restorer.push(arguments[:k]) + restorer.push(arguments[k:]) + restorer.flush()
        assert json.loads(text) == {"key": PEM, "note": "ok"}
    # A placeholder written with JSON escapes (<) is restored too.
    escaped = json.dumps({"key": placeholder}, ensure_ascii=True).replace("<", "\\u003c")
    assert json.loads(vault.restore_arguments(escaped)) == {"key": PEM}
