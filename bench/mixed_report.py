"""The report side of ``bench/mixed.py``: what its records say, and the request classifier
alone.

* :func:`report`: per kind and way the accuracy, calls, tokens and seconds, the clarification
  precision, recall and F1, and the same figures on the prompts every way finished
  (:func:`paired`), over the last record of each (way, prompt);
* :func:`chat_sheet` (:func:`write_chat_sheet`) and :func:`read_grades`: the chat replies
  written out for a reviewer to grade, and the grades read back (``--chat-sheet``,
  ``--grades``);
* :func:`progress_line`: a record as a run prints it when it ends;
* :func:`classify_all` and :func:`classify_report`: ``--classify``, the request classifier
  (``ponder.reasoning.kinds.classify_request``) over the prompts, with no model.

Nothing here runs a model or writes a record; ``bench/mixed.py`` loads, runs and records.
"""

from __future__ import annotations

import importlib
import itertools
import json
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mixed import Prompt

KINDS = ("chat", "checkable", "code", "ambiguous")  # --kinds; "ambiguous" brings its "clear" twins
TRUTHS = ("chat", "checkable", "code", "ambiguous", "clear")  # --classify's rows
GROUPS: Mapping[str, tuple[str, ...]] = {
    "chat": ("chat",),
    "checkable": ("checkable",),
    "code": ("code",),
    "ambiguous + clear": ("ambiguous", "clear"),
}


