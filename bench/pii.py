"""PII detection's recall and precision per kind, and leaks in the redaction path.

Over the labelled set (``tests/data/pii_labelled.jsonl``: texts with the values they hold,
and near-misses that hold none), it measures:

- detection, per kind: a labelled span is found when a finding of the same kind covers it
  (recall); a finding is right when it overlaps a labelled span of its kind (precision);
- the redaction path: each text is put in every place a request carries text (system, user,
  assistant content and reasoning, tool-call arguments, a tool result, the prefill) and sent
  through ``RedactingBackend`` to an echo model, which repeats the placeholders it got as
  text, reasoning and tool-call arguments, streamed in one-character deltas and in
  ``--splits`` random cuttings. It counts labelled values that reached the model (split into
  values the detector finds, which the path must never let through, and values detection
  missed), and replies not restored exactly (or that showed a placeholder to the client).

The goal: recall >= 0.98 on the structured kinds (email, phone, card, IBAN, IP) and no leak in
the redaction path. It exits non-zero when either is not met.

    python bench/pii.py
    python bench/pii.py --misses        # also list misses and false positives
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder.backends.base import Capabilities, QueueStream
from ponder.privacy import KINDS, PLACEHOLDER, STRUCTURED, Detector, RedactingBackend
from ponder.types import Choice, Completion, Delta, GenerationRequest, Message, Usage

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "pii_labelled.jsonl"
GOAL_RECALL = 0.98
Cutter = Callable[[str], list[str]]


@dataclass
class Row:
    text: str
    spans: list[tuple[str, int, int]]  # kind, start, end


def load(path: Path) -> list[Row]:
    rows = []
    for line in path.read_text().splitlines():
        item = json.loads(line)
        text = item["text"]
        spans = []
        for span in item["spans"]:
            start = text.index(span["value"])
            spans.append((span["kind"], start, start + len(span["value"])))
        rows.append(Row(text, spans))
    return rows


# -- detection ----------------------------------------------------------------------------
@dataclass
class Score:
    spans: int = 0
    found: int = 0
    findings: int = 0
    wrong: int = 0

    @property
    def recall(self) -> float:
        return self.found / self.spans if self.spans else 1.0

    @property
    def precision(self) -> float:
        return (self.findings - self.wrong) / self.findings if self.findings else 1.0


def score(detector: Detector, rows: list[Row]) -> tuple[dict[str, Score], list[str], list[str]]:
    scores: dict[str, Score] = {kind: Score() for kind in KINDS}
    misses: list[str] = []
    wrong: list[str] = []
    for row in rows:
        findings = detector.find(row.text)
        for kind, start, end in row.spans:
            scores[kind].spans += 1
            if any(f.kind == kind and f.start <= start and f.end >= end for f in findings):
                scores[kind].found += 1
            else:
                misses.append(f"{kind}: {row.text[start:end]!r} in {row.text!r}")
        for f in findings:
            scores[f.kind].findings += 1
            if not any(k == f.kind and f.start < e and f.end > s for k, s, e in row.spans):
                scores[f.kind].wrong += 1
                wrong.append(f"{f.kind}: {f.text!r} in {row.text!r}")
    return scores, misses, wrong


# -- the redaction path -------------------------------------------------------------------
class EchoBackend:
    """A model that repeats the placeholders it was sent: the last message as text and as
    reasoning, and the first tool call's arguments, each cut into deltas by ``cut``."""

    name = "echo"
    capabilities = Capabilities(tools=True)

    def __init__(self, cut: Cutter) -> None:
        self.cut = cut
        self.seen: list[GenerationRequest] = []

    async def generate(self, request: GenerationRequest) -> Completion:
        self.seen.append(request)
        text = request.messages[-1].content
        calls = tuple(c for m in request.messages for c in (m.tool_calls or ()))[:1]
        choice = Choice(0, text, "stop", 1, reasoning=text or None, tool_calls=calls or None)
        return Completion(choices=(choice,), usage=Usage(completion_tokens=1), model=self.name)

    def stream(self, request: GenerationRequest) -> QueueStream:
        self.seen.append(request)
        stream = QueueStream()
        text = request.messages[-1].content
        calls = [c for m in request.messages for c in (m.tool_calls or ())]
        for piece in self.cut(text):
            stream.push(Delta(index=0, text=piece))
        for piece in self.cut(text):
            stream.push(Delta(index=0, reasoning=piece))
        for call in calls[:1]:
            function = call["function"]
            for k, piece in enumerate(self.cut(function["arguments"])):
                head = {"id": call["id"], "type": "function"} if k == 0 else {}
                name = {"name": function["name"]} if k == 0 else {}
                fragment = {"index": 0, **head, "function": {**name, "arguments": piece}}
                stream.push(Delta(index=0, tool_calls=(fragment,)))
        stream.push(Delta(index=0, finish_reason="stop", completion_tokens=1))
        stream.finish(Usage(completion_tokens=1, calls=1))
        return stream

    async def aclose(self) -> None:
        return None


