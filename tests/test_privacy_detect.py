"""PII detection: recall per kind over the labelled set, near-misses, and the rules behind
them (Luhn, IBAN checksums, IP validity, secrets' formats and entropy, placeholders)."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import pytest

from ponder.privacy import KINDS, STRUCTURED, Detector, Finding

DATA = Path(__file__).parent / "data" / "pii_labelled.jsonl"


def labelled() -> list[dict[str, object]]:
    return [json.loads(line) for line in DATA.read_text().splitlines()]


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector()


def covered(findings: list[Finding], kind: str, start: int, end: int) -> bool:
    return any(f.kind == kind and f.start <= start and f.end >= end for f in findings)


def test_the_labelled_set_is_large_and_covers_every_kind() -> None:
    rows = labelled()
    assert len(rows) >= 200
    kinds = [s["kind"] for r in rows for s in r["spans"]]  # type: ignore[attr-defined]
    for kind in KINDS:
        assert kinds.count(kind) >= 25, kind
    assert sum(1 for r in rows if not r["spans"]) >= 50  # near-misses


def test_recall_per_kind(detector: Detector) -> None:
    found = dict.fromkeys(KINDS, 0)
    total = dict.fromkeys(KINDS, 0)
    missed = []
    for row in labelled():
        text = str(row["text"])
        findings = detector.find(text)
        for span in row["spans"]:  # type: ignore[attr-defined]
            start = text.index(span["value"])
            total[span["kind"]] += 1
            if covered(findings, span["kind"], start, start + len(span["value"])):
                found[span["kind"]] += 1
            else:
                missed.append((span["kind"], span["value"]))
    for kind in STRUCTURED:
        assert found[kind] / total[kind] >= 0.98, (kind, missed)
    assert found["secret"] / total["secret"] >= 0.95, missed


def test_near_misses_find_nothing(detector: Detector) -> None:
    wrong = {}
    for row in labelled():
        if not row["spans"]:
            findings = detector.find(str(row["text"]))
            if findings:
                wrong[row["text"]] = findings
    assert not wrong


def test_findings_are_ordered_and_never_overlap(detector: Detector) -> None:
    for row in labelled():
        findings = detector.find(str(row["text"]))
        for a, b in pairwise(findings):
            assert a.end <= b.start
        for f in findings:
            assert str(row["text"])[f.start : f.end] == f.text


def test_placeholders_are_never_detected(detector: Detector) -> None:
    labels = ["EMAIL", "PHONE", "CARD", "IBAN", "IP", "SECRET"]
    marks = [f"<{label}_{n}>" for label in labels for n in (1, 2, 9, 10, 42, 99, 123, 4096)]
    assert detector.find(" ".join(marks)) == []
    assert detector.find("".join(marks)) == []
    assert detector.find("password=<SECRET_1> api_key: <SECRET_2> Bearer <SECRET_3>") == []
    assert detector.find('{"to": "<EMAIL_1>", "phone": "<PHONE_1>"}') == []


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("card 4111 1111 1111 1111 exp 12/29", "card", "4111 1111 1111 1111"),
        ("two cards 4111111111111111 5555555555554444", "card", "5555555555554444"),
        ("IBAN DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX", "iban", "DE89 3704 0044 0532 0130 00"),
        ("call 0049 30 901820 today", "phone", "0049 30 901820"),
        ("tel (201) 555-0123", "phone", "(201) 555-0123"),
        ("host [2001:db8::7]:8443", "ip", "2001:db8::7"),
        (
            "mail to first.last+tag@mail.example.co.uk.",
            "email",
            "first.last+tag@mail.example.co.uk",
        ),
        ("email=john@example.com&x=1", "email", "john@example.com"),
        ("api_key=9f86d081884c7d659a2feaa0c55ad015", "secret", "9f86d081884c7d659a2feaa0c55ad015"),
        ('{"password": "correct horse"}', "secret", "correct horse"),
        ("the password is Winter2024! ok", "secret", "Winter2024!"),
    ],
)
def test_examples(detector: Detector, text: str, kind: str, value: str) -> None:
    start = text.index(value)
    findings = detector.find(text)
    assert covered(findings, kind, start, start + len(value)), findings


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # fails Luhn
        "0000 0000 0000 0000",  # passes Luhn, no card network
        "1234 5678 9012 3456",  # no 12-digit card cut from the middle of a run
        "DE89 3704 0044 0532 0130 01",  # bad IBAN checksum
        "999.1.1.1 and 1.2.3.4.5",
        "std::vector and a::b and 00:1A:2B:3C:4D:5E and 12:30:45",
        "invoice INV-2024-000123",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",  # a git SHA is not a secret
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "def test_candidate_grid_weighs_programs_only_where_they_meet_other_votes():",
        "prompt_tokens = usage.prompt_tokens; max_tokens: 100000",
        "api_key: os.environ/OPENAI_KEY_A",
        "if password:\n    return BasicAuth(username, password)",
        "see https://datatracker.ietf.org/doc/html/rfc3986 and HTTP_401_UNAUTHORIZED",
        "the password is required, this token is spent.",
        "password: .... and token=::::::::",
    ],
)
def test_near_miss_examples(detector: Detector, text: str) -> None:
    assert detector.find(text) == []


def test_a_key_longer_than_its_pattern_is_covered_whole(detector: Detector) -> None:
    key = "sk_live_" + "a1B2c3D4" * 12  # detect-secrets' pattern stops after 24 characters
    (finding,) = detector.find(f"key {key} here")
    assert finding.text == key


def test_a_jwt_is_covered_with_its_signature(detector: Detector) -> None:
    jwt = (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    )
    (finding,) = detector.find(f"Authorization: Bearer {jwt}")
    assert finding.text == jwt


def test_a_pem_private_key_is_one_finding(detector: Detector) -> None:
    pem = (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc+/=\n-----END RSA PRIVATE KEY-----"
    )
    (finding,) = detector.find(f"key:\n{pem}\nthanks")
    assert finding.text == pem
    truncated = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nMIIEowIBAAKCAQEA"
    (finding,) = detector.find(truncated)
    assert finding.text.strip() == truncated


def test_overlapping_findings_become_one_of_the_best_kind(detector: Detector) -> None:
    # A credential in a URL ("S3cretPass9") overlaps the e-mail-shaped "S3cretPass9@db...".
    text = "postgres://app:S3cretPass9@db.example.com:5432/app"
    (finding,) = detector.find(text)
    assert finding.kind == "secret"
    assert "S3cretPass9" in finding.text


def test_kinds_can_be_limited() -> None:
    text = "jo@example.com +44 20 7946 0958"
    assert [f.kind for f in Detector(kinds=("phone",)).find(text)] == ["phone"]
    with pytest.raises(ValueError):
        Detector(kinds=("person",))  # type: ignore[arg-type]


def test_region_none_finds_international_numbers_only() -> None:
    text = "(201) 555-0123 or +44 20 7946 0958"
    assert [f.text for f in Detector(region=None).find(text)] == ["+44 20 7946 0958"]


def test_empty_text(detector: Detector) -> None:
    assert detector.find("") == []