# -- the report ----------------------------------------------------------------------------
def latest(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The last record of each (way, id)."""
    return {(str(r["way"]), str(r["id"])): dict(r) for r in records}


def progress_line(r: Mapping[str, Any]) -> str:
    """One record as a line of a run's progress."""
    mark = {True: "ok ", False: "no ", None: "-- "}[r["correct"]]
    if r["error"] is not None:
        mark = "ERR"
    tokens = r["prompt_tokens"] + r["completion_tokens"]
    said = r["error"] or r["text"][-60:]
    return (
        f"{mark} {r['id']:<16} {r['way']:<12} {r['calls']:>3} calls {tokens:>6} tok "
        f"{r['seconds']:7.1f}s {'asked ' if r['asked'] else ''}{said!r}"
    )


def prf(tp: int, fp: int, fn: int) -> tuple[float | None, float | None, float | None]:
    """Precision, recall and F1; None where there is nothing to divide by."""
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else None
    return precision, recall, f1


def clarification(records: Iterable[Mapping[str, Any]]) -> tuple[int, int, int]:
    """(tp, fp, fn) of asking over ambiguity records: positive = asked, truth = ambiguous."""
    tp = fp = fn = 0
    for r in records:
        if r["kind"] == "ambiguous":
            tp += bool(r["asked"])
            fn += not r["asked"]
        elif r["kind"] == "clear":
            fp += bool(r["asked"])
    return tp, fp, fn


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({part / whole:.0%})" if whole else "n/a"


def _num(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return statistics.fmean(values) if values else None


def tokens_of(r: Mapping[str, Any]) -> int:
    return int(r["prompt_tokens"]) + int(r["completion_tokens"])


def ways_in(records: Iterable[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(str(r["way"]) for r in records))


def correctness(r: Mapping[str, Any], grades: Mapping[str, bool]) -> bool | None:
    if r["kind"] == "chat":
        return grades.get(f"{r['way']}/{r['id']}")
    value = r["correct"]
    return None if value is None else bool(value)


def accuracy_cell(rows: Sequence[Mapping[str, Any]], grades: Mapping[str, bool]) -> str:
    graded = [c for c in (correctness(r, grades) for r in rows) if c is not None]
    if rows and rows[0]["kind"] == "chat" and not graded:
        return "hand-graded: see --chat-sheet"
    return _share(sum(graded), len(graded))


def kind_table(
    group: str, rows_by_way: Mapping[str, Sequence[Mapping[str, Any]]], grades: Mapping[str, bool]
) -> list[str]:
    chat = group == "chat"
    head = "| way | n | accuracy |" + (" one call |" if chat else "")
    head += " mean calls | mean tokens | mean s | errors |"
    lines = [
        head,
        "| --- | ---: | ---: |" + (" ---: |" if chat else "") + " ---: | ---: | ---: | ---: |",
    ]
    for way, rows in rows_by_way.items():
        ok = [r for r in rows if r["error"] is None]
        cells = [way, str(len(ok)), accuracy_cell(ok, grades)]
        if chat:
            cells.append(_share(sum(r["calls"] == 1 for r in ok), len(ok)))
        cells += [
            _num(_mean(r["calls"] for r in ok)),
            _num(_mean(tokens_of(r) for r in ok), ".0f"),
            _num(_mean(r["seconds"] for r in ok), ".1f"),
            str(len(rows) - len(ok)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def clarification_table(rows_by_way: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    lines = [
        "| way | ambiguous | clear | asked on ambiguous | asked on clear | precision | recall | F1 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for way, rows in rows_by_way.items():
        ok = [r for r in rows if r["error"] is None]
        ambiguous = [r for r in ok if r["kind"] == "ambiguous"]
        clear = [r for r in ok if r["kind"] == "clear"]
        tp, fp, fn = clarification(ok)
        precision, recall, f1 = prf(tp, fp, fn)
        lines.append(
            f"| {way} | {len(ambiguous)} | {len(clear)} | {_share(tp, len(ambiguous))} | "
            f"{_share(fp, len(clear))} | {_num(precision)} | {_num(recall)} | {_num(f1)} |"
        )
    return lines


def paired(
    group: str,
    records: Sequence[Mapping[str, Any]],
    ways: Sequence[str],
    grades: Mapping[str, bool],
) -> list[str]:
    """The group's figures on the prompts every way finished, and each pair of ways's
    wins and losses there."""
    done: dict[str, set[str]] = {way: set() for way in ways}
    for r in records:
        if r["error"] is None and r["way"] in done:
            done[r["way"]].add(r["id"])
    common = set.intersection(*done.values()) if done else set()
    if not common:
        return [f"{group}: no prompt finished by every way"]
    mine = [r for r in records if r["id"] in common and r["error"] is None]
    by_way = {way: [r for r in mine if r["way"] == way] for way in ways}
    lines = [f"{group}: {len(common)} prompts finished by every way", ""]
    lines += kind_table(group, by_way, grades)
    if group == "ambiguous + clear":
        lines += ["", *clarification_table(by_way)]
    right = {
        way: {r["id"]: c for r in rows if (c := correctness(r, grades)) is not None}
        for way, rows in by_way.items()
    }
    pairs = []
    for a, b in itertools.combinations(ways, 2):
        both = sorted(set(right[a]) & set(right[b]))
        if not both:
            continue
        wins = sum(right[a][i] and not right[b][i] for i in both)
        losses = sum(right[b][i] and not right[a][i] for i in both)
        ties = len(both) - wins - losses
        pairs.append(
            f"- {a} vs {b}: {a} alone right {wins}, {b} alone right {losses}, same {ties} "
            f"(of {len(both)})"
        )
    return [*lines, "", *pairs] if pairs else lines


def report(records: Iterable[Mapping[str, Any]], grades: Mapping[str, bool] | None = None) -> str:
    """The markdown report of the records (the last one of each way and prompt)."""
    grades = grades or {}
    rows = list(latest(records).values())
    if not rows:
        return "no records"
    ways = ways_in(rows)
    out: list[str] = []
    for group, kinds in GROUPS.items():
        mine = [r for r in rows if r["kind"] in kinds]
        if not mine:
            continue
        by_way = {way: [r for r in mine if r["way"] == way] for way in ways}
        by_way = {way: rs for way, rs in by_way.items() if rs}
        out += [f"## {group}", "", *kind_table(group, by_way, grades), ""]
        if group == "chat":
            for way, rs in by_way.items():
                ok = [r for r in rs if r["error"] is None]
                one = sum(r["calls"] == 1 for r in ok)
                share = f" ({one / len(ok):.0%})" if ok else ""
                out.append(f"- {way}: chat prompts in one call: {one} of {len(ok)}{share}")
            out.append("")
        if group == "ambiguous + clear":
            out += ["Clarification (positive = asked; truth = the ambiguous member):", ""]
            out += [*clarification_table(by_way), ""]
    if len(ways) > 1:
        out += ["## paired: the prompts every way finished", ""]
        for group, kinds in GROUPS.items():
            mine = [r for r in rows if r["kind"] in kinds]
            group_ways = [w for w in ways if any(r["way"] == w for r in mine)]
            if len(group_ways) > 1:
                out += [*paired(group, mine, group_ways, grades), ""]
    return "\n".join(out).rstrip() + "\n"


# -- hand grading of chat ------------------------------------------------------------------
def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def chat_sheet(prompts: Sequence[Prompt], records: Iterable[Mapping[str, Any]]) -> str:
    """A markdown sheet: per chat prompt its text and rubric, then each way's reply with an
    empty ``grade:`` line (yes or no) for a reviewer; ``--grades`` reads it back."""
    rows = latest(records)
    ways = ways_in(rows.values())
    lines = [
        "# Chat replies to grade",
        "",
        "Write yes or no after each `grade:` (an empty one is left ungraded), then pass this "
        "file to `python bench/mixed.py --report --grades <this file>`.",
        "",
    ]
    for prompt in prompts:
        if prompt.kind != "chat" or not any((way, prompt.id) in rows for way in ways):
            continue
        text = prompt.messages[-1].content
        lines += [f"## {prompt.id}", "", "Prompt:", "", *_quoted(text), "", "Rubric:", ""]
        lines += [*_quoted(prompt.rubric), ""]
        for way in ways:
            r = rows.get((way, prompt.id))
            if r is None:
                continue
            reply = r["error"] or r["text"]
            fence = _fence(reply)
            lines += [f"### {way}/{prompt.id}", "", f"{fence}text", reply, fence, "", "grade:", ""]
    return "\n".join(lines)


def write_chat_sheet(
    path: Path, prompts: Sequence[Prompt], records: Iterable[Mapping[str, Any]]
) -> None:
    """``--chat-sheet``: :func:`chat_sheet` written to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(chat_sheet(prompts, records))
    print(f"wrote {path}")


def _quoted(text: str) -> list[str]:
    return [f"> {line}".rstrip() for line in text.splitlines()] or [">"]


YES = {"yes", "y", "true", "1", "pass", "right", "ok"}
NO = {"no", "n", "false", "0", "fail", "wrong"}


def read_grades(path: Path) -> dict[str, bool]:
    """``{"<way>/<id>": bool}`` from a JSON file, or from a filled chat sheet."""
    text = path.read_text()
    if path.suffix == ".json":
        data = json.loads(text)
        return {str(k): bool(v) for k, v in data.items()}
    grades: dict[str, bool] = {}
    current: str | None = None
    fenced: str | None = None
    for line in text.splitlines():
        if fenced is not None:
            if line.strip() == fenced:
                fenced = None
            continue
        if line.startswith("```"):
            fenced = line[: len(line) - len(line.lstrip("`"))]
            continue
        if line.startswith("### "):
            current = line[4:].strip()
        elif current is not None and line.lower().startswith("grade:"):
            said = line.split(":", 1)[1].strip().lower()
            if said in YES:
                grades[current] = True
            elif said in NO:
                grades[current] = False
            current = None
    return grades


# -- the classifier alone ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Classified:
    prompt: Prompt
    kind: str
    cues: tuple[str, ...]
    micros: float


def classify_all(prompts: Sequence[Prompt], classify: Callable[[Any], Any]) -> list[Classified]:
    if prompts:
        classify(prompts[0].messages)  # warm (regexes compiled, modules loaded)
    out = []
    for prompt in prompts:
        started = time.perf_counter_ns()
        result = classify(prompt.messages)
        micros = (time.perf_counter_ns() - started) / 1000
        out.append(Classified(prompt, str(result.kind), tuple(result.cues), micros))
    return out


def classified_right(c: Classified) -> bool:
    if c.prompt.kind == "clear":
        return c.kind != "ambiguous"
    return c.kind == c.prompt.kind


def classify_report(results: Sequence[Classified]) -> str:
    predicted = list(KINDS) + sorted({c.kind for c in results} - set(KINDS))
    lines = [
        "| truth \\ predicted | " + " | ".join(predicted) + " | n | accuracy |",
        "| --- |" + " ---: |" * (len(predicted) + 2),
    ]
    for truth in TRUTHS:
        mine = [c for c in results if c.prompt.kind == truth]
        if not mine:
            continue
        counts = [str(sum(c.kind == kind for c in mine)) for kind in predicted]
        right = sum(classified_right(c) for c in mine)
        label = "clear (right: not ambiguous)" if truth == "clear" else truth
        lines.append(
            f"| {label} | " + " | ".join(counts) + f" | {len(mine)} | {_share(right, len(mine))} |"
        )
    lines.append("")
    for scope, mine in (
        (
            "the ambiguous/clear pairs",
            [c for c in results if c.prompt.kind in ("ambiguous", "clear")],
        ),
        ("all prompts", list(results)),
    ):
        tp = sum(c.prompt.kind == "ambiguous" and c.kind == "ambiguous" for c in mine)
        fp = sum(c.prompt.kind != "ambiguous" and c.kind == "ambiguous" for c in mine)
        fn = sum(c.prompt.kind == "ambiguous" and c.kind != "ambiguous" for c in mine)
        precision, recall, f1 = prf(tp, fp, fn)
        lines.append(
            f"- clarification from the classifier alone, {scope}: precision {_num(precision)}, "
            f"recall {_num(recall)}, F1 {_num(f1)} (tp {tp}, fp {fp}, fn {fn})"
        )
    if results:
        lines.append(
            f"- mean µs per classification: {statistics.fmean(c.micros for c in results):.1f} "
            f"(median {statistics.median(c.micros for c in results):.1f}, {len(results)} prompts)"
        )
    wrong = [c for c in results if not classified_right(c)]
    if wrong:
        lines += ["", "Misclassified:", ""]
        lines += [
            f"- {c.prompt.id} ({c.prompt.kind}) -> {c.kind}; cues: {', '.join(c.cues) or 'none'}"
            for c in wrong
        ]
    return "\n".join(lines) + "\n"


def load_classifier() -> Callable[[Any], Any] | None:
    try:
        module = importlib.import_module("ponder.reasoning.kinds")
        classify: Callable[[Any], Any] = module.classify_request
    except (ImportError, AttributeError):
        return None
    return classify


def classify_main(prompts: Callable[[], Sequence[Prompt]]) -> int:
    """``--classify``: the classifier's report on the prompts (loaded once it imports)."""
    classify = load_classifier()
    if classify is None:
        print("cannot import ponder.reasoning.kinds.classify_request", file=sys.stderr)
        return 2
    print(classify_report(classify_all(prompts(), classify)))
    return 0
