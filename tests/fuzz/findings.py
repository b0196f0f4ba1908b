"""What the fuzzers found, and the checks on a reply that both of them run.

A :class:`Report` is a census: every case sent is counted by route and status, and each
distinct problem is kept once as a :class:`Finding` (by its kind, route and a signature, for
a 5xx the innermost Ponder frame and exception of the server's own traceback), with the
count of cases that hit it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

# Problems on the server's side: each one fails the suite and the long pass (goal R1).
SERVER_SIDE = frozenset({"5xx", "hang", "dropped connection", "unhandled exception"})


@dataclass
class Finding:
    """One distinct problem, as the first case that hit it showed it."""

    kind: str  # a SERVER_SIDE kind, "error shape", "error event after 200", or a check's name
    route: str
    status: int | None
    signature: str  # what makes two cases the same problem
    reproduction: str
    traceback: str = ""
    count: int = 1
    minimal: str | None = None  # the reproduction after Hypothesis shrank it
    # Where the census met it: the seed and the number of examples of that Hypothesis run
    # (run again with both, it meets the problem again, and then shrinks it).
    first: tuple[int, int] = (0, 0)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.route, self.signature)

    def describe(self) -> str:
        status = f" [{self.status}]" if self.status is not None else ""
        lines = [f"- {self.kind}{status} {self.route}: {self.signature} ({self.count} cases)"]
        lines.append(indent(self.minimal or self.reproduction))
        if self.traceback:
            lines.append(indent("server log:\n" + self.traceback))
        return "\n".join(lines)


@dataclass
class Report:
    """A fuzzer's census: the cases sent by route and status, and what they found."""

    cases: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    findings: dict[tuple[str, str, str], Finding] = field(default_factory=dict)
    seconds: float = 0.0

    def count(self, route: str, status: int | None) -> None:
        self.cases[route] += 1
        self.statuses.setdefault(route, Counter())[status or 0] += 1

    def add(self, finding: Finding) -> None:
        seen = self.findings.get(finding.key)
        if seen is None:
            self.findings[finding.key] = finding
        else:
            seen.count += 1

    def of(self, *kinds: str) -> list[Finding]:
        return [f for f in self.findings.values() if f.kind in kinds]

    def server_side(self) -> list[Finding]:
        return self.of(*SERVER_SIDE)

    def merge(self, other: Report) -> Report:
        merged = Report(seconds=self.seconds + other.seconds)
        for report in (self, other):
            merged.cases.update(report.cases)
            for route, counts in report.statuses.items():
                merged.statuses.setdefault(route, Counter()).update(counts)
            for finding in report.findings.values():
                merged.findings.setdefault(finding.key, finding)
        return merged

    def table(self) -> str:
        lines = []
        for route in sorted(self.cases):
            counts = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses[route].items()))
            bad = sum(f.count for f in self.server_side() if f.route == route and f.kind == "5xx")
            lines.append(f"{self.cases[route]:6d}  5xx {bad:<4d} {route}  ({counts})")
        return "\n".join(lines)


def indent(text: str, by: str = "    ") -> str:
    return "\n".join(by + line for line in text.splitlines())


def describe(findings: list[Finding]) -> str:
    return "\n".join(f.describe() for f in findings) or "(none)"


def signature_of(status: int | None, logged: list[str]) -> str:
    """What a server-side failure was: the innermost Ponder frame and the exception, from
    the server's traceback; the status alone when it logged none."""
    for entry in reversed(logged):
        lines = [line for line in entry.splitlines() if line.strip()]
        frames = [line.strip() for line in lines if line.strip().startswith('File "')]
        ours = [f for f in frames if "/ponder/" in f and "site-packages" not in f]
        where = ""
        if ours or frames:
            frame = (ours or frames)[-1]
            path, _, rest = frame.removeprefix('File "').partition('", line ')
            where = f"{path.rsplit('/src/', 1)[-1]}:{rest.split(',')[0]} "
        exception = next(
            (line for line in reversed(lines) if not line.startswith((" ", "\t"))), lines[-1]
        )
        return f"{where}{exception.strip()[:160]}"
    return f"HTTP {status}, nothing logged"


def error_shape_problem(text: str) -> str | None:
    """Why an error reply is not ``{"error": {"message", "type", "param", "code"}}``."""
    try:
        body = json.loads(text)
    except ValueError:
        return f"not JSON: {text[:120]!r}"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(error, dict):
        return f"not {{'error': {{...}}}}: {str(body)[:160]}"
    if set(error) != {"message", "type", "param", "code"}:
        return f"error keys {sorted(error)}"
    kinds = {
        "message": (str,),
        "type": (str,),
        "param": (str, type(None)),
        "code": (str, type(None)),
    }
    for name, allowed in kinds.items():
        if not isinstance(error[name], allowed):
            return f"error.{name} is {type(error[name]).__name__}"
    return None