def arguments_of(text: str) -> dict[str, Any]:
    return {"query": text, "items": [text, {"note": text}]}


def request_for(text: str) -> GenerationRequest:
    """``text`` in every place a request carries text."""
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup", "arguments": json.dumps(arguments_of(text))},
    }
    return GenerationRequest(
        messages=(
            Message("system", f"Context: {text}"),
            Message("user", text),
            Message("assistant", text, reasoning=text, tool_calls=(call,)),
            Message("tool", text, tool_call_id="call_1"),
            Message("user", text),
        ),
        prefill=text,
    )


def sent(request: GenerationRequest) -> str:
    """Everything the model was sent, as one string."""
    parts = [request.prefill]
    for m in request.messages:
        parts += [m.content, m.reasoning or "", json.dumps(m.tool_calls or [])]
        parts += [str(c["function"]["arguments"]) for c in m.tool_calls or ()]
    return "\n".join(parts)


def cutters(splits: int, seed: int) -> list[Cutter]:
    def chars(text: str) -> list[str]:
        return list(text)

    def randomly(rng: random.Random) -> Cutter:
        def cut(text: str) -> list[str]:
            points = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, 4)))
            return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]

        return cut

    rng = random.Random(seed)
    return [chars, *(randomly(rng) for _ in range(splits))]


@dataclass
class Leaks:
    values: int = 0
    leaked_found: list[str] = field(default_factory=list)  # found by detection, yet sent
    leaked_missed: list[str] = field(default_factory=list)  # missed by detection
    replies: int = 0
    wrong_replies: list[str] = field(default_factory=list)


async def leak_check(detector: Detector, rows: list[Row], splits: int, seed: int) -> Leaks:
    leaks = Leaks()
    for row in rows:
        findings = detector.find(row.text)
        for number, cut in enumerate(cutters(splits, seed + zlib.crc32(row.text.encode()))):
            echo = EchoBackend(cut)
            backend = RedactingBackend(echo)
            request = request_for(row.text)
            if number == 0:
                completion = await backend.generate(request)
                leaks.replies += 1
                args = completion.choices[0].tool_calls or ({"function": {"arguments": "{}"}},)
                if (
                    completion.text != row.text
                    or completion.choices[0].reasoning != (row.text or None)
                    or json.loads(args[0]["function"]["arguments"]) != arguments_of(row.text)
                ):
                    leaks.wrong_replies.append(f"generate: {row.text!r}")
                blob = sent(echo.seen[0])
                for kind, start, end in row.spans:
                    value = row.text[start:end]
                    leaks.values += 1
                    if value in blob or json.dumps(value)[1:-1] in blob:
                        detected = any(f.start <= start and f.end >= end for f in findings)
                        (leaks.leaked_found if detected else leaks.leaked_missed).append(
                            f"{kind}: {value!r}"
                        )
            stream = backend.stream(request)
            deltas = [delta async for delta in stream]
            leaks.replies += 1
            text = "".join(d.text for d in deltas)
            reasoning = "".join(d.reasoning for d in deltas)
            arguments = "".join(
                str(c["function"].get("arguments", "")) for d in deltas for c in d.tool_calls or ()
            )
            shown = [d.text + d.reasoning for d in deltas]
            shown += [str(c) for d in deltas for c in d.tool_calls or ()]
            placeholder_shown = any(
                PLACEHOLDER.search(s) and not PLACEHOLDER.search(row.text) for s in shown
            )
            if (
                text != row.text
                or reasoning != row.text
                or json.loads(arguments) != arguments_of(row.text)
                or placeholder_shown
            ):
                leaks.wrong_replies.append(f"stream #{number}: {row.text!r}")
    return leaks


# -- report -------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--splits", type=int, default=5, help="random cuttings per text")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--misses", action="store_true", help="list misses and false positives")
    args = parser.parse_args()

    rows = load(args.data)
    detector = Detector()
    scores, misses, wrong = score(detector, rows)
    spans = sum(len(r.spans) for r in rows)
    near = sum(1 for r in rows if not r.spans)
    print(
        f"PII detection over {args.data.name}: {len(rows)} texts, {spans} labelled spans, "
        f"{near} near-misses (texts with nothing to find)"
    )
    print()
    print("| kind | spans | found | recall | findings | false pos. | precision |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for kind, s in scores.items():
        print(
            f"| {kind} | {s.spans} | {s.found} | {s.recall:.3f} | {s.findings} | {s.wrong} "
            f"| {s.precision:.3f} |"
        )
    structured = Score(
        spans=sum(scores[k].spans for k in STRUCTURED),
        found=sum(scores[k].found for k in STRUCTURED),
        findings=sum(scores[k].findings for k in STRUCTURED),
        wrong=sum(scores[k].wrong for k in STRUCTURED),
    )
    print(
        f"| structured | {structured.spans} | {structured.found} | {structured.recall:.3f} "
        f"| {structured.findings} | {structured.wrong} | {structured.precision:.3f} |"
    )
    if args.misses:
        print()
        for line in misses:
            print(f"missed    {line}")
        for line in wrong:
            print(f"false pos {line}")

    leaks = asyncio.run(leak_check(detector, rows, args.splits, args.seed))
    print()
    print(
        "Redaction path: each text in system, user, assistant (content and reasoning), "
        "tool-call arguments, tool result and prefill; replies echoed by the model, streamed "
        f"in 1-character deltas and {args.splits} random cuttings"
    )
    print(
        f"- labelled values sent to the model: {len(leaks.leaked_found) + len(leaks.leaked_missed)}"
    )
    print(f"  of {leaks.values} (detected, yet sent: {len(leaks.leaked_found)}; ", end="")
    print(f"missed by detection: {len(leaks.leaked_missed)})")
    print(
        f"- replies not restored exactly, or showing a placeholder: {len(leaks.wrong_replies)} "
        f"of {leaks.replies}"
    )
    for line in leaks.leaked_found + leaks.leaked_missed + leaks.wrong_replies:
        print(f"    {line}")

    recall_met = all(scores[k].recall >= GOAL_RECALL for k in STRUCTURED)
    leaks_met = not (leaks.leaked_found or leaks.leaked_missed or leaks.wrong_replies)
    print()
    print(
        f"goal: recall >= {GOAL_RECALL} on each structured kind: "
        f"{'met' if recall_met else 'NOT met'}; no leak in the redaction path: "
        f"{'met' if leaks_met else 'NOT met'}"
    )
    return 0 if recall_met and leaks_met else 1


if __name__ == "__main__":
    sys.exit(main())
